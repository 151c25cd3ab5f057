"""``spacy-senti export-onnx``: encoder + pooling + heads of a pipeline -> ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import InputError
from ..util import check_exists
from ._util import app


@app.command("export-onnx")
def export_onnx_command(
    pipeline: Path = typer.Argument(..., help="Trained spaCy pipeline directory (senti_textcat)."),
    out_dir: Path = typer.Argument(..., help="Output folder for the ONNX model and tokenizer."),
    quantize: str = typer.Option("", "--quantize", help="'int8': also write a dynamic "
                                 "int8-quantised model and make it the default."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    component: str = typer.Option("", "--component", help="senti_textcat component name "
                                  "(default: the first one)."),
) -> None:
    """Export encoder + pooling + heads of a trained pipeline to ONNX Runtime.

    Example: spacy-senti export-onnx training/sentiment/model-best model_onnx --quantize int8
    """
    check_exists(pipeline, "PIPELINE")
    if not (pipeline / "config.cfg").exists():
        raise InputError(f"PIPELINE {str(pipeline)!r} is not a spaCy pipeline directory (no "
                         "config.cfg in it). Pass the folder `spacy train` wrote (e.g. "
                         "training/model-best).")
    from ..onnx.export import export_onnx

    out = export_onnx(pipeline, out_dir, quantize=quantize or None, opset=opset,
                      component=component or None)
    files = sorted(p.name for p in out.iterdir())
    typer.secho(f"Exported to {out}: {', '.join(files)}", fg="green")
