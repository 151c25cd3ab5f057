"""The ``spacy-senti`` command line as a whole: the documented commands, ``--help`` of each,
and one error style (``Error: <message>``, exit code 1, no traceback) for bad input.

Each command's behaviour is tested beside its library code (test_convert, test_report, ...).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import typer
from confection import ConfigValidationError
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.cli._util import SentiTyper
from spacy_senti.errors import ConfigError, InputError

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "spacy_senti"
CONFIGS = ROOT / "configs"
COMMANDS = {"convert", "evaluate", "tune-thresholds", "fit-hybrid", "score", "export-onnx",
            "serve", "drift", "select", "cv", "distill", "backbone", "explain", "fewshot"}
BACKBONE_COMMANDS = {"path", "export"}


def invoke(*args: str | Path):
    return CliRunner().invoke(app, [str(a) for a in args])


def assert_user_error(result, expected: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: "), result.output
    assert expected in result.output, result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit), result.exception


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A blank pipeline (no senti_textcat), an empty DocBin, a JSONL and a CSV file."""
    root = tmp_path_factory.mktemp("cli")
    spacy.blank("en").to_disk(root / "blank")
    DocBin().to_disk(root / "empty.spacy")
    (root / "texts.jsonl").write_text('{"text": "good film"}\n{"text": "bad film"}\n')
    (root / "rows.csv").write_text("text,label\ngood film,positive\nbad film,negative\n")
    (root / "not_a_pipeline").mkdir()
    return {"root": root, "blank": root / "blank", "docbin": root / "empty.spacy",
            "jsonl": root / "texts.jsonl", "csv": root / "rows.csv",
            "dir": root / "not_a_pipeline", "missing": root / "missing"}


def _group(command: typer.Typer):
    return typer.main.get_command(command)


def test_registered_commands_are_the_documented_set():
    documented = set(re.findall(r"spacy-senti ([a-z][a-z-]*)", (ROOT / "README.md").read_text()))
    commands = _group(app).commands
    assert set(commands) == COMMANDS == documented
    assert set(commands["backbone"].commands) == BACKBONE_COMMANDS


@pytest.mark.parametrize("command", sorted(COMMANDS) + [f"backbone {c}" for c in
                                                        sorted(BACKBONE_COMMANDS)])
