"""FastAPI app: ``POST /v1/analyze``, ``GET /health``, ``GET /v1/model`` (+ OpenAPI at /docs)
and a web page at ``GET /`` (``static/``: plain HTML, CSS and JS, nothing external).

``create_app(model_path, settings)`` serves either a spaCy pipeline directory (with
``senti_textcat``; ``explain`` gives the model's token attributions on transformer pipelines
and ``senti_lexicon``'s valences) or an ONNX export folder (``senti_onnx.json``; no torch
needed, no explain). Texts of concurrent requests are micro-batched. Answers are serialised
with orjson straight from the results (their shape is ``AnalyzeResponse``'s, tested), and
``ServeSettings.timing`` adds a ``Server-Timing`` header saying where each request's time went.

Hostile input is answered, never served to the model as is: the body is read only up to its
limit (413), JSON nested too deeply is a 400, lone surrogates a 422, repeated punctuation is
normalised before tokenisation (``normalize.py``), a request waits at most ``timeout_s``
(504) and every error, 404 and 405 included, has the body ``{"error": {...}}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from ..onnx.runner import MANIFEST
from .batching import MicroBatcher, QueueFullError, RequestTiming
from .normalize import Normalized, normalize_text
from .schemas import (
    NOT_BLANK,
    AnalyzeRequest,
    AnalyzeResponse,
    ErrorResponse,
    Health,
    ModelInfo,
    ServeSettings,
    request_schema,
)

logger = logging.getLogger(__name__)
ERRORS = {code: {"model": ErrorResponse} for code in (400, 413, 422, 500, 503, 504)}
SURROGATE = re.compile("[\ud800-\udfff]")
NOT_BLANK_RE = re.compile(NOT_BLANK)
HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}
STATIC = Path(__file__).parent / "static"
#: integrated-gradient steps per explained text: as faithful as 50 on SST-2 dev (comprehensiveness
#: 0.491 vs 0.497, bench/results/explain.md) at about a third of the cost
EXPLAIN_IG_STEPS = 16
# the page loads nothing from elsewhere (no CDN, no web fonts): say so to the browser
PAGE_HEADERS = {"Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
                "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
                "X-Content-Type-Options": "nosniff"}


class APIError(Exception):
    """A client error with a JSON body naming the field and the limit."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None,
                 limit: int | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.field, self.limit = field, limit

    headers: dict[str, str] | None = None

    def response(self, headers: dict[str, str] | None = None) -> JSONResponse:
        body = {"error": {"code": self.code, "message": self.message, "field": self.field,
                          "limit": self.limit}}
        return JSONResponse(body, status_code=self.status, headers=headers)


# --- backends ------------------------------------------------------------------------------
class Backend(Protocol):
    kind: str
    explain_available: bool

    def predict(self, texts: list[str], explain: list[bool]) -> list[dict[str, Any]]:
        """One result per text; ``explain``: one flag per text."""
        ...

    def info(self) -> dict[str, Any]: ...


def _heads_info(heads: Sequence[Any]) -> list[dict[str, Any]]:
    return [{"name": h.name, "kind": h.kind, "labels": h.labels, "groups": h.groups,
             "threshold": h.threshold, "thresholds": h.thresholds} for h in heads]


class OnnxBackend:
    """The ONNX runner (no spaCy, no torch)."""

    kind = "onnx"
    explain_available = False
    inline = True  # a short call may run on the event loop's thread (settings.inline_chars)

    def __init__(self, path: Path, settings: ServeSettings) -> None:
        from ..onnx.runner import SentiOnnx

        self.runner = SentiOnnx(path, variant=settings.variant, threads=settings.threads,
                                batch_size=settings.max_batch)

    def predict(self, texts: list[str], explain: list[bool]) -> list[dict[str, Any]]:
        return self.runner.predict(texts)

    def info(self) -> dict[str, Any]:
        meta = self.runner.info
        return {"name": meta["name"], "version": meta["version"],
                "backend": f"onnx-{self.runner.variant}", "heads": _heads_info(self.runner.heads),
                "labels": self.runner.labels}


