"""Scorer ``spacy_senti.aspects_scorer.v1`` of ``senti_aspects`` (PyABSA's ATEPC metrics).

Over the examples whose reference carries the span group (``doc.spans[spans_key]``; others
are not annotated for terms and are left out):

* ``aspect_terms_p/r/f``: term extraction, exact span match (character offsets);
* ``aspect_polarity_acc`` / ``aspect_polarity_macro_f``: polarity of the *gold* terms (the
  component predicts them from the encoder output the docs carry), macro over the polarity
  labels; when the caller gives no gold-term predictions (a pipeline without
  ``doc._.trf_data``), over the gold terms the extractor found exactly instead, and
  ``aspect_polarity_on`` says which;
* ``aspect_polarity_per_type``: {polarity: {"p", "r", "f"}} on the same terms;
* ``aspect_pairs_p/r/f``: end to end, (term, polarity) pairs that match exactly;
* ``aspect_terms_n_gold`` / ``aspect_terms_n_pred``: counts behind the numbers.

None, never 0, when there is nothing to score.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from spacy.training import Example
from spacy.util import registry

from ..extensions import ASPECTS_SPANS_KEY

PREFIX = "aspect_"


def _prf(tp: int, n_pred: int, n_gold: int) -> tuple[float | None, float | None, float | None]:
    p = tp / n_pred if n_pred else (None if not n_gold else 0.0)
    r = tp / n_gold if n_gold else None
    if p is None or r is None:
        return p, r, None
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def gold_and_predicted_terms(
    examples: Iterable[Example], spans_key: str = ASPECTS_SPANS_KEY
) -> list[tuple[set[tuple[int, int, str]], set[tuple[int, int, str]]]]:
    """Per annotated example: gold and predicted ``(start_char, end_char, polarity)`` sets."""
    out = []
    for eg in examples:
        if spans_key not in eg.reference.spans:
            continue
        gold = {(s.start_char, s.end_char, s.label_) for s in eg.reference.spans[spans_key]}
        group = eg.predicted.spans.get(spans_key, [])
        pred = {(s.start_char, s.end_char, s.label_) for s in group}
        out.append((gold, pred))
    return out


def score_aspect_terms(
    examples: Iterable[Example],
    *,
    spans_key: str = ASPECTS_SPANS_KEY,
    labels: Sequence[str] | None = None,
    gold_term_polarities: list[tuple[str, str]] | None = None,
) -> dict[str, Any]:
    """Term, polarity and pair metrics (see the module docstring).

    gold_term_polarities: (gold, predicted) polarity of every gold term, from the component.
    """
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    examples = list(examples)
    pairs = gold_and_predicted_terms(examples, spans_key)
    n_gold = sum(len({g[:2] for g in gold}) for gold, _ in pairs)
    n_pred = sum(len({p[:2] for p in pred}) for _, pred in pairs)
    tp_terms = sum(len({g[:2] for g in gold} & {p[:2] for p in pred}) for gold, pred in pairs)
    tp_pairs = sum(len(gold & pred) for gold, pred in pairs)
    scores: dict[str, Any] = {f"{PREFIX}terms_n_gold": n_gold, f"{PREFIX}terms_n_pred": n_pred}
    for name, tp in (("terms", tp_terms), ("pairs", tp_pairs)):
        p, r, f = _prf(tp, n_pred, n_gold)
        scores.update({f"{PREFIX}{name}_p": p, f"{PREFIX}{name}_r": r, f"{PREFIX}{name}_f": f})

    truth, guess = _polarity_pairs(pairs, gold_term_polarities)
    scores[f"{PREFIX}polarity_on"] = "gold terms" if gold_term_polarities is not None \
        else "extracted gold terms"
    names = list(labels) if labels else sorted(set(truth) | set(guess))
    if truth:
        p, r, f, _ = precision_recall_fscore_support(
            truth, guess, labels=names, average=None, zero_division=0
        )
        present = [i for i, name in enumerate(names) if name in set(truth) | set(guess)]
        scores[f"{PREFIX}polarity_acc"] = float(accuracy_score(truth, guess))
        scores[f"{PREFIX}polarity_macro_f"] = float(sum(f[i] for i in present) / len(present))
        scores[f"{PREFIX}polarity_per_type"] = {
            names[i]: {"p": float(p[i]), "r": float(r[i]), "f": float(f[i])} for i in present
        }
    else:
        scores[f"{PREFIX}polarity_acc"] = None
        scores[f"{PREFIX}polarity_macro_f"] = None
        scores[f"{PREFIX}polarity_per_type"] = {}
    return scores


def _polarity_pairs(pairs, gold_term_polarities):
    """(gold, predicted) polarity per scored term, both as lists of labels."""
    if gold_term_polarities is not None:
        return [g for g, _ in gold_term_polarities], [p for _, p in gold_term_polarities]
    truth: list[str] = []
    guess: list[str] = []
    for gold, pred in pairs:
        by_offsets = {p[:2]: p[2] for p in pred}
        for start, end, label in sorted(gold):
            if (start, end) in by_offsets:
                truth.append(label)
                guess.append(by_offsets[(start, end)])
    return truth, guess


@registry.scorers("spacy_senti.aspects_scorer.v1")
def make_aspects_scorer():
    """Registered scorer factory; ``senti_aspects`` passes its key, labels and gold-term
    polarities."""
    return score_aspect_terms
