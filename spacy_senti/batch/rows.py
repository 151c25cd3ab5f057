"""Turn scored docs into output columns: one or two columns per head, plus ``error``.

Per head (names as the ``doc._`` extensions, see ``spacy_senti.extensions``):

* exclusive ``sentiment``: ``sentiment`` (label) and ``sentiment_scores`` ({label: prob})
* multilabel ``emotion``: ``emotions`` ({label: prob}) and ``emotion_labels`` ([labels])
* grouped ``aspect``: ``aspects`` ({group: polarity}) and ``aspect_scores``
  ({group: {polarity: prob}})

and, when a component sets ``doc._.aspect_terms`` (``senti_aspects``, or a ``senti_onnx``
export with terms), ``aspect_terms``: [{"text", "start", "end", "polarity", "score"}]
(character offsets). A pipeline with terms only (no heads) gets that column alone.

Mappings and term lists are written as JSON in JSONL and as JSON strings in Parquet (a stable
schema whatever the labels); label lists are ``list<string>`` in Parquet. Rows that cannot be
scored keep null predictions and say why in ``error``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spacy.language import Language
from spacy.tokens import Doc

from ..errors import InputError
from ..heads import Head
from ..util import aspect_term_components

ERROR_COLUMN = "error"
ASPECT_TERMS_ATTR = "aspect_terms"
#: value types written as JSON strings in Parquet / Ray output
JSON_TYPES = ("mapping", "terms")


def row_error(text: Any) -> str | None:
    """Why a text value cannot be scored (``None`` when it can)."""
    if text is None:
        return "missing text (null)"
    if not isinstance(text, str):
        return f"text is not a string ({type(text).__name__})"
    if not text.strip():
        return "empty text"
    return None


@dataclass(frozen=True)
class Column:
    """One output column: its name, the ``doc._`` attribute it reads and its value type."""

    name: str
    attr: str
    #: "label" (str), "labels" (list[str]), "mapping" (dict) or "terms" (list[dict])
    value_type: str


class HeadColumns:
    """The prediction columns of a pipeline's ``senti_textcat`` heads (and aspect terms)."""

    def __init__(self, heads: list[Head], prefix: str = "", aspect_terms: bool = False
                 ) -> None:
        self.heads = heads
        self.columns: list[Column] = []
        for head in heads:
            for attr, value_type in zip(head.extension_names, head.value_types, strict=True):
                self.columns.append(Column(prefix + attr, attr, value_type))
        if aspect_terms:
            self.columns.append(Column(prefix + ASPECT_TERMS_ATTR, ASPECT_TERMS_ATTR, "terms"))
        self.columns.append(Column(prefix + ERROR_COLUMN, ERROR_COLUMN, "label"))

    @classmethod
    def from_nlp(cls, nlp: Language, prefix: str = "") -> HeadColumns:
        """Columns of every ``senti_textcat`` (or ``senti_onnx``) component in ``nlp``
        (pipeline order), then ``aspect_terms`` if a component sets them."""
        heads: list[Head] = []
        for _, pipe in nlp.pipeline:
            heads.extend(getattr(pipe, "heads", []) or [])
        terms = bool(aspect_term_components(nlp))
        if not heads and not terms:
            raise InputError(
                "The pipeline has no senti_textcat or senti_onnx heads and no senti_aspects "
                f"(components: {nlp.pipe_names}): nothing to score."
            )
        return cls(heads, prefix=prefix, aspect_terms=terms)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def check_collisions(self, input_columns: list[str]) -> None:
        """Refuse to overwrite input columns with predictions."""
        clash = sorted(set(self.names) & set(input_columns))
        if clash:
            raise InputError(
                f"The input already has column(s) {clash}, which the predictions would "
                "overwrite. Use --prefix (e.g. --prefix pred_) to name the prediction columns "
                "differently."
            )

    def from_doc(self, doc: Doc) -> dict[str, Any]:
        """Prediction columns of one scored doc (native Python values)."""
        out: dict[str, Any] = {}
        for col in self.columns[:-1]:
            value = doc._.get(col.attr)
            if col.value_type == "labels" and value is not None:
                value = list(value)
            elif col.value_type == "mapping" and value is not None:
                value = _plain(value)
            elif col.value_type == "terms" and value is not None:
                value = [_plain(dict(term)) for term in value]
            out[col.name] = value
        out[self.columns[-1].name] = None
        return out

    def from_error(self, reason: str) -> dict[str, Any]:
        """Null predictions and the reason, for a row that was not scored."""
        out: dict[str, Any] = {c.name: None for c in self.columns[:-1]}
        out[self.columns[-1].name] = reason
        return out

    def encode_for_arrow(self, values: dict[str, Any]) -> dict[str, Any]:
        """Mappings and term lists as JSON strings (the Parquet / Ray encoding)."""
        out = dict(values)
        for col in self.columns:
            if col.value_type in JSON_TYPES and out.get(col.name) is not None:
                out[col.name] = json.dumps(out[col.name], ensure_ascii=False)
        return out

    def arrow_fields(self) -> list[Any]:
        """pyarrow fields of the prediction columns (Parquet / Ray output)."""
        import pyarrow as pa

        types = {"label": pa.string(), "mapping": pa.string(), "terms": pa.string(),
                 "labels": pa.list_(pa.string())}
        return [pa.field(c.name, types[c.value_type]) for c in self.columns]


def _plain(value: Any) -> Any:
    """Nested mappings as plain dicts of floats/strings (JSON- and pickle-friendly)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, float):
        return round(value, 6)
    return value
