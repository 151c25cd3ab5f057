"""The numpy-only parts of aspect term tagging: BIO coding and the span pooling weights.

Shared by ``spacy_senti.AspectTagger.v1`` (models/aspects.py) and the ONNX runner, which must
not import torch, spaCy or Thinc.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

TAGS = ("O", "B", "I")
N_POOLS = 3  # term mean, local context, sentence mean

Spans = Sequence[tuple[int, int]]


def pooling_weights(n_tokens: int, spans: Spans, local_window: int) -> np.ndarray:
    """Rows ``3*j, 3*j+1, 3*j+2``: term mean, local context and sentence mean of span ``j``
    (float32, shape ``(3 * len(spans), n_tokens)``, each row sums to 1)."""
    weights = np.zeros((N_POOLS * len(spans), n_tokens), dtype="float32")
    if not n_tokens:
        return weights
    positions = np.arange(n_tokens)
    for j, (start, end) in enumerate(spans):
        weights[N_POOLS * j, start:end] = 1.0 / max(end - start, 1)
        distance = np.maximum(np.maximum(start - positions, positions - (end - 1)), 0)
        local = np.where(
            distance <= local_window,
            1.0,
            np.clip(1.0 - (distance - local_window) / n_tokens, 0.0, 1.0),
        )
        weights[N_POOLS * j + 1] = local / local.sum()
        weights[N_POOLS * j + 2] = 1.0 / n_tokens
    return weights


def decode_bio(tag_ids: Sequence[int]) -> list[tuple[int, int]]:
    """Token spans ``(start, end)`` from BIO tag ids; an ``I`` after ``O`` starts a term."""
    spans: list[tuple[int, int]] = []
    start = None
    for i, tag in enumerate(tag_ids):
        if tag == 1 or (tag == 2 and start is None):
            if start is not None:
                spans.append((start, i))
            start = i
        elif tag == 0 and start is not None:
            spans.append((start, i))
            start = None
    if start is not None:
        spans.append((start, len(tag_ids)))
    return spans


def encode_bio(n_tokens: int, spans: Spans) -> np.ndarray:
    """BIO tag ids of a doc from token spans (overlaps: the earlier-starting span wins)."""
    tags = np.zeros(n_tokens, dtype="int32")
    for start, end in sorted(spans):
        if end <= start or tags[start:end].any():
            continue
        tags[start] = 1
        tags[start + 1 : end] = 2
    return tags
