"""Aspect terms (``senti_aspects``) in an ONNX export: token rows, tagger and polarity in numpy.

The exported encoder graph returns the wordpiece states of each transformer window
(output ``hidden``); this module turns them into what ``spacy_senti.AspectTagger.v1`` computes:

* token rows: spacy-transformers' ``TransformerListener`` + ``reduce_mean``: every spaCy token
  averages the wordpieces aligned to it, over every window that holds it. The alignment is
  spacy-transformers' ``get_alignment_via_offset_mapping`` (fast tokenizers): a token owns its
  characters plus the one after it, and a wordpiece belongs to every token whose characters it
  covers; wordpieces past the model's maximum length are dropped (``truncate_oversize_splits``);
  a token without wordpieces gets a zero row (thinc's ``reduce_mean``);
* the BIO tagger (``Linear`` over token rows), ``decode_bio``, the span features
  (``pooling_weights`` @ token rows) and the polarity stack (optional ReLU + ``Linear``), from
  the weights in ``aspects.npz`` (fp32 in every variant: they are tiny and decide the output).

``decode_bio`` and ``pooling_weights`` come from :mod:`spacy_senti.models.aspect_spans` (numpy
only), so the export decodes exactly as the component without importing torch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

Offsets = Sequence[tuple[int, int]]


@dataclass
class WindowStates:
    """One transformer window of a doc: its first token, its tokens' character offsets
    relative to the window text, and the wordpieces' states and character offsets."""

    first_token: int
    token_offsets: Offsets
    hidden: np.ndarray  # (n_wordpieces, width)
    wordpiece_offsets: np.ndarray  # (n_wordpieces, 2)


def window_alignment(token_offsets: Offsets, text_length: int,
                     wordpiece_offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(token, wordpiece) index pairs of one window, as ``get_span2wp_from_offset_mapping``.

    Token ``t`` owns characters ``start .. end`` inclusive (its text and the character after
    it; a later token overwrites that shared character); wordpiece ``j`` with offsets
    ``(s, e)`` aligns to every token owning a character in ``[s, e)``. Pairs are unique,
    sorted by token then wordpiece.
    """
    empty = np.zeros(0, dtype="int64")
    offsets = np.asarray(wordpiece_offsets, dtype="int64").reshape((-1, 2))
    if not len(token_offsets) or not len(offsets):
        return empty, empty
    bounds = np.asarray(token_offsets, dtype="int64").reshape((-1, 2))
    # every (wordpiece, character) pair inside the window text (+1: the trailing character)
    starts = np.clip(offsets[:, 0], 0, text_length + 1)
    lengths = np.clip(offsets[:, 1], 0, text_length + 1) - starts
    lengths = np.maximum(lengths, 0)
    pieces = np.repeat(np.arange(len(offsets)), lengths)
    if not len(pieces):
        return empty, empty
    chars = np.repeat(starts - np.cumsum(lengths) + lengths, lengths) + np.arange(len(pieces))
    # the owner of a character: the last token starting at or before it, if it reaches it
    tokens = np.searchsorted(bounds[:, 0], chars, side="right") - 1
    owned = (tokens >= 0) & (chars <= bounds[np.maximum(tokens, 0), 1])
    keys = np.unique(tokens[owned] * len(offsets) + pieces[owned])
    return keys // len(offsets), keys % len(offsets)


def token_rows(n_tokens: int, windows: Sequence[WindowStates], width: int) -> np.ndarray:
    """Mean of the wordpiece states aligned to each token, over all windows (float32)."""
    if not n_tokens:
        return np.zeros((0, width), dtype="float32")
    states, token_index, piece_index, base = [], [], [], 0
    for window in windows:
        if not len(window.token_offsets):
            continue
        text_length = max(end for _, end in window.token_offsets)
        tokens, pieces = window_alignment(window.token_offsets, text_length,
                                          window.wordpiece_offsets)
        states.append(window.hidden)
        token_index.append(tokens + window.first_token)
        piece_index.append(pieces + base)
        base += len(window.hidden)
    if not base:
        return np.zeros((n_tokens, width), dtype="float32")
    # the (token, wordpiece) averaging matrix: tiny (tokens x wordpieces of one doc)
    weights = np.zeros((n_tokens, base), dtype="float32")
    weights[np.concatenate(token_index), np.concatenate(piece_index)] = 1.0
    weights /= np.maximum(weights.sum(axis=1, keepdims=True), 1.0)
    return weights @ np.concatenate(states).astype("float32", copy=False)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32 (as ``senti_aspects``)."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return (exp / exp.sum(axis=1, keepdims=True)).astype("float32")


class AspectHead:
    """The exported tagger and polarity stack of ``senti_aspects`` (numpy).

    info: the manifest's ``aspects`` part; weights: the arrays of ``aspects.npz``.
    """

    def __init__(self, info: dict[str, Any], weights: dict[str, np.ndarray]) -> None:
        from ..models.aspect_spans import decode_bio, pooling_weights

        self.info = info
        self.labels: list[str] = list(info["labels"])
        self.spans_key: str = info["spans_key"]
        self.local_window = int(info["local_window"])
        self.weights = {k: np.asarray(v, dtype="float32") for k, v in weights.items()}
        self._decode_bio = decode_bio
        self._pooling_weights = pooling_weights

    @property
    def width(self) -> int:
        """Width of the token rows (the encoder's hidden size)."""
        return int(self.weights["tagger_W"].shape[1])

    def tag_probs(self, rows: np.ndarray) -> np.ndarray:
        """BIO probabilities (n_tokens, 3)."""
        w = self.weights
        if not len(rows):
            return np.zeros((0, w["tagger_W"].shape[0]), dtype="float32")
        return softmax(rows @ w["tagger_W"].T + w["tagger_b"])

    def spans(self, tag_probs: np.ndarray) -> list[tuple[int, int]]:
        """Term token spans decoded from the most likely tags."""
        return self._decode_bio(tag_probs.argmax(axis=1).tolist()) if len(tag_probs) else []

    def polarity_probs(self, rows: np.ndarray, spans: Sequence[tuple[int, int]]) -> np.ndarray:
        """Polarity probabilities (n_spans, n_labels) of token spans of one doc."""
        w = self.weights
        if not spans:
            return np.zeros((0, len(self.labels)), dtype="float32")
        pool = self._pooling_weights(len(rows), spans, self.local_window)
        features = (pool @ rows).reshape((len(spans), -1))
        if "polarity_hidden_W" in w:
            features = np.maximum(features @ w["polarity_hidden_W"].T + w["polarity_hidden_b"],
                                  0.0)
        return softmax(features @ w["polarity_W"].T + w["polarity_b"])

    def predict(self, rows: Sequence[np.ndarray]):
        """``AspectPrediction`` (tag probabilities, spans, polarity probabilities) per doc,
        as ``senti_aspects.predict`` returns it."""
        from ..components.aspects import AspectPrediction

        tags = [self.tag_probs(r) for r in rows]
        spans = [self.spans(t) for t in tags]
        return AspectPrediction(tags, spans, [self.polarity_probs(r, s)
                                              for r, s in zip(rows, spans)])