def test_help_of_every_command(command):
    result = invoke(*command.split(), "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and "Traceback" not in result.output


def test_no_args_shows_help():
    result = invoke()
    assert "Usage:" in result.output and "convert" in result.output


BAD_INPUT = {
    "convert missing input": (
        lambda f: ["convert", f["missing"] / "x.csv", f["root"] / "out", "-f", "csv"],
        "does not exist"),
    "convert bad --split": (
        lambda f: ["convert", f["csv"], f["root"] / "out", "-f", "csv", "--split", "0.5,x",
                   "--no-progress"],
        "--split '0.5,x'"),
    "evaluate missing data": (
        lambda f: ["evaluate", f["blank"], f["missing"] / "dev.spacy", "-o", f["root"] / "o"],
        "DATA"),
    "evaluate pipeline without senti_textcat": (
        lambda f: ["evaluate", f["blank"], f["docbin"], "-o", f["root"] / "o"],
        "no senti_textcat component"),
    "tune-thresholds bad --metric": (
        lambda f: ["tune-thresholds", f["blank"], f["docbin"], "-o", f["root"] / "o",
                   "--metric", "g2"],
        "Unknown metric 'g2'"),
    "tune-thresholds bad --grid": (
        lambda f: ["tune-thresholds", f["blank"], f["docbin"], "-o", f["root"] / "o",
                   "--grid", "0:1"],
        "Invalid threshold grid"),
    "tune-thresholds missing model": (
        lambda f: ["tune-thresholds", f["missing"], f["docbin"], "-o", f["root"] / "o"],
        "not found"),
    "fit-hybrid bad --mode": (
        lambda f: ["fit-hybrid", f["blank"], f["docbin"], "-o", f["root"] / "o",
                   "--mode", "vote"],
        "--mode must be one of"),
    "fit-hybrid missing dev": (
        lambda f: ["fit-hybrid", f["blank"], f["missing"] / "dev.spacy", "-o", f["root"] / "o"],
        "DEV"),
    "score missing input": (
        lambda f: ["score", f["blank"], f["missing"] / "in.jsonl", f["root"] / "scored.jsonl",
                   "--no-progress"],
        "not found"),
    "export-onnx missing pipeline": (
        lambda f: ["export-onnx", f["missing"], f["root"] / "onnx"],
        "PIPELINE"),
    "export-onnx not a pipeline": (
        lambda f: ["export-onnx", f["dir"], f["root"] / "onnx"],
        "not a spaCy pipeline directory"),
    "explain missing pipeline": (
        lambda f: ["explain", f["missing"], "a great film"],
        "not found"),
    "explain pipeline without senti_textcat": (
        lambda f: ["explain", f["blank"], "a great film"],
        "no senti_textcat component"),
    "serve missing model": (
        lambda f: ["serve", f["missing"]],
        "MODEL"),
    "serve bad --max-batch": (
        lambda f: ["serve", f["dir"], "--max-batch", "0"],
        "--max-batch"),
    "serve bad --variant": (
        lambda f: ["serve", f["dir"], "--variant", "fp16"],
        "--variant must be one of"),
    "drift missing reference": (
        lambda f: ["drift", f["missing"] / "ref.jsonl", f["jsonl"], "--model", f["blank"]],
        "REFERENCE file"),
    "drift missing model": (
        lambda f: ["drift", f["jsonl"], f["jsonl"], "--model", f["missing"]],
        "not found"),
    "select missing pool": (
        lambda f: ["select", f["blank"], f["missing"] / "pool.jsonl", "-o", f["root"] / "s.jsonl"],
        "UNLABELLED file"),
    "cv missing data": (
        lambda f: ["cv", CONFIGS / "cpu_fast.cfg", f["missing"] / "all.spacy"],
        "DATA file"),
    "cv missing config": (
        lambda f: ["cv", f["missing"] / "x.cfg", f["docbin"]],
        "CONFIG file"),
    "fewshot missing dev": (
        lambda f: ["fewshot", CONFIGS / "fewshot.cfg", f["docbin"], "--dev",
                   f["missing"] / "dev.spacy", "--output", f["root"] / "fs"],
        "DEV file"),
    "fewshot empty train": (
        lambda f: ["fewshot", CONFIGS / "fewshot.cfg", f["docbin"], "--dev", f["docbin"],
                   "--output", f["root"] / "fs"],
        "No training doc has a label"),
    "distill missing data": (
        lambda f: ["distill", f["blank"], CONFIGS / "cpu_fast.cfg", f["missing"] / "t.spacy"],
        "DATA file"),
    "backbone path missing directory": (
        lambda f: ["backbone", "path", f["missing"]],
        "does not exist"),
    "backbone export missing directory": (
        lambda f: ["backbone", "export", f["root"] / "bb", "--name", f["missing"]],
        "does not exist"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_prints_one_error_line_and_exits_1(files, case):
    make_args, expected = BAD_INPUT[case]
    assert_user_error(invoke(*make_args(files)), expected)


def test_every_command_has_a_bad_input_case():
    tested = {case.split()[0] for case in BAD_INPUT}
    tested |= {" ".join(case.split()[:2]) for case in BAD_INPUT if case.startswith("backbone")}
    assert COMMANDS - {"backbone"} <= tested
    assert {f"backbone {c}" for c in BACKBONE_COMMANDS} <= tested


def test_errors_are_caught_in_one_place_and_bugs_keep_their_traceback():
    demo = SentiTyper()

    @demo.command("fail")
    def fail(kind: str) -> None:
        if kind == "input":
            raise InputError("the input is bad.")
        if kind == "config":
            raise ConfigValidationError(title="Config validation error", desc="bad override")
        raise RuntimeError("a bug")

    @demo.command("other")
    def other() -> None:  # a second command makes ``fail`` a subcommand
        raise ConfigError("unused")

    runner = CliRunner()
    assert_user_error(runner.invoke(demo, ["fail", "input"]), "the input is bad.")
    assert_user_error(runner.invoke(demo, ["fail", "config"]), "bad override")
    bug = runner.invoke(demo, ["fail", "bug"])
    assert isinstance(bug.exception, RuntimeError) and not bug.output.startswith("Error:")
    # the decorator returns the wrapped function: it reports errors on any Typer app too
    plain = typer.Typer()
    plain.command()(fail)
    assert_user_error(runner.invoke(plain, ["input"]), "the input is bad.")


def test_library_code_never_imports_the_cli_nor_prints_errors():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "cli" and path.parent.parent == PACKAGE:
            continue
        text = path.read_text(encoding="utf8")
        if re.search(r"^\s*(from|import) +(\.+cli\b|spacy_senti\.cli\b|typer\b)", text, re.M):
            offenders.append(str(path.relative_to(ROOT)))
        if re.search(r"""["']Error: """, text):
            offenders.append(f"{path.relative_to(ROOT)} prints 'Error:'")
    assert offenders == []


def test_module_entry_point_reports_errors_on_stderr(tmp_path):
    """``python -m spacy_senti.cli`` (as project.yml runs it): stderr, exit code 1."""
    proc = subprocess.run(
        [sys.executable, "-m", "spacy_senti.cli", "backbone", "path", str(tmp_path / "none")],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.startswith("Error: Backbone directory") and "Traceback" not in proc.stderr