class SpacyBackend:
    """A spaCy pipeline with senti_textcat (or senti_onnx), senti_aspects, or both.

    ``aspect_terms`` (each result's list of terms) when a component sets
    ``doc._.aspect_terms``; the route answers null otherwise.

    ``explain``: token attributions (``spacy_senti.explain``, integrated gradients with
    ``EXPLAIN_IG_STEPS`` steps towards the first head's predicted label) where the classifier
    is a transformer senti_textcat, plus senti_lexicon's valences where the pipeline has one;
    lexicon valences only for a senti_onnx or tok2vec classifier with senti_lexicon;
    unavailable with neither.
    """

    kind = "spacy"

    def __init__(self, nlp: Any, settings: ServeSettings, *, backend_name: str = "spacy"
                 ) -> None:
        self.nlp = nlp
        self.backend_name = backend_name
        if backend_name != "spacy":
            self.kind = backend_name.split("-")[0]
        self.batch_size = settings.max_batch
        from ..errors import InputError
        from ..util import aspect_term_components, find_textcat, head_specs

        self.aspect_terms = bool(aspect_term_components(nlp))
        try:
            self.heads = head_specs(find_textcat(nlp))
        except InputError:
            if not self.aspect_terms:
                raise
            self.heads = []  # aspect terms only
        self.lexicon = "senti_lexicon" in {
            nlp.get_pipe_meta(name).factory for name in nlp.pipe_names
        }
        self.explainer = _explainer(nlp)
        self.explain_available = self.explainer is not None or self.lexicon

    def predict(self, texts: list[str], explain: list[bool]) -> list[dict[str, Any]]:
        results = []
        docs = self.nlp.pipe(texts, batch_size=self.batch_size)
        for doc, wanted in zip(docs, explain):
            cats, heads = {}, {}
            for head in self.heads:
                values = [doc.cats.get(k, 0.0) for k in head.keys()]
                cats.update({k: float(v) for k, v in zip(head.keys(), values)})
                heads[head.name] = head.decode(values)
            result: dict[str, Any] = {"cats": cats, "heads": heads}
            if self.aspect_terms:
                result["aspect_terms"] = aspect_terms(doc)
            if wanted:
                result["explain"] = self.explain(doc)
            results.append(result)
        return results

    def explain(self, doc: Any) -> dict[str, Any]:
        """Attributions (the first head's predicted label) and lexicon valences per token."""
        entry: dict[str, Any] = {}
        target = None
        if self.explainer is not None:
            entry = self.explainer.explain(doc) or {}
            target = next(iter(doc._.attributions or {}), None)
        from spacy.tokens import Token

        scores = entry.get("scores") or [None] * len(doc)
        valence = self.lexicon and Token.has_extension("valence")
        return {
            "method": entry.get("method"), "target": target,
            "target_prob": entry.get("target_prob"),
            "lexicon_score": doc._.get("lexicon_score") if self.lexicon else None,
            "tokens": [{"text": t.text, "start": t.idx, "end": t.idx + len(t.text),
                        "attribution": score, "valence": t._.get("valence") if valence else None}
                       for t, score in zip(doc, scores)],
        }

    def info(self) -> dict[str, Any]:
        meta = self.nlp.meta
        return {"name": f"{meta.get('lang', 'xx')}_{meta.get('name', 'pipeline')}",
                "version": meta.get("version", "0.0.0"), "backend": self.backend_name,
                "heads": _heads_info(self.heads),
                "labels": [k for h in self.heads for k in h.keys()],
                "aspect_terms": self.aspect_terms}


def aspect_terms(doc: Any) -> list[dict[str, Any]]:
    """``doc._.aspect_terms`` as plain JSON values (an empty list when unset)."""
    return [{"text": str(t["text"]), "start": int(t["start"]), "end": int(t["end"]),
             "polarity": str(t["polarity"]), "score": float(t["score"])}
            for t in doc._.get("aspect_terms") or []]


