"""project.yml: valid for weasel, workflows wired (deps exist or come from earlier steps)."""

from __future__ import annotations

import hashlib
import shutil

import pytest
from helpers import REPO
from weasel.util import load_project_config

WORKFLOWS = ("all", "all-gpu", "sst2", "emotion", "goemotions", "absa", "absa-terms-restaurants",
             "absa-terms-laptops", "multitask", "fewshot")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> dict:
    """project.yml loaded and interpolated by weasel (in a copy: the loader creates dirs)."""
    tmp = tmp_path_factory.mktemp("project")
    shutil.copy(REPO / "project.yml", tmp / "project.yml")
    return load_project_config(tmp, interpolate=True)


def _commands(project: dict) -> dict[str, dict]:
    return {cmd["name"]: cmd for cmd in project["commands"]}


def _covered(path: str, produced: set[str]) -> bool:
    """``path`` is an output of an earlier step, or lies inside / contains one."""
    return any(path == out or path.startswith(out + "/") or out.startswith(path + "/")
               for out in produced)


def test_all_workflow(project):
    assert project["workflows"]["all"] == [
        "convert", "train", "tune-thresholds", "evaluate", "package"
    ]
    assert set(WORKFLOWS) <= set(project["workflows"])
    commands = _commands(project)
    for flow in project["workflows"].values():
        assert all(name in commands for name in flow)


def test_all_workflow_commands(project):
    commands = _commands(project)
    pvars = project["vars"]
    train = " ".join(commands["train"]["script"])
    assert f"configs/{pvars['config']}.cfg" in train
    assert f"--gpu-id {pvars['gpu_id']}" in train
    assert "--training.max_steps" in train
    package = " ".join(commands["package"]["script"])
    assert "--build wheel" in package and f"--name {pvars['name']}" in package
    assert any("package_meta.py" in line for line in commands["tune-thresholds"]["script"])
    # every command that can be skipped records outputs (weasel always reruns the others)
    for cmd in commands.values():
        assert cmd.get("outputs"), cmd["name"]


@pytest.mark.parametrize("workflow", WORKFLOWS)
def test_workflow_deps(project, workflow):
    """Each dep exists in the repo, or an earlier step of the workflow writes it."""
    commands = _commands(project)
    shared = str(project["vars"]["shared_data"])
    produced: set[str] = set()
    for name in project["workflows"][workflow]:
        cmd = commands[name]
        for dep in cmd.get("deps", []):
            if _covered(dep, produced):
                continue
            if dep.startswith(shared + "/") and not (REPO / shared).exists():
                continue  # full benchmark data is not on every machine
            assert (REPO / dep).exists(), f"{workflow}/{name}: dep {dep} missing"
        produced.update(cmd.get("outputs", []))
        produced.update(cmd.get("outputs_no_cache", []))


def test_outputs_do_not_overlap(project):
    """A later step must not write into an earlier step's output (or the rerun would not skip)."""
    for workflow in WORKFLOWS:
        outputs = [out for name in project["workflows"][workflow]
                   for out in _commands(project)[name].get("outputs", [])]
        for i, a in enumerate(outputs):
            for b in outputs[i + 1:]:
                assert not (a == b or a.startswith(b + "/") or b.startswith(a + "/")), (a, b)


def test_local_assets_checksums(project):
    """Bundled samples match their MD5s; extra (online) assets have a URL."""
    local = [a for a in project["assets"] if not a.get("url")]
    assert local, "no bundled assets listed"
    for asset in local:
        path = REPO / asset["dest"]
        assert path.exists(), asset["dest"]
        assert hashlib.md5(path.read_bytes()).hexdigest() == asset["checksum"], asset["dest"]
    listed = {a["dest"] for a in local}
    bundled = {str(p.relative_to(REPO)) for p in (REPO / "assets").rglob("*")
               if p.is_file() and p.name != "LICENSES.md"}
    assert bundled <= listed, f"bundled but not in project.yml: {sorted(bundled - listed)}"
    for asset in project["assets"]:
        if asset.get("url"):
            assert asset.get("extra") is True and asset["url"].startswith("https://")


def test_extra_assets_mirror_shared_layout(project):
    """``--vars.shared_data assets/full`` finds every full-data dep that the extras download."""
    shared = str(project["vars"]["shared_data"])
    extras = {a["dest"].removeprefix("assets/full/") for a in project["assets"] if a.get("url")}
    deps = {dep.removeprefix(shared + "/") for cmd in project["commands"]
            for dep in cmd.get("deps", []) if dep.startswith(shared + "/")}
    assert deps <= extras, sorted(deps - extras)


def test_package_meta_is_run_before_package(project):
    commands = _commands(project)
    tuned = commands["tune-thresholds"]["outputs"][0]
    assert tuned in commands["package"]["deps"]
    assert tuned in " ".join(commands["package"]["script"])


def test_document_matches_weasel(tmp_path):
    """PROJECT.md is the current `weasel document` output of project.yml."""
    from weasel.cli.document import project_document

    shutil.copy(REPO / "project.yml", tmp_path / "project.yml")
    shutil.copytree(REPO / "assets", tmp_path / "assets")  # existing assets are linked
    project_document(tmp_path, tmp_path / "PROJECT.md", no_emoji=False)
    expected = (tmp_path / "PROJECT.md").read_text(encoding="utf8")
    assert (REPO / "PROJECT.md").read_text(encoding="utf8") == expected, (
        "PROJECT.md is stale: run `weasel run document`"
    )


def test_demo_printout_has_a_line_for_aspect_terms():
    """scripts/print_outputs.py (the end of `make demo`) shows the senti_aspects scores."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("print_outputs",
                                                  REPO / "scripts" / "print_outputs.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    metrics = {"heads": {"sentiment": {"kind": "exclusive", "n": 3}},
               "scores": {"senti_sentiment_acc": 0.5, "aspect_terms_f": 0.75,
                          "aspect_polarity_acc": 0.5, "aspect_terms_n_gold": 4}}
    rows = module.headline_rows(metrics)
    assert len(rows) == 2 and "term F1 0.750" in rows[1] and "n=4" in rows[1]
    assert "polarity accuracy 0.500" in rows[1] and "pair F1" not in rows[1]
    del metrics["scores"]["aspect_terms_f"]
    assert len(module.headline_rows(metrics)) == 1
