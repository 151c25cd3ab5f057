"""Sentence pairs for contrastive (SetFit-style) fine-tuning, built from a few labelled docs.

Each doc has a *label set*: its positive ``doc.cats`` keys under one head (one label for an
exclusive head; the labels of a multilabel head; ``group/polarity`` keys of a grouped head).
The target similarity of two docs is the Jaccard overlap of their label sets (1 for the same
class, 0 for different classes of a single-label head; two empty sets count as equal).

Sampling follows SetFit's original ``num_iterations`` scheme: in each of ``R`` rounds every
doc gets one positive partner (overlap > 0) and one negative partner (overlap 0), drawn
uniformly, never itself. So there are exactly ``R * n`` positive and ``R * n`` negative pairs,
whatever the class sizes, and the same seed gives the same pairs.

setfit's own sampler (``setfit.sampler.ContrastiveDataset``) is not used: it pairs docs with
themselves, shuffles with a fixed seed (42), labels multilabel pairs 0/1 by *any* overlap, and
importing setfit pulls in ``datasets``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from spacy.tokens import Doc

from ..errors import InputError
from ..heads import SEP

#: how an empty label set (a multilabel doc with no positive label) is named in messages
NO_LABEL = "(no label)"


@dataclass(frozen=True)
class Pair:
    """Two docs (indices into the texts) and their target cosine similarity in [0, 1]."""

    first: int
    second: int
    target: float


def label_sets(docs: Sequence[Doc], head: str) -> list[frozenset[str] | None]:
    """Each doc's positive labels (``doc.cats`` value >= 0.5) under ``head``, without the
    ``head/`` prefix; None for a doc that does not annotate the head (no key of it)."""
    prefix = head + SEP
    out: list[frozenset[str] | None] = []
    for doc in docs:
        keys = {k[len(prefix):]: v for k, v in doc.cats.items() if k.startswith(prefix)}
        out.append(frozenset(k for k, v in keys.items() if v >= 0.5) if keys else None)
    return out


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a ∩ b| / |a ∪ b|; 1.0 for two empty sets."""
    union = a | b
    return len(a & b) / len(union) if union else 1.0


def check_label_sets(sets: Sequence[frozenset[str]], head: str, single_label: bool) -> None:
    """InputError unless contrastive pairs can be built: labelled docs, at least two classes,
    and every class (label, or for single-label heads the one label) on two docs or more."""
    if not sets:
        raise InputError(
            f"No training doc has a label of head '{head}': stage 1 needs docs.cats keys "
            f"'{head}/<label>' (write the data with `spacy-senti convert`)."
        )
    if single_label:
        bad = [s for s in sets if len(s) != 1]
        if bad:
            raise InputError(
                f"Head '{head}' is single-label, but {len(bad)} training doc(s) have "
                f"{len(bad[0])} positive labels ({sorted(bad[0]) or 'none'}): each doc needs "
                "exactly one."
            )
    counts = Counter(label for s in sets for label in (s or {NO_LABEL}))
    if len(set(sets)) < 2:
        only = ", ".join(sorted(next(iter(sets)))) or NO_LABEL
        raise InputError(
            f"All {len(sets)} training docs of head '{head}' have the same labels ({only}): "
            "contrastive pairs need at least two classes."
        )
    rare = sorted(label for label, n in counts.items() if n < 2)
    if rare:
        raise InputError(
            f"Head '{head}': label(s) {', '.join(rare)} have fewer than 2 training examples; "
            "contrastive pairs need at least 2 docs per class. Label more docs of these "
            "classes or drop them."
        )


def make_pairs(sets: Sequence[frozenset[str]], pairs_per_example: int = 20, seed: int = 0,
               *, head: str = "labels", single_label: bool = True) -> list[Pair]:
    """``pairs_per_example`` rounds of one positive and one negative partner per doc, shuffled.

    sets: each doc's label set (see :func:`label_sets`; unannotated docs left out).
    Raises InputError when a doc has no positive or no negative partner.
    """
    if pairs_per_example < 1:
        raise InputError("--pairs-per-example must be at least 1.")
    check_label_sets(sets, head, single_label)
    n = len(sets)
    sim = np.array([[jaccard(a, b) for b in sets] for a in sets], dtype="float64")
    np.fill_diagonal(sim, -1.0)  # never pair a doc with itself
    positives = [np.flatnonzero(row > 0) for row in sim]
    negatives = [np.flatnonzero(row == 0) for row in sim]
    for i in range(n):
        if not len(positives[i]) or not len(negatives[i]):
            kind = "shares a label with" if not len(negatives[i]) else "shares no label with"
            raise InputError(
                f"Head '{head}': training doc {i} (labels {sorted(sets[i]) or NO_LABEL}) "
                f"{kind} every other doc, so it has no "
                f"{'negative' if not len(negatives[i]) else 'positive'} partner."
            )
    rng = np.random.default_rng(seed)
    pairs: list[Pair] = []
    for _ in range(pairs_per_example):
        for i in rng.permutation(n):
            j = int(rng.choice(positives[i]))
            k = int(rng.choice(negatives[i]))
            pairs.append(Pair(int(i), j, float(sim[i, j])))
            pairs.append(Pair(int(i), k, 0.0))
    order = rng.permutation(len(pairs))
    return [pairs[o] for o in order]
