"""``spacy-senti serve``: the FastAPI service (uvicorn) for a pipeline or an ONNX export."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import typer

from ..errors import InputError
from ..util import check_exists
from ._util import app

VARIANTS = ("fp32", "int8")


@app.command("serve")
def serve_command(
    model: Path = typer.Argument(..., help="spaCy pipeline directory or ONNX export folder."),
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="uvicorn worker processes."),
    max_batch: int = typer.Option(32, "--max-batch", help="Texts per model call."),
    max_wait_ms: float = typer.Option(5.0, "--max-wait-ms", help="Wait for more texts (ms)."),
    max_gap_ms: float = typer.Option(None, "--max-gap-ms",
                                     help="Stop waiting for more texts once none arrived for "
                                          "this long (ms; default 1)."),
    max_texts: int = typer.Option(64, "--max-texts", help="Texts per request."),
    max_chars: int = typer.Option(5000, "--max-chars", help="Characters per text."),
    max_queue: int = typer.Option(256, "--max-queue", help="Queued requests before 503."),
    threads: int = typer.Option(0, "--threads", help="Model threads per worker (0: default)."),
    variant: str = typer.Option("", "--variant", help="ONNX model: fp32 or int8."),
    timeout_s: float = typer.Option(None, "--timeout-s",
                                    help="Per-request time budget in seconds (504 after it; "
                                         "default 10)."),
    max_batch_chars: int = typer.Option(None, "--max-batch-chars",
                                        help="Characters per model call (default 8000)."),
    max_repeat: int = typer.Option(None, "--max-repeat",
                                   help="Repeats of a 1-4 character symbol unit kept before "
                                        "tokenisation (default 8)."),
    max_span: int = typer.Option(None, "--max-span",
                                 help="Characters without whitespace before a space is "
                                      "inserted (default 100)."),
    max_explain_texts: int = typer.Option(None, "--max-explain-texts",
                                          help="Texts per request with explain: true "
                                               "(default 8)."),
    inline_chars: int = typer.Option(None, "--inline-chars",
                                     help="ONNX: a lone request of at most this many "
                                          "characters runs on the event loop's thread "
                                          "(default 1000; 0: never)."),
    timing: bool = typer.Option(False, "--timing",
                                help="Add a Server-Timing header to each analysis: where its "
                                     "time went in the server (ms)."),
) -> None:
    """Serve POST /v1/analyze, GET /health, GET /v1/model (OpenAPI docs at /docs).

    Example: spacy-senti serve model_onnx --port 8000 --max-batch 32
    """
    from ..serve.schemas import ServeSettings

    check_exists(model, "MODEL")
    if variant and variant not in VARIANTS:
        raise InputError(f"--variant must be one of {', '.join(VARIANTS)}, not {variant!r}.")
    given = {"timeout_s": timeout_s, "max_batch_chars": max_batch_chars,
             "max_repeat": max_repeat, "max_span": max_span,
             "max_explain_texts": max_explain_texts, "max_gap_ms": max_gap_ms,
             "inline_chars": inline_chars,
             "timing": timing or None}
    # options left out keep their SPACY_SENTI_SERVE_* environment value or the default
    settings = ServeSettings.from_env().model_copy(update={
        "max_batch": max_batch, "max_wait_ms": max_wait_ms, "max_texts": max_texts,
        "max_chars": max_chars, "max_queue": max_queue, "threads": threads or None,
        "variant": variant or None, **{k: v for k, v in given.items() if v is not None}})
    settings = ServeSettings.model_validate(settings.model_dump())
    os.environ.update(settings.to_env())
    os.environ["SPACY_SENTI_SERVE_MODEL"] = str(model)
    # exec a fresh interpreter: the server then imports only what the backend needs (an ONNX
    # export runs without torch or spaCy in memory)
    argv = [sys.executable, "-m", "uvicorn", "spacy_senti.serve.app:app_from_env", "--factory",
            "--host", host, "--port", str(port), "--workers", str(workers),
            "--log-level", "warning"]
    os.execv(sys.executable, argv)
