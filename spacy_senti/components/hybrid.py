"""``senti_hybrid``: combine ``senti_textcat`` probabilities with ``senti_lexicon`` features.

Placed after ``senti_textcat`` (optional in ``lexicon`` mode) and ``senti_lexicon``. Modes:

* ``model``: the model's probabilities passed through unchanged (what ``spacy-senti
  fit-hybrid --mode auto`` installs when cross-validation on dev finds no gain).
* ``stacker``: a multinomial logistic regression on ``[log model probs, lexicon features]``,
  fitted on dev data (``spacy-senti fit-hybrid``) and stored as JSON-able numbers (no pickle).
  ``fit-hybrid`` now fits it with the model's log-probabilities as a fixed offset (saved as
  ``offset``) and penalises only the deviation from them, so a strongly regularised stacker is
  the model itself; stackers saved without an offset keep predicting as before. By default
  it is fitted without per-class intercepts and with class-balanced weights, so dev's label
  mix is not learnt as a shift (``fit_intercept`` / ``class_weight`` record how).
  Falls back to ``blend`` with a warning while no stacker is fitted.
* ``blend``: ``blend_weight * model + (1 - blend_weight) * lexicon`` probabilities.
* ``lexicon``: zero-shot; the compound mapped to labels with the cut-offs ``neg_cutoff`` /
  ``pos_cutoff`` (binary label sets: one cut at their midpoint, the sign by default).

Writes the final ``doc._.<head>`` / ``doc._.<head>_scores`` (``doc._.sentiment`` by default)
and ``doc.cats["<head>/<label>"]``, and keeps every source in ``doc._.sentiment_sources`` =
``{"model": {...} | None, "lexicon": {...} | None, "hybrid": {...}}``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import srsly
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import SimpleFrozenList, ensure_path
from spacy.vocab import Vocab

from ..errors import ConfigError
from ..extensions import register_head_extensions, register_hybrid_extensions
from ..heads import SEP, HeadSpec
from ..lexicon.vader import emoji_lexicon
from ..lexicon.wordlists import NEGATIONS

MODES = ("model", "stacker", "blend", "lexicon")
DEFAULT_LABELS = ["negative", "neutral", "positive"]
LEXICON_FEATURES = ("compound", "pos", "neg", "neu", "negations", "emoji_valence")
STATE_FILE = "hybrid.json"
PROB_FLOOR = 1e-6


@Language.factory(
    "senti_hybrid",
    assigns=["doc.cats", "doc._.sentiment_sources"],
    default_config={
        "mode": "stacker",
        "head": "sentiment",
        "labels": list(DEFAULT_LABELS),
        "blend_weight": 0.7,
        "neg_cutoff": -0.05,
        "pos_cutoff": 0.05,
        "sharpness": 5.0,
    },
)
def make_senti_hybrid(
    nlp: Language,
    name: str,
    mode: str,
    head: str,
    labels: list[str],
    blend_weight: float,
    neg_cutoff: float,
    pos_cutoff: float,
    sharpness: float,
) -> SentiHybrid:
    """Create the hybrid (model + lexicon) sentiment component.

    mode: ``model`` (the model's probabilities unchanged), ``stacker`` (fitted logistic
        regression; ``blend`` until fitted), ``blend`` (fixed weight) or ``lexicon``
        (zero-shot from the lexicon compound; needs no senti_textcat). ``spacy-senti
        fit-hybrid --mode auto`` picks one of model / blend / stacker by cross-validation.
    head: the exclusive ``senti_textcat`` head to combine with, and the name of the outputs
        (``doc._.<head>``, ``doc._.<head>_scores``, ``doc.cats["<head>/<label>"]``).
    labels: the labels when no model head is upstream (lexicon mode); must include
        ``negative`` and ``positive``, ``neutral`` is optional.
    blend_weight: weight of the model probabilities in ``blend`` mode (0..1).
    neg_cutoff: compound at or below which the lexicon says ``negative`` (VADER: -0.05).
    pos_cutoff: compound at or above which the lexicon says ``positive`` (VADER: 0.05). For
        binary label sets the single cut is ``(neg_cutoff + pos_cutoff) / 2``.
    sharpness: slope turning the compound into lexicon probabilities (softmax of
        ``sharpness * distance past the cut-off``); only the blend and the reported
        lexicon scores depend on it, not the lexicon label.

    Values fitted by ``spacy-senti fit-hybrid`` (stacker, cut-offs, blend weight, and the
    cross-validated choice of mode with every candidate's score) are saved with the component
    and override the config when the pipeline is loaded.
    """
    return SentiHybrid(
        nlp.vocab,
        name,
        mode=mode,
        head=head,
        labels=labels,
        blend_weight=blend_weight,
        neg_cutoff=neg_cutoff,
        pos_cutoff=pos_cutoff,
        sharpness=sharpness,
    )


# --- features ---------------------------------------------------------------------------------
def lexicon_features(doc: Doc) -> dict[str, float]:
    """Lexicon features of a doc scored by ``senti_lexicon``.

    compound/pos/neg/neu: ``doc._.lexicon_polarity``; negations: tokens that are VADER
    negation words or contain "n't"; emoji_valence: summed ``token._.valence`` of tokens
    holding an emoji.
    """
    polarity = doc._.get("lexicon_polarity") if Doc.has_extension("lexicon_polarity") else None
    if polarity is None:
        raise ConfigError(
            "senti_hybrid needs the lexicon scores: add senti_lexicon before senti_hybrid "
            "(nlp.add_pipe('senti_lexicon', before='senti_hybrid'))."
        )
    emojis = emoji_lexicon()
    negations = 0
    emoji_valence = 0.0
    for token in doc:
        lower = token.lower_
        if lower in NEGATIONS or "n't" in lower:
            negations += 1
        if not token.text.isascii() and any(char in emojis for char in token.text):
            emoji_valence += token._.get("valence") or 0.0
    return {
        "compound": float(polarity["compound"]),
        "pos": float(polarity["pos"]),
        "neg": float(polarity["neg"]),
        "neu": float(polarity["neu"]),
        "negations": float(negations),
        "emoji_valence": float(emoji_valence),
    }


def model_feature_names(labels: Sequence[str]) -> list[str]:
    return [f"log_p({label})" for label in labels]


def feature_vector(
    labels: Sequence[str], model_scores: dict[str, float], lex: dict[str, float]
) -> list[float]:
    """``[log p(label) for labels] + [lexicon features]`` (probabilities floored at 1e-6)."""
    logs = [math.log(max(float(model_scores[label]), PROB_FLOOR)) for label in labels]
    return logs + [lex[name] for name in LEXICON_FEATURES]


def polar_labels(labels: Sequence[str]) -> dict[str, str] | None:
    """{"negative"|"neutral"|"positive": label as spelled} or None if not a polarity set."""
    found = {label.lower(): label for label in labels}
    if "negative" not in found or "positive" not in found:
        return None
    allowed = {"negative", "neutral", "positive"}
    if set(found) - allowed:
        return None
    return {k: v for k, v in found.items() if k in allowed}


def lexicon_label(compound: float, labels: Sequence[str], neg_cutoff: float,
                  pos_cutoff: float) -> str:
    """The lexicon's label: 3 labels by the two cut-offs, 2 labels by their midpoint."""
    polar = _require_polar(labels)
    if "neutral" not in polar:
        cut = (neg_cutoff + pos_cutoff) / 2
        return polar["positive"] if compound >= cut else polar["negative"]
    if compound >= pos_cutoff:
        return polar["positive"]
    if compound <= neg_cutoff:
        return polar["negative"]
    return polar["neutral"]


def lexicon_probs(compound: float, labels: Sequence[str], neg_cutoff: float,
                  pos_cutoff: float, sharpness: float) -> dict[str, float]:
    """Soft lexicon probabilities: softmax of ``sharpness`` x distance past each cut-off."""
    polar = _require_polar(labels)
    if "neutral" not in polar:
        cut = (neg_cutoff + pos_cutoff) / 2
        logits = {"positive": compound - cut, "negative": cut - compound}
    else:
        logits = {"positive": compound - pos_cutoff, "negative": neg_cutoff - compound,
                  "neutral": 0.0}
    values = np.array([logits[k] for k in polar]) * sharpness
    values = np.exp(values - values.max())
    values /= values.sum()
    by_kind = dict(zip(polar, values.tolist()))
    return {label: by_kind[label.lower()] for label in labels}


def _require_polar(labels: Sequence[str]) -> dict[str, str]:
    polar = polar_labels(labels)
    if polar is None:
        raise ConfigError(
            f"The lexicon maps only to negative/positive (and neutral) labels, not {list(labels)}."
            " Use mode 'stacker', or map the labels with `spacy-senti convert --label-map`."
        )
    return polar


# --- the stacker --------------------------------------------------------------------------------
@dataclass
class Stacker:
    """A fitted multinomial logistic regression, kept as plain numbers.

    ``z = coef @ ((x - mean) / scale) + intercept`` (+ ``x[offset[k]]`` for class ``k`` when
    ``offset`` is set: the raw feature holding the model's log-probability of that class, so
    ``coef = 0, intercept = 0`` gives back the model); softmax over ``classes`` (one row of
    ``coef``: binary, ``sigmoid(z)`` is the probability of ``classes[1]``).

    ``fit_intercept`` (False: ``intercept`` is all zeros) and ``class_weight`` (``"balanced"``
    or None) record how it was fitted; prediction does not read them. Stackers saved before
    they existed load as ``True`` / None, how those were fitted.
    """

    classes: list[str]
    feature_names: list[str]
    mean: list[float]
    scale: list[float]
    coef: list[list[float]]
    intercept: list[float]
    C: float = 1.0
    offset: list[int] | None = None
    fit_intercept: bool = True
    class_weight: str | None = None

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (n, n_classes), columns in ``classes`` order."""
        X = np.atleast_2d(np.asarray(X, dtype="float64"))
        Z = (X - np.asarray(self.mean)) / np.asarray(self.scale)
        logits = Z @ np.asarray(self.coef).T + np.asarray(self.intercept)
        if self.offset is not None:
            logits = logits + X[:, self.offset]
        if logits.shape[1] == 1:
            p1 = 1.0 / (1.0 + np.exp(-logits[:, 0]))
            return np.stack([1.0 - p1, p1], axis=1)
        logits -= logits.max(axis=1, keepdims=True)
        probs = np.exp(logits)
        return probs / probs.sum(axis=1, keepdims=True)

    def to_dict(self) -> dict[str, Any]:
        return {
            "classes": list(self.classes),
            "feature_names": list(self.feature_names),
            "mean": [float(v) for v in self.mean],
            "scale": [float(v) for v in self.scale],
            "coef": [[float(v) for v in row] for row in self.coef],
            "intercept": [float(v) for v in self.intercept],
            "C": float(self.C),
            "offset": None if self.offset is None else [int(i) for i in self.offset],
            "fit_intercept": bool(self.fit_intercept),
            "class_weight": self.class_weight,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Stacker:
        stacker = cls(**{k: data[k] for k in
                         ("classes", "feature_names", "mean", "scale", "coef", "intercept")},
                      C=float(data.get("C", 1.0)), offset=data.get("offset"),
                      fit_intercept=bool(data.get("fit_intercept", True)),
                      class_weight=data.get("class_weight"))
        n_feat = len(stacker.feature_names)
        rows = len(stacker.coef)
        if any(len(r) != n_feat for r in stacker.coef) or len(stacker.mean) != n_feat \
                or rows not in (1, len(stacker.classes)):
            raise ConfigError("Corrupt senti_hybrid stacker: inconsistent shapes.")
        if stacker.offset is not None and (
            len(stacker.offset) != len(stacker.classes) or rows != len(stacker.classes)
            or any(not 0 <= int(i) < n_feat for i in stacker.offset)
        ):
            raise ConfigError("Corrupt senti_hybrid stacker: inconsistent offset.")
        if stacker.class_weight not in (None, "balanced"):
            raise ConfigError(
                f"Corrupt senti_hybrid stacker: class_weight {stacker.class_weight!r}.")
        return stacker


# --- the component ------------------------------------------------------------------------------
class SentiHybrid(Pipe):
    """Final sentiment from model probabilities and lexicon features; see the module doc."""

    def __init__(
        self,
        vocab: Vocab,
        name: str = "senti_hybrid",
        *,
        mode: str = "stacker",
        head: str = "sentiment",
        labels: Sequence[str] = tuple(DEFAULT_LABELS),
        blend_weight: float = 0.7,
        neg_cutoff: float = -0.05,
        pos_cutoff: float = 0.05,
        sharpness: float = 5.0,
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"senti_hybrid mode {mode!r}: use one of {', '.join(MODES)}.")
        if not 0.0 <= blend_weight <= 1.0:
            raise ConfigError(f"blend_weight must be in [0, 1], got {blend_weight}.")
        if neg_cutoff > pos_cutoff:
            raise ConfigError(
                f"neg_cutoff ({neg_cutoff}) must not be above pos_cutoff ({pos_cutoff})."
            )
        if SEP in head or not head:
            raise ConfigError(f"senti_hybrid head {head!r}: a non-empty name without '/'.")
        self.vocab = vocab
        self.name = name
        self.mode = mode
        self.head = head
        self.config_labels = list(labels)
        self.blend_weight = float(blend_weight)
        self.neg_cutoff = float(neg_cutoff)
        self.pos_cutoff = float(pos_cutoff)
        self.sharpness = float(sharpness)
        self.stacker: Stacker | None = None
        self.selection: dict[str, Any] | None = None
        self.fit_options: dict[str, Any] | None = None
        self._warned = False
        register_hybrid_extensions()
        register_head_extensions(HeadSpec(name=head, kind="exclusive"))

    # -- prediction ---------------------------------------------------------------------------
    @property
    def labels(self) -> tuple[str, ...]:
        """Labels used without model scores (lexicon mode); else the model head's labels."""
        return tuple(self.config_labels)

    @property
    def effective_mode(self) -> str:
        """The mode actually used: ``blend`` while a ``stacker`` is not fitted."""
        return "blend" if self.mode == "stacker" and self.stacker is None else self.mode

    def model_scores(self, doc: Doc) -> dict[str, float] | None:
        """The upstream head's probabilities (kept in the sources if set before), or None."""
        sources = doc._.get("sentiment_sources")
        if sources and sources.get("model"):
            return dict(sources["model"])
        prefix = self.head + SEP
        scores = {k[len(prefix):]: float(v) for k, v in doc.cats.items() if k.startswith(prefix)}
        return scores or None

    def __call__(self, doc: Doc) -> Doc:
        mode = self.effective_mode
        if mode != self.mode and not self._warned:
            warnings.warn(
                f"senti_hybrid '{self.name}': mode 'stacker' but no stacker is fitted; using "
                f"'blend' (weight {self.blend_weight}). Fit one with `spacy-senti fit-hybrid`.",
                stacklevel=2,
            )
            self._warned = True
        model = self.model_scores(doc)
        if model is None and mode != "lexicon":
            raise ConfigError(
                f"senti_hybrid (mode {mode!r}) found no '{self.head}{SEP}...' scores: put a "
                f"senti_textcat with an exclusive head '{self.head}' before it, or use mode "
                "'lexicon'."
            )
        labels = list(model) if model is not None else self.config_labels
        lex = lexicon_features(doc)
        lex_scores = None
        if polar_labels(labels) is not None:
            lex_scores = lexicon_probs(lex["compound"], labels, self.neg_cutoff,
                                       self.pos_cutoff, self.sharpness)
        if mode == "model":
            assert model is not None
            final = dict(model)
            best = max(final, key=final.__getitem__)
        elif mode == "lexicon":
            final = dict(_require_scores(lex_scores, labels))
            best = lexicon_label(lex["compound"], labels, self.neg_cutoff, self.pos_cutoff)
        elif mode == "blend":
            lex_part = _require_scores(lex_scores, labels)
            w = self.blend_weight
            final = {lab: w * model[lab] + (1.0 - w) * lex_part[lab] for lab in labels}
            best = max(final, key=final.__getitem__)
        else:
            final = self.stack(labels, model, lex)
            best = max(final, key=final.__getitem__)
        self._write(doc, final, best, model, lex_scores)
        return doc

    def stack(self, labels: Sequence[str], model: dict[str, float],
              lex: dict[str, float]) -> dict[str, float]:
        """The fitted stacker's probabilities for one doc."""
        assert self.stacker is not None
        if sorted(self.stacker.classes) != sorted(labels):
            raise ConfigError(
                f"The senti_hybrid stacker was fitted for labels {self.stacker.classes}, but the "
                f"model predicts {list(labels)}. Re-run `spacy-senti fit-hybrid`."
            )
        order = self.stacker.feature_names[: len(labels)]
        model_labels = [name[len("log_p("):-1] for name in order]
        x = feature_vector(model_labels, model, lex)
        probs = self.stacker.predict_proba(np.asarray([x]))[0]
        by_class = dict(zip(self.stacker.classes, probs.tolist()))
        return {label: by_class[label] for label in labels}

    def _write(self, doc: Doc, final: dict[str, float], best: str,
               model: dict[str, float] | None, lex_scores: dict[str, float] | None) -> None:
        for label, p in final.items():
            doc.cats[f"{self.head}{SEP}{label}"] = float(p)
        doc._.set(self.head, best)
        doc._.set(f"{self.head}_scores", dict(final))
        doc._.sentiment_sources = {"model": model, "lexicon": lex_scores, "hybrid": dict(final)}

    # -- fitted state ---------------------------------------------------------------------------
    def set_fitted(
        self,
        *,
        stacker: Stacker | None = None,
        cutoffs: tuple[float, float] | None = None,
        blend_weight: float | None = None,
        selection: dict[str, Any] | None = None,
        fit_options: dict[str, Any] | None = None,
    ) -> None:
        """Store fitted values (saved with the component).

        selection: the cross-validated choice of mode (``fit-hybrid --mode auto``): the
        chosen mode, the metric, the folds and every candidate's fold scores. fit_options:
        how dev's label mix was handled (``{"balanced": bool, "intercept": bool}``).
        """
        if selection is not None:
            self.selection = dict(selection)
        if fit_options is not None:
            self.fit_options = dict(fit_options)
        if stacker is not None:
            self.stacker = stacker
        if cutoffs is not None:
            neg, pos = (float(c) for c in cutoffs)
            if neg > pos:
                raise ConfigError(f"neg_cutoff {neg} is above pos_cutoff {pos}.")
            self.neg_cutoff, self.pos_cutoff = neg, pos
        if blend_weight is not None:
            self.blend_weight = float(blend_weight)

    def _state(self) -> dict[str, Any]:
        return {
            "stacker": self.stacker.to_dict() if self.stacker is not None else None,
            "neg_cutoff": self.neg_cutoff,
            "pos_cutoff": self.pos_cutoff,
            "blend_weight": self.blend_weight,
            "selection": self.selection,
            "fit_options": self.fit_options,
        }

    def _set_state(self, state: dict[str, Any]) -> None:
        data = state.get("stacker")
        self.stacker = Stacker.from_dict(data) if data else None
        self.neg_cutoff = float(state.get("neg_cutoff", self.neg_cutoff))
        self.pos_cutoff = float(state.get("pos_cutoff", self.pos_cutoff))
        self.blend_weight = float(state.get("blend_weight", self.blend_weight))
        self.selection = state.get("selection")
        self.fit_options = state.get("fit_options")

    def initialize(self, get_examples=None, *, nlp: Language | None = None) -> None:
        """Nothing to initialise: fit with ``spacy-senti fit-hybrid``."""

    # -- serialisation (JSON/msgpack, never pickle) -----------------------------------------------
    def to_bytes(self, *, exclude: Iterable[str] = SimpleFrozenList()) -> bytes:
        return srsly.msgpack_dumps(self._state())

    def from_bytes(self, bytes_data: bytes, *,
                   exclude: Iterable[str] = SimpleFrozenList()) -> SentiHybrid:
        self._set_state(srsly.msgpack_loads(bytes_data))
        return self

    def to_disk(self, path: str | Path, *, exclude: Iterable[str] = SimpleFrozenList()) -> None:
        """Write ``hybrid.json`` (stacker coefficients, classes, feature names, cut-offs)."""
        path = ensure_path(path)
        path.mkdir(parents=True, exist_ok=True)
        srsly.write_json(path / STATE_FILE, self._state())

    def from_disk(self, path: str | Path, *,
                  exclude: Iterable[str] = SimpleFrozenList()) -> SentiHybrid:
        file = ensure_path(path) / STATE_FILE
        if file.exists():
            self._set_state(srsly.read_json(file))
        return self


def _require_scores(scores: dict[str, float] | None, labels: Sequence[str]) -> dict[str, float]:
    if scores is None:
        _require_polar(labels)
    assert scores is not None
    return scores


__all__ = [
    "LEXICON_FEATURES",
    "SentiHybrid",
    "Stacker",
    "feature_vector",
    "lexicon_features",
    "lexicon_label",
    "lexicon_probs",
    "make_senti_hybrid",
    "model_feature_names",
]
