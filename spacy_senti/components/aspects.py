"""``senti_aspects``: aspect term spans with a polarity each, over the shared encoder pass.

Writes ``doc.spans[spans_key]`` (``span.label_`` = polarity, the group's ``attrs["scores"]``
= each term's tagger confidence, as spaCy's spancat does), ``span._.polarity_scores`` and
``doc._.aspect_terms``. Gold: the same span group on the reference docs
(``spacy-senti convert -f semeval14 --level terms``); docs without the group are not
annotated for terms and are left out of the loss, so one pipeline can learn terms from one
corpus and sentence labels from another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate

from ..errors import ConfigError
from ..extensions import ASPECTS_SPANS_KEY, register_aspect_term_extensions
from ..models.aspects import (
    POLARITY_LAYER,
    TAGGER_LAYER,
    TAGS,
    _concat,
    _split,
    decode_bio,
    encode_bio,
    span_features,
)

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_senti.AspectTagger.v1"
hidden_width = 0
dropout = 0.1
local_window = 3
nO = null

[model.tok2vec]
@architectures = "spacy-transformers.TransformerListener.v1"
grad_factor = 1.0
upstream = "*"

[model.tok2vec.pooling]
@layers = "reduce_mean.v1"
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]
POLARITY_COLORS = {"positive": "#a6e3a1", "negative": "#f5a3a3", "neutral": "#d0d4dc",
                   "conflict": "#f9d58b"}


def displacy_options(spans_key: str = ASPECTS_SPANS_KEY) -> dict[str, Any]:
    """Options for ``displacy.render(doc, style="span", options=...)``: the term group,
    coloured by polarity."""
    return {"spans_key": spans_key, "colors": dict(POLARITY_COLORS)}


@Language.factory(
    "senti_aspects",
    assigns=["doc.spans", "doc._.aspect_terms"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": ASPECTS_SPANS_KEY,
        "polarity_weight": 1.0,
        "scorer": {"@scorers": "spacy_senti.aspects_scorer.v1"},
    },
    default_score_weights={
        "aspect_terms_f": 0.5,
        "aspect_polarity_acc": 0.5,
        "aspect_terms_p": None,
        "aspect_terms_r": None,
        "aspect_polarity_macro_f": None,
        "aspect_pairs_f": None,
    },
)
def make_senti_aspects(
    nlp: Language,
    name: str,
    model: Model,
    spans_key: str,
    polarity_weight: float,
    scorer: Callable | None,
) -> SentiAspects:
    """Create an aspect term extractor with a polarity per term.

    model: a ``spacy_senti.AspectTagger.v1`` (listener + BIO tagger + polarity classifier).
    spans_key: the ``doc.spans`` key of gold and predicted terms.
    polarity_weight: weight of the polarity loss against the tagging loss.
    scorer: ``spacy_senti.aspects_scorer.v1`` by default.
    """
    return SentiAspects(nlp.vocab, model, name, spans_key=spans_key,
                        polarity_weight=polarity_weight, scorer=scorer)


@dataclass
class AspectPrediction:
    """What ``predict`` returns: per doc the tag probabilities, term spans and the polarity
    probabilities of those terms (numpy, one row per term)."""

    tag_probs: list[np.ndarray]
    spans: list[list[tuple[int, int]]]
    polarity_probs: list[np.ndarray]


class SentiAspects(TrainablePipe):
    """BIO aspect term tagger + polarity classifier listening to the shared transformer."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model,
        name: str = "senti_aspects",
        *,
        spans_key: str = ASPECTS_SPANS_KEY,
        polarity_weight: float = 1.0,
        scorer: Callable | None = None,
    ) -> None:
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg: dict[str, Any] = {
            "labels": [], "spans_key": spans_key, "polarity_weight": polarity_weight,
        }
        register_aspect_term_extensions()

    # --- labels --------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """The polarity labels, in output order."""
        return tuple(self.cfg["labels"])

    @property
    def label_data(self) -> list[str]:
        return list(self.labels)

    @property
    def spans_key(self) -> str:
        return self.cfg["spans_key"]

    def add_label(self, label: str) -> int:
        """Add a polarity label before training."""
        if self.model.get_ref("polarity_output").has_dim("nO"):
            raise ConfigError("Labels cannot be added after the model is initialised.")
        if label in self.cfg["labels"]:
            return 0
        self.cfg["labels"].append(label)
        return 1

    # --- prediction ----------------------------------------------------------------------
    def predict(self, docs: Iterable[Doc]) -> AspectPrediction:
        """Tag terms, decode them into spans, classify each span's polarity."""
        docs = list(docs)
        if not any(len(doc) for doc in docs):  # the listener cannot pool an all-empty batch
            return AspectPrediction(
                [np.zeros((0, len(TAGS)), dtype="f") for _ in docs], [[] for _ in docs],
                [np.zeros((0, len(self.labels)), dtype="f") for _ in docs],
            )
        rows = self.model.get_ref("tok2vec").predict(docs)
        lengths = [len(doc) for doc in docs]
        tag_probs = self._tag_probs(rows, lengths)
        spans = [decode_bio(p.argmax(axis=1).tolist()) for p in tag_probs]
        return AspectPrediction(tag_probs, spans, self._polarity_probs(rows, spans))

    def predict_polarities(self, docs: list[Doc], spans: list[list[tuple[int, int]]]
                           ) -> list[np.ndarray]:
        """Polarity probabilities of given token spans (e.g. gold terms) of processed docs."""
        if not any(spans):
            return [np.zeros((0, len(self.labels)), dtype="f") for _ in spans]
        rows = self.model.get_ref("tok2vec").predict(docs)
        return self._polarity_probs(rows, spans)

    def _tag_probs(self, rows, lengths: list[int]) -> list[np.ndarray]:
        ops = self.model.ops
        tokens = _concat(ops, rows)
        if not len(tokens):
            return [np.zeros((n, len(TAGS)), dtype="f") for n in lengths]
        logits = self.model.get_ref(TAGGER_LAYER).predict(tokens)
        probs = ops.to_numpy(_softmax(ops.xp, logits))
        return _split(ops, probs, lengths)

    def _polarity_probs(self, rows, spans) -> list[np.ndarray]:
        ops = self.model.ops
        n_labels = len(self.labels)
        if not any(spans):
            return [np.zeros((0, n_labels), dtype="f") for _ in spans]
        features, _ = span_features(ops, rows, spans, self.model.attrs["local_window"])
        logits = self.model.get_ref(POLARITY_LAYER).predict(features)
        probs = ops.to_numpy(_softmax(ops.xp, logits))
        return _split(ops, probs, [len(s) for s in spans])

    def set_annotations(self, docs: Iterable[Doc], prediction: AspectPrediction) -> None:
        """Write the term spans, their polarity scores and ``doc._.aspect_terms``."""
        set_aspect_annotations(docs, prediction, self.labels, self.spans_key)

    # --- training ------------------------------------------------------------------------
    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optimizer | None = None,
        losses: dict[str, float] | None = None,
    ) -> dict[str, float]:
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "SentiAspects.update")
        if not examples:
            return losses
        set_dropout_rate(self.model, drop)
        ops = self.model.ops
        docs = [eg.predicted for eg in examples]
        rows, bp_rows = self.model.get_ref("tok2vec").begin_update(docs)
        gold_tags, gold_spans, gold_labels = self._gold(examples)
        annotated = [i for i, tags in enumerate(gold_tags) if tags is not None]
        d_rows = [ops.alloc2f(*r.shape) for r in rows]
        loss = 0.0
        if annotated:
            sub_rows = [rows[i] for i in annotated]
            tokens = _concat(ops, sub_rows)
            if len(tokens):
                logits, bp_tag = self.model.get_ref(TAGGER_LAYER).begin_update(tokens)
                targets = np.concatenate([gold_tags[i] for i in annotated])
                tag_loss, d_logits = _cross_entropy(ops, logits, targets)
                d_tokens = _split(ops, bp_tag(d_logits), [len(r) for r in sub_rows])
                for i, d in zip(annotated, d_tokens):
                    if len(d):  # an empty doc's rows are (0, 0)
                        d_rows[i] += d
                loss += tag_loss
            spans = [gold_spans[i] for i in annotated]
            if any(spans):
                features, bp_features = span_features(
                    ops, sub_rows, spans, self.model.attrs["local_window"]
                )
                polarity = self.model.get_ref(POLARITY_LAYER)
                logits, bp_pol = polarity.begin_update(features)
                targets = np.concatenate([gold_labels[i] for i in annotated])
                pol_loss, d_logits = _cross_entropy(ops, logits, targets)
                weight = self.cfg["polarity_weight"]
                d_span_rows = bp_features(bp_pol(d_logits * weight))
                for i, d in zip(annotated, d_span_rows):
                    if len(d):
                        d_rows[i] += d
                loss += pol_loss * weight
        bp_rows(d_rows)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(self, examples: Iterable[Example], scores) -> tuple[float, Any]:
        raise NotImplementedError(
            "senti_aspects computes its tagging and polarity losses inside update()."
        )

    def _gold(self, examples: list[Example]):
        """Per example: BIO tag ids, term token spans and polarity ids (None: not annotated)."""
        key = self.spans_key
        index = {label: i for i, label in enumerate(self.labels)}
        tags, spans, labels = [], [], []
        for eg in examples:
            if key not in eg.reference.spans:
                tags.append(None)
                spans.append([])
                labels.append(np.zeros(0, dtype="int32"))
                continue
            aligned = _aligned_gold(eg, key)
            unknown = [s.label_ for s in aligned if s.label_ not in index]
            if unknown:
                raise ConfigError(
                    f"Gold aspect term polarity {unknown[0]!r} is not a label of {self.name} "
                    f"({list(self.labels)}). Add it to the training data used at initialize, "
                    "or drop it when converting (spacy-senti convert --labels ...)."
                )
            doc_spans = [(s.start, s.end) for s in aligned]
            tags.append(encode_bio(len(eg.predicted), doc_spans))
            spans.append(doc_spans)
            labels.append(np.asarray([index[s.label_] for s in aligned], dtype="int32"))
        return tags, spans, labels

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Language | None = None,
        labels: list[str] | None = None,
    ) -> None:
        """Read the polarity labels from the gold terms (unless given) and size the model."""
        validate_get_examples(get_examples, "SentiAspects.initialize")
        examples = list(get_examples())
        if labels is not None:
            self.cfg["labels"] = list(labels)
        elif not self.cfg["labels"]:
            found = {
                span.label_
                for eg in examples
                if self.spans_key in eg.reference.spans
                for span in eg.reference.spans[self.spans_key]
            }
            self.cfg["labels"] = sorted(found)
        if not self.cfg["labels"]:
            raise ConfigError(
                f"{self.name} found no labelled aspect terms in doc.spans[{self.spans_key!r}] "
                "of the training data. Convert SemEval-style data with `spacy-senti convert "
                "-f semeval14 --level terms`, or set spans_key to the key your data uses."
            )
        self.model.get_ref("polarity_output").set_dim("nO", len(self.labels))
        self.model.initialize(X=[eg.reference for eg in examples[:10]])

    # --- scoring -------------------------------------------------------------------------
    def score(self, examples: Iterable[Example], **kwargs) -> dict[str, Any]:
        """Term P/R/F, polarity accuracy and macro-F1 on the gold terms, pair F1."""
        examples = list(examples)
        validate_examples(examples, "SentiAspects.score")
        return self.scorer(
            examples, spans_key=self.spans_key, labels=list(self.labels),
            gold_term_polarities=self.gold_term_polarities(examples),
        )

    def gold_term_polarities(self, examples: list[Example]) -> list[tuple[str, str]] | None:
        """(gold, predicted) polarity of every gold term of the annotated examples, predicted
        from the encoder output the docs already carry; None when they carry none (e.g. a
        pipeline without the transformer's ``doc._.trf_data``)."""
        key = self.spans_key
        annotated = [eg for eg in examples if key in eg.reference.spans]
        if not annotated or not Doc.has_extension("trf_data"):
            return None
        if any(eg.predicted._.trf_data is None for eg in annotated if len(eg.predicted)):
            return None
        gold = [_aligned_gold(eg, key) for eg in annotated]
        probs = self.predict_polarities(
            [eg.predicted for eg in annotated], [[(s.start, s.end) for s in g] for g in gold]
        )
        labels = self.labels
        return [
            (span.label_, labels[int(row.argmax())])
            for spans, rows in zip(gold, probs)
            for span, row in zip(spans, rows)
        ]


