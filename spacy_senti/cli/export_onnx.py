"""``spacy-senti export-onnx``: encoder + pooling + heads of a pipeline -> ONNX Runtime."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..util import check_exists
from ._util import app


@app.command("export-onnx")
def export_onnx_command(
    pipeline: Path = typer.Argument(
        ..., help="Trained spaCy pipeline directory (senti_textcat and/or senti_aspects)."),
    out_dir: Path = typer.Argument(..., help="Output folder for the ONNX model and tokenizer."),
    quantize: str = typer.Option("", "--quantize", help="'int8': also write a dynamic "
                                 "int8-quantised model and make it the default."),
    opset: int = typer.Option(17, "--opset", help="ONNX opset version."),
    component: str = typer.Option("", "--component", help="senti_textcat component name "
                                  "(default: the first one)."),
    optimize: bool = typer.Option(False, "--optimize/--no-optimize", help="Fuse the graph "
                                  "with onnxruntime's transformer optimizer (Attention, "
                                  "LayerNorm, GELU; checked against the unfused graph). Off by "
                                  "default: onnxruntime fuses the plain graph itself at load "
                                  "time, and the plain graph runs on any ONNX runtime."),
) -> None:
    """Export encoder + pooling + heads of a trained pipeline to ONNX Runtime.

    Example: spacy-senti export-onnx training/sentiment/model-best model_onnx --quantize int8
    """
    check_exists(pipeline, "PIPELINE")
    from ..onnx import MANIFEST
    from ..onnx.export import export_onnx
    from ..util import load_pipeline

    # load_pipeline says what is wrong with a folder that is not a spaCy pipeline (an ONNX
    # export included) before anything is written
    nlp = load_pipeline(pipeline, what="PIPELINE")
    out = export_onnx(nlp, out_dir, quantize=quantize or None, opset=opset,
                      component=component or None, optimize=optimize)
    files = sorted(p.name for p in out.iterdir())
    typer.secho(f"Exported to {out}: {', '.join(files)}", fg="green")
    info = json.loads((out / MANIFEST).read_text(encoding="utf8"))["optimization"]
    if info["optimized"]:
        ops = ", ".join(f"{n} {op}" for op, n in info["fused_ops"].items())
        typer.echo(f"Graph fused by onnxruntime's transformer optimizer: {ops}.")
    elif optimize:
        typer.echo(f"Graph not fused: {info['reason']}")
