"""Request/response models and settings of the HTTP service."""

from __future__ import annotations

import os
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr, model_validator

ENV_PREFIX = "SPACY_SENTI_SERVE_"


class ServeSettings(BaseModel):
    """Limits and batching of ``spacy-senti serve`` (also read from SPACY_SENTI_SERVE_* env)."""

    max_batch: int = Field(32, ge=1, description="texts per model call")
    max_wait_ms: float = Field(5.0, ge=0, description="wait for more texts before a call")
    max_texts: int = Field(64, ge=1, description="texts per request")
    max_chars: int = Field(5000, ge=1, description="characters per text")
    max_queue: int = Field(256, ge=1, description="queued requests before 503")
    threads: int | None = Field(None, ge=1, description="model threads (torch/onnxruntime)")
    variant: str | None = Field(None, description="ONNX variant: fp32 or int8")

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
    """``{"text": "..."}`` or ``{"texts": ["...", ...]}``, optionally ``"explain": true``."""

    model_config = ConfigDict(extra="forbid")
    text: StrictStr | None = None
    texts: list[StrictStr] | None = None
    explain: StrictBool = False

    @model_validator(mode="after")
    def _one_of(self) -> AnalyzeRequest:
        if (self.text is None) == (self.texts is None):
            raise ValueError("give exactly one of 'text' (a string) or 'texts' (a list)")
        return self

    def items(self) -> list[str]:
        return [self.text] if self.text is not None else list(self.texts or [])


class TokenValence(BaseModel):
    text: str
    start: int
    valence: float


class Explanation(BaseModel):
    lexicon_score: float | None
    tokens: list[TokenValence]


class AnalyzeResult(BaseModel):
    cats: dict[str, float]
    heads: dict[str, Any]
    explain: Explanation | None = None


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


class Health(BaseModel):
    status: str
    backend: str
    queued: int
