"""``spacy-senti score``: add predictions to every row of a JSONL, CSV or Parquet file."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

from ._util import app

HELP = """Add a pipeline's predictions to every row of a JSONL, CSV/TSV or Parquet file.

Score every row of INPUT (JSONL, CSV/TSV or Parquet) with PIPELINE and write the rows plus
prediction columns to OUTPUT (.jsonl or .parquet).

For each head: exclusive 'sentiment' -> sentiment, sentiment_scores; multilabel 'emotion' ->
emotions, emotion_labels; grouped 'aspect' -> aspects, aspect_scores; with senti_aspects,
aspect_terms (a list of {text, start, end, polarity, score}; a JSON string in Parquet); plus
'error' (why a row was not scored: empty or non-string text; its predictions are null). Rows
keep their order.

PIPELINE may also be a folder written by `spacy-senti export-onnx`: it runs on ONNX Runtime
(CPU; --onnx-variant fp32 or int8, default the export's) with the same output columns.

--engine local streams in batches, writes a checkpoint (OUTPUT.checkpoint.json) after every
batch and resumes after an interruption. --engine ray writes a directory OUTPUT of part files
(Parquet, or JSON lines if OUTPUT ends in .jsonl); --address joins a cluster.
"""


class Engine(str, Enum):
    local = "local"
    ray = "ray"


class Variant(str, Enum):
    fp32 = "fp32"
    int8 = "int8"


@app.command("score", help=HELP)
def score_command(
    pipeline: str = typer.Argument(..., help="Pipeline directory, installed package or ONNX "
                                   "export folder (spacy-senti export-onnx)."),
    input_path: Path = typer.Argument(..., metavar="INPUT", help="JSONL, CSV/TSV or Parquet."),
    output: Path = typer.Argument(..., help="Output .jsonl or .parquet (ray: a directory)."),
    text_column: str = typer.Option("text", "--text-column", "-t", help="Column with text."),
    engine: Engine = typer.Option(Engine.local, "--engine", "-e", help="local or ray."),
    batch_size: int = typer.Option(256, "--batch-size", "-b", min=1,
                                   help="Rows per batch (and per checkpoint)."),
    n_process: int = typer.Option(1, "--n-process", "-n", min=1,
                                  help="local: nlp.pipe worker processes; ray: actors."),
    address: str = typer.Option(None, "--address",
                                help="ray: cluster address ('auto', 'ray://HEAD:10001'); "
                                     "default: start a local Ray runtime."),
    num_cpus: int = typer.Option(None, "--num-cpus",
                                 help="ray: CPUs of the local runtime (default: all)."),
    threads: int = typer.Option(None, "--threads", min=1,
                                help="local: torch threads, or onnxruntime threads for an "
                                     "ONNX export (default: the library's; 1 per worker when "
                                     "--n-process > 1)."),
    onnx_variant: Variant = typer.Option(None, "--onnx-variant",
                                         help="ONNX export only: fp32 or int8 model (default: "
                                              "the export's default)."),
    gpu: bool = typer.Option(False, "--gpu", help="Score on a GPU (ray: one per actor)."),
    resume: bool = typer.Option(True, "--resume/--no-resume",
                                help="local: continue an interrupted run from its checkpoint."),
    prefix: str = typer.Option("", "--prefix",
                               help="Prefix for the prediction column names, e.g. pred_."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show a progress bar."),
    overwrite: bool = typer.Option(False, "--overwrite",
                                   help="local: replace an existing OUTPUT that has no "
                                        "checkpoint (by default such a file is never touched)."),
) -> None:
    """Score every row of INPUT with PIPELINE (the help text is HELP)."""
    variant = onnx_variant.value if onnx_variant is not None else None
    if engine == Engine.ray:
        from ..batch.ray_engine import score_ray

        summary = score_ray(pipeline, input_path, output, text_column=text_column,
                            batch_size=batch_size, concurrency=n_process, address=address,
                            gpu=gpu, prefix=prefix, num_cpus=num_cpus, onnx_variant=variant)
    else:
        from ..batch.local import score_local

        summary = score_local(pipeline, input_path, output, text_column=text_column,
                              batch_size=batch_size, n_process=n_process, gpu=gpu,
                              resume=resume, prefix=prefix, progress=progress, threads=threads,
                              overwrite=overwrite, onnx_variant=variant)
    for line in summary.lines():
        typer.echo(line)
