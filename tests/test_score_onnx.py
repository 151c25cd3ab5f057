"""``spacy-senti score`` with an ONNX export as PIPELINE: the local engine (1 process and
``n_process=2``) and Ray give the spaCy pipeline's output (fp32 within 1e-5, int8 within
INT8_ATOL), with the same columns, row order, error rows and resuming; other commands refuse
an export with a message."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import REPO, write_docbin
from score_helpers import TEXTS, read_output, write_input
from typer.testing import CliRunner

from spacy_senti.batch import InputError, score_local
from spacy_senti.batch.checkpoint import checkpoint_path
from spacy_senti.cli import app
from spacy_senti.onnx.export import export_onnx
from spacy_senti.util import load_pipeline

pytest.importorskip("pyarrow", reason="scoring Parquet needs pyarrow (pip install pyarrow)")

FP32_ATOL = 1e-5  # issue 18: fp32 probabilities equal to the spaCy pipeline's within 1e-5
# int8 (dynamic QInt8 weights, activations quantised on the fly) on the tests' tiny random
# BERT: measured max |diff| 0.0075 over 200 SST-2 sentences; the bound leaves room for other
# onnxruntime builds. On MiniLM the bench reports the figures (bench/results/score.md).
INT8_ATOL = 0.05
PROB_COLUMNS = ("sentiment_scores", "emotions", "aspect_scores")
LABEL_COLUMNS = ("sentiment", "emotion_labels", "aspects")


@pytest.fixture(scope="module")
def export_dir(multitask_pipeline, tmp_path_factory) -> Path:
    """fp32 + int8 export of the multitask pipeline (int8 is its default)."""
    return export_onnx(multitask_pipeline, tmp_path_factory.mktemp("onnx") / "export",
                       quantize="int8")


def input_rows() -> list[dict]:
    """Real sentences of various lengths, one doc over a transformer window (>128 tokens),
    and rows that cannot be scored."""
    lines = (REPO / "assets/sst2/test.tsv").read_text(encoding="utf8").splitlines()[1:61]
    texts = [line.split("\t")[0] for line in lines] + TEXTS
    texts.append(" ".join(texts[:12]))  # ~250 spaCy tokens: several strided windows
    rows: list[dict] = [{"id": i, "text": t} for i, t in enumerate(texts)]
    n = len(rows)
    rows += [{"id": n, "text": ""}, {"id": n + 1, "text": 42}, {"id": n + 2, "text": None},
             {"id": n + 3, "text": "   "}]
    return rows


@pytest.fixture(scope="module")
def src(tmp_path_factory) -> Path:
    return write_input(tmp_path_factory.mktemp("in") / "in.jsonl", input_rows())


@pytest.fixture(scope="module")
def reference(multitask_pipeline, src, tmp_path_factory) -> list[dict]:
    """The spaCy (PyTorch) pipeline's output file."""
    out = tmp_path_factory.mktemp("ref") / "ref.jsonl"
    score_local(multitask_pipeline, src, out, batch_size=16, progress=False)
    return read_output(out)


def probs(rows: list[dict]) -> np.ndarray:
    """Every probability of every scored row (error rows: none), in a fixed order."""
    out = []
    for row in rows:
        if row["error"] is None:
            values = list(row["sentiment_scores"].values()) + list(row["emotions"].values())
            values += [p for group in row["aspect_scores"].values() for p in group.values()]
            out.append(values)
    return np.asarray(out)


def assert_same_output(got: list[dict], ref: list[dict], atol: float,
                       labels: bool = True) -> float:
    """Same columns, row order, input values and error rows; probabilities within atol."""
    assert [list(r) for r in got] == [list(r) for r in ref]
    assert [(r["id"], r["text"], r["error"]) for r in got] == \
        [(r["id"], r["text"], r["error"]) for r in ref]
    for a, b in zip(got, ref):
        assert [list(a[c] or {}) for c in PROB_COLUMNS] == [list(b[c] or {}) for c in PROB_COLUMNS]
        if labels:
            assert [a[c] for c in LABEL_COLUMNS] == [b[c] for c in LABEL_COLUMNS]
    diff = float(np.abs(probs(got) - probs(ref)).max())
    assert diff <= atol, diff
    return diff


def test_fp32_matches_the_spacy_pipeline(export_dir, src, reference, tmp_path):
    out = tmp_path / "fp32.jsonl"
    summary = score_local(export_dir, src, out, batch_size=16, progress=False,
                          onnx_variant="fp32", threads=1)
    assert summary.rows_in == summary.rows_out == len(reference)
    assert summary.error_rows == [(n, r["error"]) for n, r in enumerate(reference, 1)
                                  if r["error"]]
    assert summary.n_errors == 4
    assert_same_output(read_output(out), reference, FP32_ATOL)
    # the tolerance is real: predictions vary across rows by far more than 1e-5 ...
    assert probs(reference).std(axis=0).min() > 1e-3
    # ... and the int8 model, which is a different model, does not pass it
    int8 = tmp_path / "int8.jsonl"
    score_local(export_dir, src, int8, batch_size=16, progress=False, onnx_variant="int8")
    assert np.abs(probs(read_output(int8)) - probs(reference)).max() > FP32_ATOL


