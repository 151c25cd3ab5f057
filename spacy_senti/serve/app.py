"""FastAPI app: ``POST /v1/analyze``, ``GET /health``, ``GET /v1/model`` (+ OpenAPI at /docs).

``create_app(model_path, settings)`` serves either a spaCy pipeline directory (with
``senti_textcat``, optionally ``senti_lexicon`` for ``explain``) or an ONNX export folder
(``senti_onnx.json``; no torch needed). Texts of concurrent requests are micro-batched.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from ..onnx.runner import MANIFEST
from .batching import MicroBatcher, QueueFullError
from .schemas import (
    AnalyzeRequest,
    AnalyzeResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    ServeSettings,
)

logger = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse} for code in (400, 413, 422, 500, 503)}


class APIError(Exception):
    """A client error with a JSON body naming the field and the limit."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 limit: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.limit = field, limit

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "field": self.field,
                          "limit": self.limit}}
        return JSONResponse(body, status_code=self.status, headers=headers)


# --- backends ------------------------------------------------------------------------------
class Backend(Protocol):
    kind: str
    explain_available: bool

    def predict(self, texts: list[str], explain: bool) -> list[dict[str, Any]]: ...

    def info(self) -> dict[str, Any]: ...


def _heads_info(heads: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": h.name, "kind": h.kind, "labels": h.labels, "groups": h.groups,
             "threshold": h.threshold, "thresholds": h.thresholds} for h in heads]


class OnnxBackend:
    """The ONNX runner (no spaCy, no torch)."""

    kind = "onnx"
    explain_available = False

    def __init__(self, path: Path, settings: ServeSettings) -> None:
        from ..onnx.runner import SentiOnnx

        self.runner = SentiOnnx(path, variant=settings.variant, threads=settings.threads,
                                batch_size=settings.max_batch)

    def predict(self, texts: list[str], explain: bool) -> list[dict[str, Any]]:
        return self.runner.predict(texts)

    def info(self) -> dict[str, Any]:
        meta = self.runner.info
        return {"name": meta["name"], "version": meta["version"],
                "backend": f"onnx-{self.runner.variant}", "heads": _heads_info(self.runner.heads),
                "labels": self.runner.labels}


class SpacyBackend:
    """A spaCy pipeline with senti_textcat (or senti_onnx); senti_lexicon enables explain."""

    kind = "spacy"

    def __init__(self, nlp: Any, settings: ServeSettings) -> None:
        self.nlp = nlp
        self.batch_size = settings.max_batch
        self.heads = _pipeline_heads(nlp)
        self.explain_available = "senti_lexicon" in {
            nlp.get_pipe_meta(name).factory for name in nlp.pipe_names
        }

    def predict(self, texts: list[str], explain: bool) -> list[dict[str, Any]]:
        results = []
        for doc in self.nlp.pipe(texts, batch_size=self.batch_size):
            cats, heads = {}, {}
            for head in self.heads:
                values = [doc.cats.get(k, 0.0) for k in head.keys()]
                cats.update({k: float(v) for k, v in zip(head.keys(), values)})
                heads[head.name] = head.decode(values)
            result: dict[str, Any] = {"cats": cats, "heads": heads}
            if explain:
                result["explain"] = {
                    "lexicon_score": doc._.get("lexicon_score"),
                    "tokens": [{"text": t.text, "start": t.idx, "valence": t._.valence}
                               for t in doc if t._.get("valence") is not None],
                }
            results.append(result)
        return results

    def info(self) -> dict[str, Any]:
        meta = self.nlp.meta
        return {"name": f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}",
                "version": meta.get("version", "0.0.0"), "backend": "spacy",
                "heads": _heads_info(self.heads),
                "labels": [k for h in self.heads for k in h.keys()]}


def _pipeline_heads(nlp: Any) -> list[Any]:
    for _, pipe in nlp.pipeline:
        heads = getattr(pipe, "heads", None)
        if heads is None and getattr(pipe, "runner", None) is not None:
            heads = pipe.runner.heads
        if heads:
            return list(heads)
    raise ValueError(f"The pipeline {nlp.pipe_names} has no senti_textcat/senti_onnx component.")


def load_backend(model_path: str | Path, settings: ServeSettings) -> Backend:
    """ONNX export folder (senti_onnx.json) or spaCy pipeline directory / package."""
    path = Path(model_path)
    if (path / MANIFEST).exists():
        return OnnxBackend(path, settings)
    import spacy

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    return SpacyBackend(spacy.load(model_path), settings)


