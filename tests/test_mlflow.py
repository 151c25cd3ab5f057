"""Training with the MLflow logger of spacy-loggers (configs/logging_mlflow.cfg)."""

from __future__ import annotations

import pytest
from helpers import CONFIGS, write_docbin
from thinc.api import Config

mlflow = pytest.importorskip(
    "mlflow", reason="mlflow is not installed: pip install mlflow-skinny (or mlflow)"
)


def _docbin(path, n=8):
    rows = [("good great fun" if i % 2 else "bad awful sad",
             {"sentiment/positive": float(i % 2), "sentiment/negative": float(1 - i % 2)})
            for i in range(n)]
    return write_docbin(path, rows)


def test_two_step_train_writes_an_mlflow_run(tmp_path, monkeypatch):
    from spacy.cli.train import train

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "file:./mlruns")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # mlflow >= 3.x: opt in to files
    # the logger saves each new best model with mlflow.spacy.log_model, whose pip requirement
    # inference runs a subprocess that imports the model (up to 120 s by default; importing
    # spacy-transformers alone takes longer than 5 s on a busy machine, so it never finished):
    # 1 s, and MLflow falls back to ['spacy==...'] at once
    monkeypatch.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    config = Config().from_disk(CONFIGS / "cpu_fast.cfg", interpolate=False).merge(
        Config().from_disk(CONFIGS / "logging_mlflow.cfg", interpolate=False))
    assert config["training"]["logger"]["@loggers"] == "spacy.MLflowLogger.v2"
    assert "progress_bar" not in config["training"]["logger"]  # whole block replaced
    config.to_disk(tmp_path / "config.cfg")
    data = str(_docbin(tmp_path / "train.spacy"))
    train(tmp_path / "config.cfg", tmp_path / "out", overrides={
        "paths.train": data, "paths.dev": data, "training.max_steps": 2,
        "training.eval_frequency": 2,
        "training.logger.run_name": "senti-test",
        "components.senti_textcat.model.tok2vec.encode.depth": 1,
    })
    if mlflow.active_run():  # pragma: no cover - the logger ends its run
        mlflow.end_run()
    runs = mlflow.search_runs(search_all_experiments=True, output_format="list")
    assert runs, "no MLflow run was written"
    run = runs[0]
    assert run.info.run_name == "senti-test"
    assert any(key.startswith("score") or "senti" in key for key in run.data.metrics)
    assert (tmp_path / "mlruns").is_dir()
