"""Batch scoring of tabular text files: ``spacy-senti score`` (local engine and Ray Data)."""

from __future__ import annotations

from .io import InputError, detect_format, open_reader
from .local import ScoreSummary, score_local
from .rows import HeadColumns, row_error

__all__ = [
    "HeadColumns",
    "InputError",
    "ScoreSummary",
    "detect_format",
    "open_reader",
    "row_error",
    "score_local",
]