def _explainer(nlp: Any) -> Any:
    """A ``spacy_senti.explain.Explainer`` for the pipeline, or None where it cannot attribute
    (a senti_onnx or tok2vec classifier; Captum not installed)."""
    import importlib.util

    from ..errors import SentiError

    if importlib.util.find_spec("captum") is None:
        logger.warning("explain: no token attributions (pip install captum); lexicon only")
        return None
    from ..explain import Explainer

    try:
        return Explainer(nlp, n_steps=EXPLAIN_IG_STEPS)
    except SentiError as err:
        logger.info("explain: no token attributions for this pipeline: %s", err)
        return None


def load_backend(model_path: str | Path, settings: ServeSettings) -> Backend:
    """ONNX export folder (senti_onnx.json) or spaCy pipeline directory / package.

    An export with aspect terms runs as ``spacy.blank`` + ``senti_onnx`` (the terms are
    tagged on spaCy's tokens), still on onnxruntime without torch's model.
    """
    from ..util import load_pipeline, onnx_export_info, onnx_variant

    path = Path(model_path)
    if (path / MANIFEST).exists():
        info = onnx_export_info(path) or {}
        if not info.get("aspects"):
            return OnnxBackend(path, settings)
        variant = onnx_variant(info, settings.variant)
        nlp = load_pipeline(path, allow_onnx=True, variant=variant, threads=settings.threads)
        return SpacyBackend(nlp, settings, backend_name=f"onnx-{variant}")

    if settings.threads:
        import torch

        torch.set_num_threads(settings.threads)
    return SpacyBackend(load_pipeline(model_path), settings)


def restore_offsets(normed: Sequence[Normalized], results: list[dict[str, Any]],
                    originals: Sequence[str] | None = None) -> None:
    """Map explain token and aspect term offsets from the normalised texts back to the texts
    as sent (``originals``: those texts, to give each term its text as sent)."""
    for i, (norm, result) in enumerate(zip(normed, results)):
        if not norm.changed:
            continue
        for token in (result.get("explain") or {}).get("tokens") or []:
            token["start"], token["end"] = _origin_span(norm, token["start"], token["end"])
        for term in result.get("aspect_terms") or []:
            term["start"], term["end"] = _origin_span(norm, term["start"], term["end"])
            if originals is not None:
                term["text"] = originals[i][term["start"]:term["end"]]


def _origin_span(norm: Normalized, start: int, end: int) -> tuple[int, int]:
    """A normalised [start, end) as offsets of the original text: the end follows the span's
    last character (an empty span keeps its start)."""
    origin = norm.origin(start)
    return origin, (norm.origin(end - 1) + 1 if end > start else origin)


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
        app.state.model_name = None  # backend.info()["name"], read on the first analysis
        app.state.batcher = MicroBatcher(
            app.state.backend.predict, max_batch=settings.max_batch,
            max_wait_ms=settings.max_wait_ms, max_gap_ms=settings.max_gap_ms,
            max_queue=settings.max_queue,
            max_chars=settings.max_batch_chars,
            inline_chars=settings.inline_chars if getattr(app.state.backend, "inline", False)
            else 0,
        )
        await app.state.batcher.start()
        yield
        await app.state.batcher.stop()

    app = FastAPI(title="spacy-senti", version=_version(), lifespan=lifespan,
                  description=api_description(settings))
    app.state.settings = settings
    _add_error_handlers(app)
    _add_routes(app, settings)
    _add_openapi(app, settings)
    return app


