"""Pooling of encoder output into one vector per doc, and a wordpiece-level listener.

Two kinds of input reach the heads:

* token rows, from spaCy's tok2vec or ``spacy-transformers.TransformerListener.v1`` (one row
  per spaCy token, wordpieces already averaged per token);
* wordpiece rows, from ``spacy_senti.WordpieceListener.v1`` (one row per wordpiece of the
  transformer, ``[CLS]`` first, padding removed). This is what sentence encoders such as
  all-MiniLM-L6-v2 were trained to pool, and it makes ``cls`` the real ``[CLS]`` vector.

Pooling then reduces the rows of each doc: ``mean``, ``cls`` (first row) or ``attention``
(a learned query vector, Thinc's ParametricAttention followed by a sum), optionally followed
by L2 normalisation (:func:`l2_normalize`), as sentence-transformers' ``Normalize`` module ends
all-MiniLM-L6-v2: the vector SetFit's logistic-regression head sees.
"""

from __future__ import annotations

from collections.abc import Callable

from spacy.util import registry
from spacy_transformers.data_classes import TransformerData
from spacy_transformers.layers.listener import TransformerListener
from thinc.api import Model, ParametricAttention_v2, chain, reduce_first, reduce_mean, reduce_sum
from thinc.types import Floats2d, Ragged
from transformers.file_utils import ModelOutput

from ..errors import ConfigError

POOLINGS = ("mean", "cls", "attention")


def build_pooling(pooling: str, normalize: bool = False) -> Model[Ragged, Floats2d]:
    """A Thinc layer reducing each doc's rows (a Ragged) to one vector (of unit length with
    ``normalize``)."""
    pool = _reduce(pooling)
    return chain(pool, l2_normalize()) if normalize else pool


def _reduce(pooling: str) -> Model[Ragged, Floats2d]:
    if pooling == "mean":
        return reduce_mean()
    if pooling == "cls":
        return reduce_first()
    if pooling == "attention":
        return chain(ParametricAttention_v2(), reduce_sum())
    raise ConfigError(
        f"Unknown pooling {pooling!r}: choose one of {', '.join(POOLINGS)} "
        "(spacy_senti.MultiHeadClassifier.v1 pooling = ...)."
    )


def l2_normalize(eps: float = 1e-12) -> Model[Floats2d, Floats2d]:
    """Each row divided by its L2 norm (at least ``eps``), as ``torch.nn.functional.normalize``."""
    return Model("l2_normalize", _l2_normalize_forward, attrs={"eps": eps})


def _l2_normalize_forward(model: Model, X: Floats2d, is_train: bool) -> tuple[Floats2d, Callable]:
    xp = model.ops.xp
    norms = xp.maximum(xp.sqrt((X * X).sum(axis=1, keepdims=True)), model.attrs["eps"])
    Y = X / norms

    def backprop(dY: Floats2d) -> Floats2d:
        # d(x/|x|) = (dY - Y (Y . dY)) / |x|
        return (dY - Y * (Y * dY).sum(axis=1, keepdims=True)) / norms

    return Y, backprop


@registry.architectures("spacy_senti.WordpieceListener.v1")
def build_wordpiece_listener(
    grad_factor: float = 1.0, upstream: str = "*"
) -> Model[list, list[Floats2d]]:
    """Listen to an upstream ``transformer`` and return its wordpiece rows per doc.

    grad_factor (float): scale of the gradient sent back to the transformer (0 freezes it).
    upstream (str): name of the transformer component, or '*' for any.
    """
    listener = TransformerListener(upstream_name=upstream)
    return chain(listener, trfs2wordpieces(grad_factor))


def trfs2wordpieces(grad_factor: float) -> Model[list[TransformerData], list[Floats2d]]:
    """Unpad the last hidden state of each doc into a (n_wordpieces, width) array."""
    return Model("trfs2wordpieces", _wordpieces_forward, attrs={"grad_factor": grad_factor})


def _wordpieces_forward(
    model: Model, trf_datas: list[TransformerData], is_train: bool
) -> tuple[list[Floats2d], Callable]:
    ops = model.ops
    outputs: list[Floats2d] = []
    shapes: list[tuple | None] = []
    width = next(
        (t.width for t in trf_datas if "last_hidden_state" in t.model_output), 0
    )
    for trf in trf_datas:
        output = trf.model_output
        if "last_hidden_state" not in output or output.last_hidden_state.size == 0:
            outputs.append(ops.alloc2f(0, width))
            shapes.append(None)
            continue
        hidden = trf.model_output.last_hidden_state
        lengths = [int(n) for n in trf.wordpieces.lengths]
        rows = [hidden[i, :n] for i, n in enumerate(lengths)]
        outputs.append(ops.xp.concatenate(rows, axis=0) if len(rows) > 1 else rows[0])
        shapes.append((hidden.shape, lengths))

    def backprop(d_outputs: list[Floats2d]) -> list[TransformerData]:
        grad_factor = model.attrs["grad_factor"]
        d_trfs: list[TransformerData] = []
        for trf, d_out, shape in zip(trf_datas, d_outputs, shapes):
            if shape is None:
                continue
            hidden_shape, lengths = shape
            d_hidden = ops.alloc(hidden_shape, dtype=d_out.dtype)
            start = 0
            for i, n in enumerate(lengths):
                d_hidden[i, :n] = d_out[start : start + n]
                start += n
            if grad_factor != 1.0:
                d_hidden *= grad_factor
            d_trfs.append(
                TransformerData(
                    model_output=ModelOutput(last_hidden_state=d_hidden),
                    wordpieces=trf.wordpieces,
                    align=trf.align,
                )
            )
        return d_trfs

    return outputs, backprop
