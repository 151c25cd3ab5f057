"""The ``spacy-senti`` command line (Typer)."""

from __future__ import annotations

import typer

from .backbone import backbone_app
from .data.convert_cli import convert_command
from .evaluation.cli import evaluate_command, tune_thresholds_command
from .hybrid_cli import fit_hybrid_command
from .loop_cli import cv_command, distill_command, drift_command, select_command
from .onnx_cli import export_onnx_command
from .score_cli import score_command
from .serve_cli import serve_command

app = typer.Typer(
    name="spacy-senti",
    help="Sentiment, emotion and aspect analysis for spaCy: data, evaluation and serving tools.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(backbone_app, name="backbone")
app.command("convert")(convert_command)
app.command("evaluate")(evaluate_command)
app.command("tune-thresholds")(tune_thresholds_command)
app.command("fit-hybrid")(fit_hybrid_command)
app.command("score")(score_command)
app.command("export-onnx")(export_onnx_command)
app.command("serve")(serve_command)
app.command("drift")(drift_command)
app.command("select")(select_command)
app.command(
    "cv", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)(cv_command)
app.command("distill")(distill_command)


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
