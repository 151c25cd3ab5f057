"""Thinc architecture ``spacy_senti.MultiHeadClassifier.v1``.

``tok2vec -> pooling -> [hidden] -> dropout -> Linear(nO)``: one forward pass yields the
logits of every head side by side (columns ordered head by head, as in
``HeadSpec.keys()``). The component slices the columns per head and applies softmax,
sigmoid or a per-group softmax; keeping the model linear in its last layer keeps it easy to
export (ONNX) and lets the losses be computed on logits.
"""

from __future__ import annotations

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Dropout, Linear, Model, Relu, chain, list2ragged
from thinc.types import Floats2d

from .pooling import build_pooling

OUTPUT_LAYER = "output_layer"
POOLING_LAYER = "pooling_layer"


@registry.architectures("spacy_senti.MultiHeadClassifier.v1")
def build_multi_head_classifier(
    tok2vec: Model[list[Doc], list[Floats2d]],
    pooling: str = "mean",
    hidden_width: int = 0,
    dropout: float = 0.1,
    nO: int | None = None,
    normalize: bool = False,
) -> Model[list[Doc], Floats2d]:
    """Shared encoder + pooling + one linear layer holding every head's logits.

    tok2vec: rows per doc (a transformer listener, spaCy tok2vec, or
        spacy_senti.WordpieceListener.v1 for wordpiece rows).
    pooling: 'mean', 'cls' (first row: [CLS] with the wordpiece listener) or 'attention'.
    hidden_width: width of an optional ReLU layer before the heads (0 = none).
    dropout: dropout rate before the output layer.
    nO: total number of outputs; set by the component from its heads at initialize.
    normalize: scale each pooled vector to unit length (sentence-transformers' ``Normalize``:
        the features SetFit's head sees; configs/fewshot.cfg sets it).
    """
    pool = build_pooling(pooling, normalize)
    layers: list[Model] = [tok2vec, list2ragged(), pool]
    if hidden_width:
        layers.append(Relu(nO=hidden_width, dropout=dropout))
    elif dropout:
        layers.append(Dropout(dropout))
    output_layer = Linear(nO=nO)
    layers.append(output_layer)
    model = chain(*layers)
    model.set_ref("tok2vec", tok2vec)
    model.set_ref(POOLING_LAYER, pool)
    model.set_ref(OUTPUT_LAYER, output_layer)
    model.attrs["pooling"] = pooling
    model.attrs["normalize"] = normalize
    return model