# --- app ---------------------------------------------------------------------------------
def create_app(model_path: str | Path | None = None, settings: ServeSettings | None = None,
               *, backend: Backend | None = None) -> FastAPI:
    """The FastAPI app; give ``model_path`` or a ready ``backend`` (tests)."""
    settings = settings or ServeSettings()
    if backend is None and model_path is None:
        raise ValueError("create_app needs model_path or backend")

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.backend = backend or load_backend(model_path, settings)  # type: ignore[arg-type]
        app.state.batcher = MicroBatcher(
            app.state.backend.predict, max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms, max_queue=settings.max_queue,
        )
        await app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(title="spacy-senti", version=_version(), lifespan=lifespan,
                  description="Sentiment, emotion and aspect analysis with spacy-senti.")
    app.state.settings = settings
    _add_error_handlers(app)
    _add_routes(app, settings)
    return app


def _version() -> str:
    from .. import __version__

    return __version__


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError) -> JSONResponse:
        return err.response()

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        return validation_error(err.errors()).response()


def validation_error(errors: Sequence[Any]) -> APIError:
    """The first pydantic error as an APIError naming the field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    return APIError(422, "invalid_field", f"{field}: {message}" if field else message, field)


def parse_request(body: bytes, settings: ServeSettings) -> AnalyzeRequest:
    """Strict UTF-8 + JSON decoding, schema validation and the size limits."""
    max_body = settings.max_texts * (settings.max_chars * 4 + 16) + 1024
    if len(body) > max_body:
        raise APIError(413, "body_too_large", f"request body over {max_body} bytes", "body",
                       max_body)
    try:
        text = body.decode("utf-8", errors="strict")
    except UnicodeDecodeError as err:
        raise APIError(400, "invalid_encoding",
                       f"body is not valid UTF-8 (byte {err.start})", "body") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise APIError(400, "invalid_json", f"body is not valid JSON: {err.msg} "
                       f"(line {err.lineno}, column {err.colno})", "body") from None
    if not isinstance(data, dict):
        raise APIError(422, "invalid_field", "body must be a JSON object", "body")
    try:
        request = AnalyzeRequest.model_validate(data)
    except ValidationError as err:
        raise validation_error(err.errors()) from None
    check_limits(request, settings)
    return request


def check_limits(request: AnalyzeRequest, settings: ServeSettings) -> None:
    field = "text" if request.text is not None else "texts"
    items = request.items()
    if not items:
        raise APIError(422, "empty", "texts must hold at least one text", "texts", 1)
    if len(items) > settings.max_texts:
        raise APIError(422, "too_many_texts", f"texts holds {len(items)} texts; the limit is "
                       f"{settings.max_texts}", "texts", settings.max_texts)
    for i, text in enumerate(items):
        where = field if field == "text" else f"texts[{i}]"
        if not text.strip():
            raise APIError(422, "empty_text", f"{where} is empty", where)
        if len(text) > settings.max_chars:
            raise APIError(422, "text_too_long", f"{where} has {len(text)} characters; the "
                           f"limit is {settings.max_chars}", where, settings.max_chars)


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    schema = AnalyzeRequest.model_json_schema()

    @app.post("/v1/analyze", response_model=AnalyzeResponse, responses=ERRORS,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": schema}}}})
    async def analyze(request: Request):
        """Analyse one text or a list of texts."""
        parsed = parse_request(await request.body(), settings)
        backend = request.app.state.backend
        if parsed.explain and not backend.explain_available:
            raise APIError(422, "explain_unavailable", "explain needs a spaCy pipeline with "
                           "senti_lexicon; this model has none", "explain")
        try:
            results = await request.app.state.batcher.submit(parsed.items(), parsed.explain)
        except QueueFullError as err:
            return APIError(503, "overloaded", f"server busy ({err}); retry later").response(
                headers={"Retry-After": "1"})
        except Exception:
            logger.exception("model error")
            return APIError(500, "model_error", "internal error while analysing the texts"
                            ).response()
        if not parsed.explain:
            for result in results:
                result.pop("explain", None)
        return {"model": backend.info()["name"], "results": results}

    @app.get("/health", response_model=Health)
    async def health(request: Request):
        """Liveness/readiness: the model is loaded and the batcher runs."""
        return {"status": "ok", "backend": request.app.state.backend.kind,
                "queued": request.app.state.batcher.queued}

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info(request: Request):
        """Name, version, heads, labels and thresholds of the served model."""
        backend = request.app.state.backend
        return {**backend.info(), "explain_available": backend.explain_available}


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``spacy-senti serve``, several workers)."""
    import os

    return create_app(os.environ["SPACY_SENTI_SERVE_MODEL"], ServeSettings.from_env())
