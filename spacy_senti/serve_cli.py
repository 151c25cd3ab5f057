"""Command ``spacy-senti serve`` (registered in cli.py)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer


def serve_command(
    model: Path = typer.Argument(..., help="spaCy pipeline directory or ONNX export folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes."),
    max_batch: int = typer.Option(32, "--max-batch", help="Texts per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Wait for more texts (ms)."),
    max_texts: int = typer.Option(64, "--max-texts", help="Texts per request."),
    max_chars: int = typer.Option(5000, "--max-chars", help="Characters per text."),
    max_queue: int = typer.Option(256, "--max-queue", help="Queued requests before 503."),
    threads: int = typer.Option(0, "--threads", help="Model threads per worker (0: default)."),
    variant: str = typer.Option("", "--variant", help="ONNX model: fp32 or int8."),
) -> None:
    """Serve POST /v1/analyze, GET /health, GET /v1/model (OpenAPI docs at /docs).

    Example: spacy-senti serve model_onnx --port 8000 --max-batch 32
    """
    from .serve.schemas import ServeSettings

    if not model.exists():
        typer.secho(f"{model} not found.", fg="red", err=True)
        raise typer.Exit(1)
    settings = ServeSettings(max_batch=max_batch, max_wait_ms=max_wait_ms, max_texts=max_texts,
                             max_chars=max_chars, max_queue=max_queue, threads=threads or None,
                             variant=variant or None)
    os.environ.update(settings.to_env())
    os.environ["SPACY_SENTI_SERVE_MODEL"] = str(model)
    # exec a fresh interpreter: the server then imports only what the backend needs (an ONNX
    # export runs without torch or spaCy in memory)
    argv = [sys.executable, "-m", "uvicorn", "spacy_senti.serve.app:app_from_env", "--factory",
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--log-level", "warning"]
    os.execv(sys.executable, argv)