def api_description(settings: ServeSettings) -> str:
    """The OpenAPI description: what the service accepts, changes and rejects."""
    n_explain = min(settings.max_explain_texts, settings.max_texts)
    return f"""Sentiment, emotion and aspect analysis with spacy-senti. A web page for trying
it is at `/`.

**Limits** (this server's settings): {settings.max_texts} texts per request ({n_explain} with
`explain: true`: each costs a backward pass through the model), {settings.max_chars}
characters per text (not only whitespace), {settings.max_body} bytes per body (413, read no
further), a time budget of {settings.timeout_s:g} s per request (504).

**Explain** (`explain: true`, spaCy pipelines): per token, the model's attribution
(`method`: `grad`, gradient x input, towards `target`: the first head's predicted label; on
transformer pipelines) and the lexicon valence (with `senti_lexicon`). A model with neither
(an ONNX export) answers 422 `explain_unavailable`.

**Normalisation before tokenisation** (both backends; spaCy's tokenizer is quadratic on long
runs of punctuation): a unit of 1-4 characters that starts with a symbol (`!`, `:)`, `.a`)
repeated more than {settings.max_repeat} times in a row is cut to {settings.max_repeat}
repetitions, and a stretch without whitespace longer than {settings.max_span} characters gets a
space every {settings.max_span} characters. Predictions are for the normalised text; token
offsets in `explain` and aspect term offsets refer to the text as sent.

**Aspect terms** (models with `senti_aspects`): each result's `aspect_terms` lists the terms
found, in text order, with character offsets, polarity and its probability (an empty list
when there is none); it is null for other models.

**Errors** have the body `{{"error": {{"code", "message", "field", "limit"}}}}`: 400 invalid
JSON / encoding / nesting, 404, 405, 413 body too large, 422 a field breaks the schema or a
limit (also lone surrogates such as `"\\ud800"`, which JSON allows), 500 model or server
error, 503 queue full or a model call stuck past the budget (`Retry-After`), 504 time budget
spent. `GET /health` answers 503 with status `busy` or `stuck` while it cannot serve.
"""