def test_int8_is_the_default_and_within_its_tolerance(export_dir, src, reference, tmp_path):
    out = tmp_path / "int8.jsonl"
    score_local(export_dir, src, out, batch_size=16, progress=False)
    assert json.loads(checkpoint_path(out).read_text())["settings"]["onnx_variant"] == "int8"
    got = read_output(out)
    assert_same_output(got, reference, INT8_ATOL, labels=False)
    scored = [(a, b) for a, b in zip(got, reference) if b["error"] is None]
    agree = np.mean([a["sentiment"] == b["sentiment"] for a, b in scored])
    assert agree >= 0.95, agree


def test_n_process_2_matches(export_dir, src, reference, tmp_path):
    out = tmp_path / "two.jsonl"
    summary = score_local(export_dir, src, out, batch_size=8, n_process=2, progress=False,
                          onnx_variant="fp32")
    assert summary.rows_out == len(reference) and summary.n_errors == 4
    assert_same_output(read_output(out), reference, FP32_ATOL)


def test_parquet_in_and_out(export_dir, multitask_pipeline, tmp_path):
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS)] + [{"id": 6, "text": None}]
    src = write_input(tmp_path / "in.parquet", rows)
    score_local(multitask_pipeline, src, tmp_path / "ref.parquet", progress=False)
    score_local(export_dir, src, tmp_path / "onnx.parquet", progress=False,
                onnx_variant="fp32")
    import pyarrow.parquet as pq

    assert pq.read_schema(tmp_path / "onnx.parquet") == pq.read_schema(tmp_path / "ref.parquet")
    assert_same_output(read_output(tmp_path / "onnx.parquet"),
                       read_output(tmp_path / "ref.parquet"), FP32_ATOL)


def test_resume_and_variant_in_checkpoint(export_dir, src, reference, tmp_path):
    out = tmp_path / "out.jsonl"

    class Interrupt(Exception):
        pass

    def stop_after_two(ckpt):
        if ckpt.batches_done == 2:
            raise Interrupt

    with pytest.raises(Interrupt):
        score_local(export_dir, src, out, batch_size=10, progress=False, onnx_variant="fp32",
                    on_batch=stop_after_two)
    with pytest.raises(InputError, match=r"settings changed: \['onnx_variant'\]"):
        score_local(export_dir, src, out, batch_size=10, progress=False, onnx_variant="int8")
    summary = score_local(export_dir, src, out, batch_size=10, progress=False,
                          onnx_variant="fp32")
    assert summary.resumed_from == 20 and summary.rows_out == len(reference)
    assert_same_output(read_output(out), reference, FP32_ATOL)