# --- helpers ------------------------------------------------------------------------------
def set_aspect_annotations(docs: Iterable[Doc], prediction: AspectPrediction,
                           labels: Sequence[str], spans_key: str) -> None:
    """Write ``doc.spans[spans_key]`` (label = polarity; ``attrs["scores"]`` = each term's mean
    probability of its tokens' chosen tags), ``span._.polarity_scores`` and
    ``doc._.aspect_terms`` from a prediction (``senti_aspects`` and its ONNX twin)."""
    for doc, tag_probs, spans, pol_probs in zip(
        docs, prediction.tag_probs, prediction.spans, prediction.polarity_probs
    ):
        chosen = tag_probs.max(axis=1) if len(tag_probs) else tag_probs
        group_spans, term_scores, terms = [], [], []
        for (start, end), probs in zip(spans, pol_probs):
            best = int(probs.argmax())
            span = Span(doc, start, end, label=labels[best])
            scores = dict(zip(labels, probs.tolist()))
            span._.polarity_scores = scores
            group_spans.append(span)
            term_scores.append(float(chosen[start:end].mean()))
            terms.append({"text": span.text, "start": span.start_char, "end": span.end_char,
                          "polarity": labels[best], "score": scores[labels[best]]})
        doc.spans[spans_key] = SpanGroup(doc, name=spans_key, spans=group_spans,
                                         attrs={"scores": term_scores})
        doc._.aspect_terms = terms


def _aligned_gold(eg: Example, key: str) -> list[Span]:
    """Gold term spans mapped onto the predicted doc's tokens (unique, in order)."""
    gold = eg.reference.spans[key]
    if eg.reference.text == eg.predicted.text and len(eg.reference) == len(eg.predicted):
        spans = [Span(eg.predicted, s.start, s.end, label=s.label) for s in gold]
    else:
        spans = list(eg.get_aligned_spans_y2x(gold, allow_overlap=True))
    seen, out = set(), []
    for span in sorted(spans, key=lambda s: (s.start, s.end)):
        if (span.start, span.end) not in seen:
            seen.add((span.start, span.end))
            out.append(span)
    return out


def _softmax(xp, logits):
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = xp.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def _cross_entropy(ops, logits, targets: np.ndarray) -> tuple[float, Any]:
    """Mean softmax cross-entropy and its gradient with respect to the logits."""
    xp = ops.xp
    probs = _softmax(xp, logits)
    index = xp.asarray(targets, dtype="int32")
    rows = xp.arange(len(index))
    loss = float(-xp.log(probs[rows, index] + 1e-9).mean())
    d_logits = probs.copy()
    d_logits[rows, index] -= 1.0
    return loss, d_logits / max(len(index), 1)
