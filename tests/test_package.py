"""Packaged pipeline: meta requirements, and a wheel that installs and loads in a fresh venv."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path
from types import ModuleType

import pytest
from conftest import REPO
from helpers import load_config, make_examples, nlp_from_config, train

TORCH_PIN = "torch==2.13.0"  # the CPU build on this disk; unpinned, pip pulls a CUDA build
ROWS = [
    ("i loved this film , it was great", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
    ("a wonderful and happy movie", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
    ("the plot was awful and boring", {"sentiment/positive": 0.0, "sentiment/negative": 1.0}),
    ("i hated it , the worst film", {"sentiment/positive": 0.0, "sentiment/negative": 1.0}),
]


def load_script(name: str) -> ModuleType:
    """Import ``scripts/<name>.py`` (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run(cmd: list, cwd: Path | None = None, timeout: int = 600) -> str:
    """Run a command; fail the test with its output when it fails."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("PYTHONPATH", None)
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def test_package_meta_requirements():
    meta_script = load_script("package_meta")
    import spacy_senti

    meta = {"lang": "en", "name": "pipeline", "version": "0.0.0",
            "requirements": ["torch>=1.0", "spacy-transformers>=1.4.0,<1.5.0"]}
    out = meta_script.package_meta(meta, name="senti_x", version="0.2.0",
                                   sources=["sst2", "goemotions"])
    assert out["name"] == "senti_x" and out["version"] == "0.2.0"
    reqs = out["requirements"]
    assert f"spacy-senti>={spacy_senti.__version__}" in reqs[-2]
    assert reqs[-1] == "torch>=2.1" and "torch>=1.0" not in reqs
    assert "spacy-transformers>=1.4.0,<1.5.0" in reqs
    assert [s["name"] for s in out["sources"]][:2] == [
        meta_script.SOURCES["sst2"]["name"], meta_script.SOURCES["goemotions"]["name"]
    ]
    assert "Apache-2.0 (goemotions)" in out["license"]
    assert meta["requirements"] == ["torch>=1.0", "spacy-transformers>=1.4.0,<1.5.0"]
    with pytest.raises(ValueError):
        meta_script.package_meta(meta, sources=["nope"])


def _build_senti_wheel(out_dir: Path, tmp: Path) -> Path:
    """Wheel of spacy-senti from a copy of the sources (no build files in the repo)."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "spacy_senti", src / "spacy_senti",
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation",
         "--skip-dependency-check", "--outdir", out_dir, src], timeout=300)
    return next(out_dir.glob("spacy_senti-*.whl"))


@pytest.mark.slow
def test_pipeline_wheel_installs_in_fresh_venv(tiny_bert, tmp_path):
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        timings[step] = round(time.perf_counter() - start - sum(timings.values()), 1)

    config = load_config("sentiment", tiny_bert)
    nlp = nlp_from_config(config)
    train(nlp, make_examples(nlp, ROWS), n_iter=5)
    model_dir = tmp_path / "model"
    nlp.to_disk(model_dir)
    labels = set(nlp.get_pipe("senti_textcat").heads[0].labels)
    assert labels == {"positive", "negative"}
    lap("train+save")

    run([sys.executable, REPO / "scripts" / "package_meta.py", model_dir, "--name",
         "senti_tiny", "--version", "0.0.1", "--sources", "sst2"])
    packages = tmp_path / "packages"
    packages.mkdir()
    run([sys.executable, "-m", "spacy", "package", model_dir, packages, "--build", "wheel",
         "--force"], timeout=300)
    wheel = packages / "en_senti_tiny-0.0.1" / "dist" / "en_senti_tiny-0.0.1-py3-none-any.whl"
    assert wheel.exists()
    with zipfile.ZipFile(wheel) as zf:
        metadata = zf.read("en_senti_tiny-0.0.1.dist-info/METADATA").decode("utf8")
    requires = [line.split(":", 1)[1].strip() for line in metadata.splitlines()
                if line.startswith("Requires-Dist:")]
    assert any(r.startswith("spacy-senti") for r in requires), requires
    assert any(r.replace(" ", "").startswith("torch>=2.1") for r in requires), requires
    assert any(r.startswith("spacy-transformers") for r in requires), requires
    lap("spacy package")

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    _build_senti_wheel(wheels, tmp_path)
    lap("build spacy-senti wheel")

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    run([python, "-m", "pip", "install", "-q", "--no-compile", TORCH_PIN])
    lap("venv + torch")
    run([python, "-m", "pip", "install", "-q", "--no-compile", wheel, "--find-links", wheels],
        timeout=900)
    lap("pip install wheel")

    code = (
        "import json, spacy\n"
        "nlp = spacy.load('en_senti_tiny')\n"
        "doc = nlp('what a great and wonderful film')\n"
        "import spacy_senti\n"
        "print(json.dumps({'label': doc._.sentiment, 'scores': doc._.sentiment_scores,\n"
        "                  'pipeline': nlp.pipe_names, 'senti': spacy_senti.__file__}))\n"
    )
    out = json.loads(run([python, "-c", code], cwd=tmp_path).strip().splitlines()[-1])
    lap("load + predict")
    assert out["label"] in labels
    assert set(out["scores"]) == labels
    assert out["pipeline"] == ["transformer", "senti_textcat"]
    assert str(venv) in out["senti"], "spacy_senti was not imported from the fresh venv"
    total = time.perf_counter() - start
    print(f"\npackage round trip: {total:.0f} s {timings}")
    assert total < 15 * 60