def _add_openapi(app: FastAPI, settings: ServeSettings) -> None:
    """The request schema states the served model's explain support once it is loaded."""
    build = app.openapi
    cache: dict[bool, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        backend = getattr(app.state, "backend", None)
        explain = True if backend is None else bool(backend.explain_available)
        if explain not in cache:
            app.openapi_schema = None
            schema = build()
            body = schema["paths"]["/v1/analyze"]["post"]["requestBody"]
            body["content"]["application/json"]["schema"] = request_schema(settings, explain)
            cache[explain] = schema
        app.openapi_schema = cache[explain]
        return cache[explain]

    app.openapi = openapi  # type: ignore[method-assign]


def _version() -> str:
    from .. import __version__

    return __version__


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(APIError)
    async def _api_error(request: Request, err: APIError) -> JSONResponse:
        return err.response(err.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, err: RequestValidationError) -> JSONResponse:
        return validation_error(err.errors()).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, err: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(err.status_code, f"http_{err.status_code}")
        message = str(err.detail)
        if err.status_code == 404:
            message = f"no route {request.url.path}; see /docs"
        elif err.status_code == 405:
            allowed = (err.headers or {}).get("Allow", "")
            message = f"{request.method} is not allowed on {request.url.path} (allowed: {allowed})"
        return APIError(err.status_code, code, message).response(dict(err.headers or {}))

    @app.exception_handler(Exception)
    async def _internal(request: Request, err: Exception) -> JSONResponse:
        logger.error("internal error on %s %s: %r", request.method, request.url.path, err)
        return APIError(500, "internal_error", "internal server error").response()


def _default(value: Any) -> Any:
    """numpy scalars and arrays as plain JSON values."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


try:
    import orjson

    def dump_json(content: Any) -> bytes:
        """JSON bytes of a response body (orjson; numpy values allowed)."""
        return orjson.dumps(content, default=_default, option=orjson.OPT_SERIALIZE_NUMPY)
except ImportError:  # pragma: no cover - orjson is in the serve extra
    def dump_json(content: Any) -> bytes:
        """JSON bytes of a response body (numpy values allowed)."""
        return json.dumps(content, ensure_ascii=False, separators=(",", ":"),
                          default=_default).encode("utf-8")


def server_timing(clock: float, read: float, parse: float, timing: RequestTiming,
                  woke: float) -> str:
    """The ``Server-Timing`` header of one analysis: ms per stage and the model call's size.

    read: the body; parse: JSON, schema and limits; norm: normalisation; queue: waiting for
    a model call; handoff: to the model thread and back; model: the model calls (tokenise,
    run, decode; shared with the other requests of the call); wake: from the result to this
    handler; resp: serialising the answer; app: all of it.
    """
    now = time.perf_counter()
    started = timing.started if timing.started is not None else woke
    finished = timing.finished if timing.finished is not None else woke
    ms = {"read": read - clock, "parse": parse - read, "norm": timing.queued - parse,
          "queue": started - timing.queued, "handoff": timing.handoff_s,
          "model": timing.model_s, "wake": woke - finished, "resp": now - woke,
          "app": now - clock}
    metrics = [f"{name};dur={1000 * value:.3f}" for name, value in ms.items()]
    return ", ".join([*metrics, f"batch;desc={timing.batch}", f"calls;desc={timing.calls}"])


def validation_error(errors: Sequence[Any]) -> APIError:
    """The first pydantic error as an APIError naming the field."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    return APIError(422, "invalid_field", f"{field}: {message}" if field else message, field)


def body_too_large(limit: int) -> APIError:
    err = APIError(413, "body_too_large", f"request body over {limit} bytes", "body", limit)
    err.headers = {"Connection": "close"}  # the rest of the body is not read
    return err


async def read_body(request: Request, limit: int) -> bytes:
    """The body, read no further than ``limit`` bytes (413 past it, chunked bodies too)."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise body_too_large(limit)
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise body_too_large(limit)
    except ClientDisconnect:
        raise APIError(400, "disconnected", "the client closed the connection", "body") from None
    return bytes(body)


def parse_request(body: bytes, settings: ServeSettings) -> AnalyzeRequest:
    """Strict UTF-8 + JSON decoding, schema validation and the size limits."""
    if len(body) > settings.max_body:
        raise body_too_large(settings.max_body)
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
    except RecursionError:
        raise APIError(400, "invalid_json", "body is not acceptable JSON: nested too deeply",
                       "body") from None
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
        if NOT_BLANK_RE.search(text) is None:  # the schema's pattern, so both agree
            raise APIError(422, "empty_text", f"{where} is empty", where)
        if len(text) > settings.max_chars:
            raise APIError(422, "text_too_long", f"{where} has {len(text)} characters; the "
                           f"limit is {settings.max_chars}", where, settings.max_chars)
        bad = SURROGATE.search(text)
        if bad is not None:
            raise APIError(422, "invalid_text", f"{where} holds a lone surrogate "
                           f"(U+{ord(bad.group()):04X} at {bad.start()}): not Unicode text",
                           where)


def _add_routes(app: FastAPI, settings: ServeSettings) -> None:
    schema = request_schema(settings)
    retry = {"Retry-After": "1"}

    @app.post("/v1/analyze", response_model=AnalyzeResponse, responses=ERRORS,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": schema}}}})
    async def analyze(request: Request):
        """Analyse one text or a list of texts (limits and errors: see the API description)."""
        started = time.monotonic()
        clock = time.perf_counter() if settings.timing else 0.0
        body = await read_body(request, settings.max_body)
        read = time.perf_counter() if settings.timing else 0.0
        parsed = parse_request(body, settings)
        backend = request.app.state.backend
        batcher: MicroBatcher = request.app.state.batcher
        if parsed.explain and not backend.explain_available:
            raise APIError(422, "explain_unavailable", "explain needs a spaCy pipeline (a "
                           "transformer senti_textcat or senti_lexicon); this model has "
                           "neither", "explain")
        n_texts = len(parsed.items())
        if parsed.explain and n_texts > settings.max_explain_texts:
            raise APIError(422, "too_many_explain_texts", f"texts holds {n_texts} texts; with "
                           f"explain the limit is {settings.max_explain_texts}", "texts",
                           settings.max_explain_texts)
        if batcher.running_for() > settings.timeout_s:
            return APIError(503, "stuck", "a model call has run longer than the time budget; "
                            "retry later", limit=int(settings.timeout_s)).response(retry)
        parse = time.perf_counter() if settings.timing else 0.0
        # normalised here, so the batcher's character budget counts what the model will see
        normed = [normalize_text(t, settings.max_repeat, settings.max_span)
                  for t in parsed.items()]
        timing = RequestTiming() if settings.timing else None
        budget = settings.timeout_s - (time.monotonic() - started)
        try:
            # a future, not a coroutine: wait_for then needs no task of its own
            results = await asyncio.wait_for(
                batcher.enqueue([n.text for n in normed], parsed.explain, timing),
                timeout=max(budget, 0.001))
        except QueueFullError as err:
            return APIError(503, "overloaded", f"server busy ({err}); retry later").response(
                retry)
        except asyncio.TimeoutError:
            return APIError(504, "timeout", f"no result within the time budget of "
                            f"{settings.timeout_s:g} s", limit=int(settings.timeout_s)
                            ).response()
        except Exception:
            logger.exception("model error")
            return APIError(500, "model_error", "internal error while analysing the texts"
                            ).response()
        woke = time.perf_counter() if settings.timing else 0.0
        restore_offsets(normed, results, parsed.items())
        for result in results:  # AnalyzeResult's optional fields: null when not given
            if not parsed.explain:
                result["explain"] = None
            result.setdefault("aspect_terms", None)
        # AnalyzeResponse's shape, serialised directly (no per-request pydantic models; the
        # tests check the body against the model)
        state = request.app.state
        if state.model_name is None:
            state.model_name = backend.info()["name"]
        payload = dump_json({"model": state.model_name, "results": results})
        headers = None
        if timing is not None:
            headers = {"Server-Timing": server_timing(clock, read, parse, timing, woke)}
        return Response(payload, media_type="application/json", headers=headers)

    @app.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health(request: Request):
        """Readiness: 200 ``ok``; 503 ``busy`` (queue full) or ``stuck`` (a model call has
        run longer than the time budget)."""
        batcher: MicroBatcher = request.app.state.batcher
        running = batcher.running_for()
        status = "stuck" if running > settings.timeout_s else "busy" if batcher.full else "ok"
        body = {"status": status, "backend": request.app.state.backend.kind,
                "queued": batcher.queued, "running_s": round(running, 3)}
        if status != "ok":
            return JSONResponse(body, status_code=503, headers=retry)
        return body

    @app.get("/", include_in_schema=False)
    async def page():
        """The web page: a text box, each head's probabilities, tokens tinted by attribution."""
        return FileResponse(STATIC / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/v1/model", response_model=ModelInfo)
    async def model_info(request: Request):
        """Name, version, heads, labels and thresholds of the served model."""
        backend = request.app.state.backend
        return {**backend.info(), "explain_available": backend.explain_available}


def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (``spacy-senti serve``, several workers)."""
    import os

    settings = ServeSettings.from_env()
    fix_mmap_threshold(settings.mmap_threshold)
    return create_app(os.environ["SPACY_SENTI_SERVE_MODEL"], settings)


def fix_mmap_threshold(threshold: int) -> bool:
    """Fix glibc's mmap threshold for this process (before the model loads).

    glibc raises the threshold each time a large block is freed, so the model's ever-changing
    batch tensors end up on the heap, which fragments: the spaCy backend's RSS grew from 711
    to 844 MB in 90 s of a hostile soak (and +55 MB without hostile load), and stayed at
    649-651 MB with a fixed 128 KiB threshold. No-op off glibc or with ``threshold=0``.
    """
    if threshold <= 0:
        return False
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(-3, threshold))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False
