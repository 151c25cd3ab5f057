"""Reading raw texts (JSONL, CSV/TSV, TXT, .spacy) and running a pipeline over them.

Shared by ``spacy-senti drift`` and ``spacy-senti select``.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from tqdm import tqdm

from ..schema import HeadSpec

TEXT_CANDIDATES = ("text", "sentence", "content", "tweet", "review", "body")


class LoopInputError(ValueError):
    """Bad input to drift / select / cv / distill; the message says what to fix."""


def read_texts(path: Path | str, text_column: str | None = None, nlp: Language | None = None
               ) -> list[str]:
    """Texts of a JSONL (text field), CSV/TSV (text column), TXT (one per line) or .spacy file.

    ``text_column`` names the JSONL field / CSV column; by default the first of
    :data:`TEXT_CANDIDATES` that exists. Empty texts are dropped.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise LoopInputError(f"File {str(path)!r} not found.")
    suffix = path.suffix.lower()
    if suffix == ".spacy":
        from spacy.vocab import Vocab

        vocab = nlp.vocab if nlp is not None else Vocab()
        texts = [doc.text for doc in DocBin().from_disk(path).get_docs(vocab)]
    elif suffix in (".jsonl", ".json", ".ndjson"):
        texts = _read_jsonl(path, text_column)
    elif suffix in (".csv", ".tsv"):
        texts = _read_delimited(path, text_column, "\t" if suffix == ".tsv" else ",")
    elif suffix in (".txt", ""):
        texts = path.read_text(encoding="utf-8-sig").splitlines()
    else:
        raise LoopInputError(
            f"{path}: unsupported extension {suffix!r}; use .jsonl, .csv, .tsv, .txt or .spacy."
        )
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise LoopInputError(f"{path}: no non-empty texts found.")
    return texts


def _pick(columns: Sequence[str], wanted: str | None, path: Path) -> str:
    if wanted is not None:
        if wanted not in columns:
            raise LoopInputError(
                f"{path}: no text column {wanted!r}; available: {', '.join(map(repr, columns))}. "
                "Choose one with --text-column."
            )
        return wanted
    for cand in TEXT_CANDIDATES:
        if cand in columns:
            return cand
    raise LoopInputError(
        f"{path}: no text column found (looked for {', '.join(TEXT_CANDIDATES)}); available: "
        f"{', '.join(map(repr, columns))}. Choose one with --text-column."
    )


def _read_jsonl(path: Path, text_column: str | None) -> list[str]:
    texts: list[str] = []
    field: str | None = None
    with path.open(encoding="utf-8-sig") as fh:
        for i, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise LoopInputError(f"{path}:{i}: not valid JSON ({err.msg}).") from None
            if not isinstance(row, dict):
                raise LoopInputError(f"{path}:{i}: each line must be a JSON object.")
            field = field or _pick(list(row), text_column, path)
            value = row.get(field)
            if value is not None and not isinstance(value, str):
                raise LoopInputError(f"{path}:{i}: field {field!r} is not a string.")
            texts.append(value or "")
    return texts


def _read_delimited(path: Path, text_column: str | None, delimiter: str) -> list[str]:
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter, quoting=quoting)
        header = next(reader, None)
        if header is None:
            raise LoopInputError(f"{path}: empty file.")
        header = [h.strip() for h in header]
        index = header.index(_pick(header, text_column, path))
        return [row[index] for row in reader if len(row) > index]


# --- prediction ------------------------------------------------------------------------
@dataclass
class Predictions:
    """Docs and per-head probability matrices (columns in ``head.keys()`` order)."""

    docs: list[Doc]
    probs: dict[str, np.ndarray]


def find_textcat(nlp: Language, component: str = "senti_textcat"):
    """The ``senti_textcat`` component of ``nlp`` (a clear error if it has none)."""
    if component not in nlp.pipe_names:
        raise LoopInputError(
            f"The pipeline has no component {component!r} (components: {nlp.pipe_names})."
        )
    return nlp.get_pipe(component)


def check_head(heads: Sequence[HeadSpec], name: str | None) -> list[HeadSpec]:
    """``[head]`` for a named head (error if unknown), or all heads."""
    if name is None:
        return list(heads)
    for head in heads:
        if head.name == name:
            return [head]
    raise LoopInputError(f"Unknown head {name!r}; the pipeline's heads: {[h.name for h in heads]}.")


def predict(nlp: Language, texts: Sequence[str], *, component: str = "senti_textcat",
            batch_size: int = 64, desc: str = "predict", progress: bool = True) -> Predictions:
    """Run ``nlp`` over ``texts`` and collect each head's probabilities."""
    heads = find_textcat(nlp, component).heads
    docs = list(tqdm(nlp.pipe(texts, batch_size=batch_size), total=len(texts), desc=desc,
                     disable=not progress, leave=False))
    probs = {
        head.name: np.asarray(
            [[doc.cats.get(k, 0.0) for k in head.keys()] for doc in docs], dtype="f"
        ).reshape(len(docs), head.n_outputs)
        for head in heads
    }
    return Predictions(docs, probs)
