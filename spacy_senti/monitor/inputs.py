"""Reading raw texts (JSONL, CSV/TSV, TXT, Parquet, .spacy) and running a pipeline over them.

Shared by ``spacy-senti drift`` and ``spacy-senti select``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from tqdm import tqdm

from ..errors import InputError
from ..heads import HeadSpec
from ..util import (
    FORMATS,
    detect_format,
    find_textcat,
    pick_column,
    read_columns,
    read_docs,
    read_rows,
)


def read_texts(path: Path | str, text_column: str | None = None, nlp: Language | None = None
               ) -> list[str]:
    """Texts of a JSONL (text field), CSV/TSV/Parquet (text column), TXT (one per line, also
    a file without suffix) or .spacy file.

    ``text_column`` names the JSONL field / CSV column; by default the first of
    :data:`spacy_senti.util.TEXT_COLUMNS` that exists. Empty texts are dropped; a line that
    cannot be read raises :class:`InputError` naming the file and line.
    """
    path = Path(path).expanduser()
    if path.suffix.lower() == ".spacy":
        texts = [doc.text for doc in read_docs(path, nlp, what="File")]
    else:
        fmt = detect_format(path, {**FORMATS, "": "txt"})
        column = "text" if fmt == "txt" else pick_column(read_columns(path, fmt), text_column,
                                                          path)
        texts = []
        for row in read_rows(path, fmt):
            value = row.values.get(column)
            if row.error:
                raise InputError(f"{path}:{row.line}: {row.error}.")
            if value is not None and not isinstance(value, str):
                raise InputError(f"{path}:{row.line}: column {column!r} is not a string.")
            texts.append(value or "")
    texts = [t.strip() for t in texts if t and t.strip()]
    if not texts:
        raise InputError(f"{path}: no non-empty texts found.")
    return texts


# --- prediction ------------------------------------------------------------------------
@dataclass
class Predictions:
    """Docs and per-head probability matrices (columns in ``head.keys()`` order)."""

    docs: list[Doc]
    probs: dict[str, np.ndarray]


def check_head(heads: Sequence[HeadSpec], name: str | None) -> list[HeadSpec]:
    """``[head]`` for a named head (error if unknown), or all heads."""
    if name is None:
        return list(heads)
    for head in heads:
        if head.name == name:
            return [head]
    raise InputError(f"Unknown head {name!r}; the pipeline's heads: {[h.name for h in heads]}.")


def predict(nlp: Language, texts: Sequence[str], *, component: str | None = None,
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
