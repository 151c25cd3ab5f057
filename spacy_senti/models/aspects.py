"""Thinc architecture ``spacy_senti.AspectTagger.v1``: aspect term spans + a polarity each.

Three parts over one listener to the shared transformer (token rows, wordpieces averaged per
spaCy token):

* ``tagger``: a linear BIO tagger over each token row (``O``, ``B``, ``I``);
* ``span_features``: fixed pooling weights turn a doc's token rows into one row per term:
  ``[mean of the term's tokens; local context; whole-sentence mean]``. The local context is
  the LCF-CDW weighting of Zeng et al. 2019 (tokens within ``local_window`` tokens of the
  term count fully, farther ones fade linearly with distance), so two terms of one sentence
  ("great food but the service was awful") get different contexts from one encoder pass;
* ``polarity``: an optional ReLU layer and a linear layer over those rows.

The pooling weights depend only on token positions (``aspect_spans.pooling_weights``, numpy
only), so the ONNX runner builds the same matrices without torch; the learned parts are two
small linear stacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, Relu, chain
from thinc.types import Floats2d

from .aspect_spans import N_POOLS, TAGS, Spans, decode_bio, encode_bio, pooling_weights

__all__ = ["TAGS", "build_aspect_tagger", "decode_bio", "encode_bio", "pooling_weights",
           "span_features"]

TAGGER_LAYER = "tagger"
POLARITY_LAYER = "polarity"


@registry.architectures("spacy_senti.AspectTagger.v1")
def build_aspect_tagger(
    tok2vec: Model[list[Doc], list[Floats2d]],
    hidden_width: int = 0,
    dropout: float = 0.1,
    local_window: int = 3,
    nO: int | None = None,
) -> Model[list[Doc], list[Floats2d]]:
    """BIO term tagger and per-term polarity classifier over one token-row listener.

    tok2vec: token rows per doc (``spacy-transformers.TransformerListener.v1``).
    hidden_width: width of a ReLU layer before the polarity output (0 = linear).
    dropout: dropout before both output layers.
    local_window: tokens this close to a term count fully in its local context.
    nO: number of polarity labels; set by the component at initialize.
    """
    tagger = chain(Dropout(dropout), Linear(nO=len(TAGS)))
    layers: list[Model] = []
    if hidden_width:
        layers.append(Relu(nO=hidden_width, dropout=dropout))
    elif dropout:
        layers.append(Dropout(dropout))
    polarity_output = Linear(nO=nO)
    polarity = chain(*layers, polarity_output)
    model: Model = Model(
        "aspect_tagger",
        _tag_forward,
        layers=[tok2vec, tagger, polarity],
        refs={"tok2vec": tok2vec, TAGGER_LAYER: tagger, POLARITY_LAYER: polarity,
              "polarity_output": polarity_output},
        attrs={"local_window": local_window},
        init=_init,
    )
    return model


def _init(model: Model, X: list[Doc] | None = None, Y=None) -> None:
    tok2vec, tagger, polarity = model.layers
    if X is None:
        return
    tok2vec.initialize(X=X)
    rows = tok2vec.predict(X)
    tokens = _concat(model.ops, rows)
    tagger.initialize(X=tokens)
    spans = [[(0, len(doc))] if len(doc) else [] for doc in X]
    features, _ = span_features(model.ops, rows, spans, model.attrs["local_window"])
    polarity.initialize(X=features)


def _tag_forward(model: Model, docs: list[Doc], is_train: bool):
    """The model as one Thinc layer: BIO logits per doc (the component drives the parts)."""
    tok2vec, tagger, _ = model.layers
    rows, bp_rows = tok2vec(docs, is_train)
    logits, bp_logits = tagger(_concat(model.ops, rows), is_train)
    lengths = [len(r) for r in rows]

    def backprop(d_logits_list: list[Floats2d]) -> list[Doc]:
        d_rows = _split(model.ops, bp_logits(_concat(model.ops, d_logits_list)), lengths)
        return bp_rows(d_rows)

    return _split(model.ops, logits, lengths), backprop


# --- shared helpers (the component and the ONNX runner use them) ---------------------------
def _concat(ops, rows: Sequence[Floats2d]) -> Floats2d:
    width = next((r.shape[1] for r in rows if r.size), rows[0].shape[1] if rows else 0)
    parts = [r for r in rows if len(r)]
    if not parts:
        return ops.alloc2f(0, width)
    return ops.xp.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]


def _split(ops, array: Floats2d, lengths: Sequence[int]) -> list[Floats2d]:
    out, start = [], 0
    for n in lengths:
        out.append(array[start : start + n])
        start += n
    return out


def span_features(
    ops, rows: Sequence[Floats2d], spans: Sequence[Spans], local_window: int
) -> tuple[Floats2d, Callable[[Floats2d], list[Floats2d]]]:
    """One row per span (docs in order): ``[term mean; local context; sentence mean]``.

    Returns the rows (shape ``(n_spans, 3 * width)``) and a backprop to per-doc token rows.
    """
    width = next((r.shape[1] for r in rows if r.size), 0)
    blocks, mats = [], []
    for doc_rows, doc_spans in zip(rows, spans, strict=True):
        if not doc_spans:
            mats.append(None)
            continue
        weights = ops.asarray2f(pooling_weights(len(doc_rows), doc_spans, local_window))
        mats.append(weights)
        pooled = ops.gemm(weights, doc_rows)  # (3k, width)
        blocks.append(pooled.reshape((len(doc_spans), N_POOLS * width)))
    features = ops.xp.concatenate(blocks, axis=0) if blocks else ops.alloc2f(0, N_POOLS * width)

    def backprop(d_features: Floats2d) -> list[Floats2d]:
        d_rows, start = [], 0
        for doc_rows, weights in zip(rows, mats):
            if weights is None:
                d_rows.append(ops.alloc2f(*doc_rows.shape))
                continue
            k = weights.shape[0] // N_POOLS
            d_pooled = d_features[start : start + k].reshape((N_POOLS * k, width))
            d_rows.append(ops.gemm(weights, ops.xp.ascontiguousarray(d_pooled), trans1=True))
            start += k
        return d_rows

    return ops.asarray2f(features), backprop
