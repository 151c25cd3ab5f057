"""Request/response models and settings of the HTTP service."""

from __future__ import annotations

import os
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)

ENV_PREFIX = "SPACY_SENTI_SERVE_"
# Whitespace as Python (str.isspace) and JavaScript (\s, which adds U+FEFF) know it, spelled
# out: "\S" means other things to other regex engines (U+001C-U+001F are whitespace to Python,
# not to ECMA or Rust), and the published pattern must read the same everywhere.
BLANK = ("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f"
         "\u205f\u3000\ufeff")
NOT_BLANK = f"[^{BLANK}]"  # a text needs one character that is not whitespace


class ServeSettings(BaseModel):
    """Limits and batching of ``spacy-senti serve`` (also read from SPACY_SENTI_SERVE_* env)."""

    max_batch: int = Field(32, ge=1, description="texts per model call")
    max_wait_ms: float = Field(5.0, ge=0, description="wait for more texts before a call "
                               "(only while requests arrive concurrently), at most this long")
    max_gap_ms: float = Field(1.0, ge=0, description="stop waiting for more texts once none "
                              "has arrived for this long")
    max_texts: int = Field(64, ge=1, description="texts per request")
    max_explain_texts: int = Field(8, ge=1, description="texts per request with explain: "
                                   "true (each costs a backward pass through the model)")
    max_chars: int = Field(5000, ge=1, description="characters per text")
    max_queue: int = Field(256, ge=1, description="queued requests before 503")
    threads: int | None = Field(None, ge=1, description="model threads (torch/onnxruntime)")
    variant: str | None = Field(None, description="ONNX variant: fp32 or int8")
    timeout_s: float = Field(10.0, gt=0, description="per-request time budget (s): 504 after "
                             "it; /health says 'stuck' while one model call runs longer")
    max_batch_chars: int = Field(8_000, ge=1, description="characters per model call; a "
                                 "longer request runs in several calls, between which other "
                                 "requests get their turn")
    max_repeat: int = Field(8, ge=1, description="a unit of 1-4 characters starting with a "
                            "symbol (e.g. '!', ':)') repeated more often in a row is cut to "
                            "this many repetitions before tokenisation")
    max_span: int = Field(100, ge=8, description="a stretch without whitespace longer than "
                          "this gets a space every max_span characters before tokenisation")
    inline_chars: int = Field(1000, ge=0, description="ONNX backend: a lone request of at "
                              "most this many characters runs its model call on the event "
                              "loop's thread, without the hand-off to the model thread (0: "
                              "never)")
    timing: bool = Field(False, description="answer each analysis with a Server-Timing "
                         "header: where the request's time went in the server (read, parse, "
                         "norm, queue, handoff, model, wake, resp, app; ms)")
    mmap_threshold: int = Field(131_072, ge=0, description="glibc's mmap threshold (bytes) for "
                                "the server process; a fixed one keeps RSS flat under varied "
                                "batch shapes (0: glibc's sliding default)")

    @property
    def max_body(self) -> int:
        """Largest request body in bytes: every text at max_chars, each character written as
        a JSON escape pair (12 bytes, e.g. \\ud83d\\ude00), plus 4 KiB for the rest."""
        return self.max_texts * (self.max_chars * 12 + 8) + 4096

    @classmethod
    def from_env(cls) -> ServeSettings:
        values = {
            name: os.environ[ENV_PREFIX + name.upper()]
            for name in cls.model_fields
            if ENV_PREFIX + name.upper() in os.environ
        }
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        return {ENV_PREFIX + k.upper(): str(v) for k, v in self.model_dump().items()
                if v is not None}