def test_cli_onnx_variant_and_errors(export_dir, multitask_pipeline, src, reference, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.jsonl"
    result = runner.invoke(app, ["score", str(export_dir), str(src), str(out),
                                 "--onnx-variant", "fp32", "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert f"rows in: {len(reference)}" in result.output
    assert_same_output(read_output(out), reference, FP32_ATOL)

    def error(*args: str) -> str:
        result = runner.invoke(app, ["score", *args, "--no-progress"])
        assert result.exit_code == 1, result.output
        return " ".join(result.output.split())

    new = str(tmp_path / "new.jsonl")
    assert "--onnx-variant int8 applies to an ONNX export" in error(
        str(multitask_pipeline), str(src), new, "--onnx-variant", "int8")
    assert "is an ONNX export, which runs on the CPU (onnxruntime): drop --gpu" in error(
        str(export_dir), str(src), new, "--gpu")
    fp32_only = tmp_path / "fp32_only"
    shutil.copytree(export_dir, fp32_only)
    info = json.loads((fp32_only / "senti_onnx.json").read_text())
    del info["files"]["int8"]
    info["default"] = "fp32"
    (fp32_only / "senti_onnx.json").write_text(json.dumps(info))
    assert "has no 'int8' ONNX model (exported: ['fp32'])" in error(
        str(fp32_only), str(src), new, "--onnx-variant", "int8")
    (fp32_only / "senti_onnx.json").write_text("{not json")
    assert "senti_onnx.json cannot be read" in error(str(fp32_only), str(src), new)
    assert not Path(new).exists()
    assert "--onnx-variant" in runner.invoke(app, ["score", "--help"]).output


def test_load_pipeline_returns_blank_plus_senti_onnx(export_dir, multitask_pipeline):
    nlp = load_pipeline(export_dir, allow_onnx=True, variant="fp32", threads=1)
    assert nlp.pipe_names == ["senti_onnx"] and nlp.lang == "en"
    pipe = nlp.get_pipe("senti_onnx")
    assert pipe.runner.variant == "fp32"
    assert [h.name for h in pipe.heads] == ["sentiment", "emotion", "aspect"]
    ref = spacy.load(multitask_pipeline)
    doc, ref_doc = nlp(TEXTS[2]), ref(TEXTS[2])
    assert doc._.sentiment == ref_doc._.sentiment and doc._.aspects == ref_doc._.aspects
    assert doc.cats == pytest.approx(ref_doc.cats, abs=FP32_ATOL)
    with pytest.raises(InputError, match="not an ONNX export"):
        load_pipeline(multitask_pipeline, variant="int8")


def test_component_passes_batch_size_and_reopens_after_fork(export_dir, monkeypatch):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("senti_onnx", config={"path": str(export_dir), "batch_size": 3})
    assert pipe.runner.batch_size == 3  # the config's batch_size reaches the runner
    first = pipe.runner
    nlp("great food")
    assert pipe.runner is first
    import spacy_senti.onnx.component as component

    # in a forked child (another pid) the component opens its own onnxruntime session
    monkeypatch.setattr(component.os, "getpid", lambda: -1)
    doc = nlp("great food")
    assert pipe.runner is not first and pipe.runner.batch_size == 3
    assert first in component._INHERITED_SESSIONS  # kept alive: never freed in the child
    assert doc._.sentiment in ("negative", "positive")


# --- other commands: an export works only where a spaCy pipeline is not needed ----------------
def test_other_commands_refuse_an_export_with_a_message(export_dir, tmp_path):
    dev = write_docbin(tmp_path / "dev.spacy", [
        ("great food", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
        ("awful service", {"sentiment/positive": 0.0, "sentiment/negative": 1.0}),
    ])
    texts = write_input(tmp_path / "texts.jsonl", [{"text": t} for t in TEXTS])
    model = str(export_dir)
    commands = {
        "evaluate": ["evaluate", model, str(dev), "-o", str(tmp_path / "eval")],
        "tune-thresholds": ["tune-thresholds", model, str(dev), "-o", str(tmp_path / "t")],
        "fit-hybrid": ["fit-hybrid", model, str(dev), "-o", str(tmp_path / "h")],
        "explain": ["explain", model, "great food"],
        "drift": ["drift", str(texts), str(texts), "--model", model],
        "select": ["select", model, str(texts), "-o", str(tmp_path / "s.jsonl")],
        "distill": ["distill", model, str(REPO / "configs" / "cpu_fast.cfg"), str(dev),
                    "-o", str(tmp_path / "d")],
    }
    runner = CliRunner()
    for name, args in commands.items():
        result = runner.invoke(app, args)
        message = " ".join(result.output.split())
        assert result.exit_code == 1, (name, result.output)
        assert "is an ONNX export (senti_onnx.json), which only `spacy-senti score` and " \
               "`spacy-senti serve` take" in message, (name, message)
        assert "needs the spaCy pipeline the export was made from" in message, name
    assert not any((tmp_path / d).exists() for d in ("eval", "t", "h", "d", "s.jsonl"))


def test_export_onnx_refuses_an_export(export_dir, tmp_path):
    with pytest.raises(InputError, match="is an ONNX export"):
        export_onnx(export_dir, tmp_path / "again")
    result = CliRunner().invoke(app, ["export-onnx", str(export_dir), str(tmp_path / "x")])
    assert result.exit_code == 1 and "is an ONNX export" in result.output
    assert not (tmp_path / "x").exists()


# --- Ray ----------------------------------------------------------------------------------------
def test_ray_engine_with_an_export(export_dir, multitask_pipeline, tmp_path):
    """Ray actors load the export (no torch threads set): same rows as the spaCy pipeline."""
    pytest.importorskip("ray.data",
                        reason="Ray Data is not installed: pip install 'spacy-senti[ray]'")
    from spacy_senti.batch.ray_engine import score_ray

    # Ray reads JSON with pyarrow: one type per column (strings and nulls here)
    rows = [r for r in input_rows() if not isinstance(r["text"], int)]
    src = write_input(tmp_path / "in.jsonl", rows)
    score_local(multitask_pipeline, src, tmp_path / "ref.parquet", progress=False)
    reference = read_output(tmp_path / "ref.parquet")
    with pytest.raises(InputError, match="drop --gpu"):
        score_ray(export_dir, src, tmp_path / "gpu", gpu=True, num_cpus=2)
    out = tmp_path / "ray"  # a directory of Parquet part files
    summary = score_ray(export_dir, src, out, batch_size=16, concurrency=1, num_cpus=2,
                        onnx_variant="fp32")
    assert summary.rows_in == summary.rows_out == len(rows) and summary.n_errors == 3
    assert_same_output(read_output(out), reference, FP32_ATOL)
