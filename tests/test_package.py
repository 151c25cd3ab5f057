"""Packaged pipeline: meta requirements, and a wheel that installs and loads in a fresh venv.

The fresh venv gets this venv's torch by symlinks (an installed distribution to pip); the
pipeline wheel, the spacy-senti wheel and every other dependency are installed for real."""

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
import spacy
from helpers import REPO
from spacy.cli import app as spacy_app
from typer.testing import CliRunner


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


def _requirement_closure(name: str) -> list:
    """The installed distribution ``name`` and, recursively, what it requires (no extras)."""
    from importlib.metadata import distribution

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found: dict = {}
    todo = [name]
    while todo:
        key = canonicalize_name(todo.pop())
        if key in found:
            continue
        found[key] = dist = distribution(key)
        for line in dist.requires or []:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(req.name)
    return list(found.values())


def _link_parent_torch(site_packages: Path, into: Path) -> None:
    """Make this venv's torch (and what it requires) an installed distribution of the fresh
    venv, through symlinks and a .pth file, instead of unpacking the ~700 MB wheel again: pip
    counts it for the wheels' ``torch>=2.1`` and installs everything else for real."""
    into.mkdir()
    for dist in _requirement_closure("torch"):
        root = Path(dist.locate_file(""))
        tops = {Path(f).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops - {"__pycache__"}):
            if not (into / top).exists():
                (into / top).symlink_to(root / top)
    (site_packages / "_parent_torch.pth").write_text(f"{into}\n", encoding="utf8")


@pytest.mark.slow
def test_pipeline_wheel_installs_in_fresh_venv(sentiment_pipeline, tmp_path):
    start = time.perf_counter()
    timings: dict[str, float] = {}

    def lap(step: str) -> None:
        timings[step] = round(time.perf_counter() - start - sum(timings.values()), 1)

    model_dir = tmp_path / "model"  # a copy: package_meta.py rewrites its meta.json
    shutil.copytree(sentiment_pipeline, model_dir)
    labels = set(spacy.load(model_dir).get_pipe("senti_textcat").heads[0].labels)
    assert labels == {"positive", "negative"}
    lap("copy + load the trained pipeline")

    run([sys.executable, REPO / "scripts" / "package_meta.py", model_dir, "--name",
         "senti_tiny", "--version", "0.0.1", "--sources", "sst2"])
    packages = tmp_path / "packages"
    packages.mkdir()
    # `spacy package` through spaCy's own CLI app, in this process (a subprocess spends
    # ~5-10 s importing spacy-transformers); the wheel is then built from the package
    # directory it wrote, as `--build wheel` does, without build isolation (no setuptools
    # download into a throwaway environment)
    result = CliRunner().invoke(spacy_app, ["package", str(model_dir), str(packages),
                                            "--build", "none", "--force"])
    assert result.exit_code == 0, result.output
    package_dir = packages / "en_senti_tiny-0.0.1"
    run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--skip-dependency-check",
         "--outdir", package_dir / "dist", package_dir], timeout=300)
    wheel = package_dir / "dist" / "en_senti_tiny-0.0.1-py3-none-any.whl"
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

    # A fresh venv without pip of its own: this venv's pip installs into it (--python).
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site_packages = Path(run([python, "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"]).strip())
    _link_parent_torch(site_packages, tmp_path / "parent_torch")
    lap("venv + torch")
    run([sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-compile",
         wheel, "--find-links", wheels], timeout=900)
    lap("pip install wheel")

    code = (
        "import json, spacy\n"
        "nlp = spacy.load('en_senti_tiny')\n"
        "doc = nlp('what a great and wonderful film')\n"
        "import spacy_senti\n"
        "print(json.dumps({'label': doc._.sentiment, 'scores': doc._.sentiment_scores,\n"
        "                  'pipeline': nlp.pipe_names, 'senti': spacy_senti.__file__,\n"
        "                  'spacy': spacy.__file__}))\n"
    )
    out = json.loads(run([python, "-c", code], cwd=tmp_path).strip().splitlines()[-1])
    lap("load + predict")
    assert out["label"] in labels
    assert set(out["scores"]) == labels
    assert out["pipeline"] == ["transformer", "senti_textcat"]
    assert str(venv) in out["senti"], "spacy_senti was not imported from the fresh venv"
    assert str(venv) in out["spacy"], "spacy was not installed into the fresh venv"
    total = time.perf_counter() - start
    print(f"\npackage round trip: {total:.0f} s {timings}")
    assert total < 15 * 60