class AnalyzeRequest(BaseModel):
    """``{"text": "..."}`` or ``{"texts": ["...", ...]}``, optionally ``"explain": true``.

    Types only; the limits (which depend on ServeSettings) are checked in ``app.check_limits``
    and published by ``request_schema(settings)``.
    """

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = None
    explain: StrictBool = False

    @field_validator("text", "texts", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:  # only an explicit null gets here; leave the field out instead
            raise ValueError("must not be null (leave the field out)")
        return value

    @model_validator(mode="after")
    def _one_of(self) -> AnalyzeRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list)")
        return self

    def items(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


def request_schema(settings: ServeSettings, explain_available: bool = True) -> dict[str, Any]:
    """The JSON schema of ``POST /v1/analyze``'s body, with every limit the server enforces.

    Not expressible here: the body size limit (``settings.max_body`` bytes, 413) and lone
    surrogates (``"\\ud800"`` is valid JSON but not a Unicode text: 422 ``invalid_text``).
    """
    text = {"type": "string", "minLength": 1, "maxLength": settings.max_chars,
            "pattern": NOT_BLANK,
            "description": f"1 to {settings.max_chars} characters, not only whitespace"}
    n_explain = min(settings.max_explain_texts, settings.max_texts)
    explain: dict[str, Any] = {
        "type": "boolean", "default": False,
        "description": "add per-token explanations: the model's attributions (gradient x "
        "input towards the first head's predicted label; spaCy transformer pipelines) and "
        f"lexicon valences (with senti_lexicon); at most {n_explain} texts per request"}
    if not explain_available:
        explain = {**explain, "enum": [False], "description": "this model cannot explain "
                   "(no PyTorch model to attribute, no senti_lexicon): only false is accepted"}
    texts_note = f"1 to {settings.max_texts} texts"
    schema: dict[str, Any] = {
        "title": "AnalyzeRequest",
        "description": "Exactly one of `text` or `texts`.",
        "type": "object",
        "properties": {
            "text": {**text, "title": "Text"},
            "texts": {"type": "array", "title": "Texts", "items": text, "minItems": 1,
                      "maxItems": settings.max_texts, "description": texts_note},
            "explain": {**explain, "title": "Explain"},
        },
        "additionalProperties": False,
        "oneOf": [{"required": ["text"]}, {"required": ["texts"]}],
    }
    if explain_available and n_explain < settings.max_texts:
        # explanations cost a backward pass each: fewer texts with explain: true
        schema["properties"]["texts"]["description"] += f" ({n_explain} with explain: true)"
        schema["if"] = {"properties": {"explain": {"const": True}}, "required": ["explain"]}
        schema["then"] = {"properties": {"texts": {"maxItems": n_explain}}}
    return schema


class TokenExplanation(BaseModel):
    text: str
    start: int = Field(description="character offset of the token in the text as sent (the "
                       "service's normalisation of punctuation runs is undone)")
    end: int = Field(description="end offset (exclusive) of the token in the text as sent")
    attribution: float | None = Field(description="the token's share of the target's "
                                      "probability (> 0: raises it); null without attributions")
    valence: float | None = Field(description="the token's lexicon valence; null when the "
                                  "word is not in the lexicon or there is no senti_lexicon")


class Explanation(BaseModel):
    method: str | None = Field(description="how attributions were computed: grad (gradient x "
                               "input); null when the model gives none (lexicon valences only)")
    target: str | None = Field(description="the explained head/label, e.g. "
                               "sentiment/positive: the first head's predicted label")
    target_prob: float | None = Field(description="the model's probability of target")
    lexicon_score: float | None = Field(description="senti_lexicon's score of the text (null "
                                        "without senti_lexicon)")
    tokens: list[TokenExplanation] = Field(description="every spaCy token of the text, in "
                                           "order")


class AspectTerm(BaseModel):
    text: str = Field(description="the term as it appears in the text as sent")
    start: int = Field(description="character offset of the term in the text as sent")
    end: int = Field(description="end offset (exclusive) of the term in the text as sent")
    polarity: str = Field(description="the term's predicted polarity (one of the model's "
                          "aspect term labels)")
    score: float = Field(description="the probability of that polarity")


class AnalyzeResult(BaseModel):
    cats: dict[str, float]
    heads: dict[str, Any]
    explain: Explanation | None = None
    aspect_terms: list[AspectTerm] | None = Field(
        None, description="aspect terms found in the text with their polarity, in text order "
        "(models with senti_aspects: an empty list when there is none; null for other "
        "models)")


class AnalyzeResponse(BaseModel):
    model: str
    results: list[AnalyzeResult]


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    limit: int | None = None


class ErrorResponse(BaseModel):
    error: ErrorDetail


class HeadInfo(BaseModel):
    name: str
    kind: str
    labels: list[str]
    groups: list[str]
    threshold: float
    thresholds: dict[str, float]


class ModelInfo(BaseModel):
    name: str
    version: str
    backend: str
    heads: list[HeadInfo]
    labels: list[str]
    explain_available: bool
    aspect_terms: bool = Field(False, description="whether analyses carry aspect_terms (the "
                               "model has senti_aspects)")


class Health(BaseModel):
    status: str = Field(description="ok (200); busy: the queue is full, stuck: a model call "
                        "has run longer than the time budget (503 for both)")
    backend: str
    queued: int
    running_s: float = Field(0.0, description="seconds the current model call has run (0: idle)")
