"""Stratified splits and samples, and duplicate / leakage detection between splits.

Single-label data is stratified with scikit-learn's ``train_test_split``; multi-label (and
grouped aspect) data with iterative stratification (Sechidis et al. 2011), taken from the
``iterative-stratification`` package when it is installed, else from the small port below.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import InputError

SPLIT_ORDER = ("train", "dev", "test")


# --- stratification ------------------------------------------------------------------
def parse_ratios(spec: str) -> list[float]:
    """``"0.8,0.1,0.1"`` -> ``[0.8, 0.1, 0.1]`` (2 or 3 positive parts summing to 1)."""
    try:
        ratios = [float(part) for part in spec.split(",")]
    except ValueError:
        raise InputError(f"--split {spec!r}: use numbers like '0.8,0.1,0.1'.") from None
    if len(ratios) not in (2, 3) or any(r <= 0 for r in ratios):
        raise InputError(
            f"--split {spec!r}: give 2 (train,dev) or 3 (train,dev,test) positive fractions."
        )
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise InputError(f"--split {spec!r}: the fractions sum to {sum(ratios):g}, not 1.")
    return ratios


def _sizes(n: int, ratios: Sequence[float]) -> list[int]:
    """Exact part sizes for ``n`` items (largest remainder rounding)."""
    raw = [r * n for r in ratios]
    sizes = [int(x) for x in raw]
    order = sorted(range(len(raw)), key=lambda i: raw[i] - sizes[i], reverse=True)
    for i in order[: n - sum(sizes)]:
        sizes[i] += 1
    return sizes


def iterative_stratification(
    y: np.ndarray, ratios: Sequence[float], rng: np.random.RandomState
) -> np.ndarray:
    """Fold index per row for a boolean indicator matrix ``y`` (Sechidis et al. 2011)."""
    y = np.asarray(y, dtype=bool)
    r = np.asarray(ratios, dtype=float)
    try:  # the maintained implementation, when installed
        from iterstrat.ml_stratifiers import IterativeStratification
    except ImportError:  # pragma: no cover - the port is tested directly in test_split
        return _iterative_stratification(y, r, rng)
    return IterativeStratification(labels=y, r=r, random_state=rng)


def _iterative_stratification(
    y: np.ndarray, r: np.ndarray, rng: np.random.RandomState
) -> np.ndarray:
    """Fallback port of the algorithm: rarest label first, to the fold that needs it most."""
    n = y.shape[0]
    folds = np.zeros(n, dtype=int)
    want = r * n
    want_label = np.outer(r, y.sum(axis=0)).astype(float)
    todo = np.ones(n, dtype=bool)
    while todo.any():
        counts = y[todo].sum(axis=0)
        if counts.sum() == 0:  # only rows without labels are left: fill the largest gaps
            for i in np.flatnonzero(todo):
                best = np.flatnonzero(want == want.max())
                f = best[rng.randint(len(best))]
                folds[i] = f
                want[f] -= 1
            break
        rarest = np.flatnonzero(counts == counts[counts > 0].min())
        label = rarest[rng.randint(len(rarest))]
        for i in np.flatnonzero(y[:, label] & todo):
            need = want_label[:, label]
            best = np.flatnonzero(need == need.max())
            if len(best) > 1:
                best = best[want[best] == want[best].max()]
            f = best[rng.randint(len(best))]
            folds[i] = f
            todo[i] = False
            want_label[f, y[i]] -= 1
            want[f] -= 1
    return folds


def _as_matrix(labels: Sequence[Hashable] | Sequence[Sequence[Hashable]]) -> np.ndarray:
    """An indicator matrix for single labels or label collections."""
    vocab: dict[Hashable, int] = {}
    rows = [
        [lab] if not isinstance(lab, (list, tuple, set, frozenset)) else list(lab)
        for lab in labels
    ]
    for row in rows:
        for lab in row:
            vocab.setdefault(lab, len(vocab))
    y = np.zeros((len(rows), max(len(vocab), 1)), dtype=bool)
    for i, row in enumerate(rows):
        for lab in row:
            y[i, vocab[lab]] = True
    return y


def _is_multilabel(labels: Sequence) -> bool:
    return any(isinstance(lab, (list, tuple, set, frozenset)) for lab in labels)


def stratified_split(
    labels: Sequence[Hashable] | Sequence[Sequence[Hashable]],
    ratios: Sequence[float],
    seed: int = 0,
) -> list[np.ndarray]:
    """Split row indices into ``len(ratios)`` parts that keep the label distribution.

    ``labels`` holds one hashable label per row (single-label: scikit-learn stratified
    shuffle) or a list/tuple of labels per row (multi-label: iterative stratification). A
    single-label class too rare for scikit-learn falls back to iterative stratification.
    Each returned index array is sorted.
    """
    n = len(labels)
    sizes = _sizes(n, ratios)
    if n == 0:
        return [np.array([], dtype=int) for _ in ratios]
    if not _is_multilabel(labels):
        try:
            return _sklearn_split(list(labels), sizes, seed)
        except ValueError:  # a class with fewer members than parts
            pass
    rng = np.random.RandomState(seed)
    order = rng.permutation(n)
    y = _as_matrix(labels)[order]
    folds = _rebalance(iterative_stratification(y, [s / n for s in sizes], rng), sizes, rng)
    return [np.sort(order[folds == k]) for k in range(len(ratios))]


def _rebalance(folds: np.ndarray, sizes: list[int], rng: np.random.RandomState) -> np.ndarray:
    """Move random rows from over-full to under-full folds so fold k has ``sizes[k]`` rows
    (iterative stratification only approximates the sizes)."""
    folds = folds.copy()
    surplus = [int(np.sum(folds == k)) - size for k, size in enumerate(sizes)]
    pool: list[int] = []
    for k, extra in enumerate(surplus):
        if extra > 0:
            pool += rng.choice(np.flatnonzero(folds == k), size=extra, replace=False).tolist()
    for k, extra in enumerate(surplus):
        for _ in range(-extra):
            folds[pool.pop()] = k
    return folds


def _sklearn_split(labels: list[Hashable], sizes: list[int], seed: int) -> list[np.ndarray]:
    from sklearn.model_selection import train_test_split

    rest = np.arange(len(labels))
    parts: list[np.ndarray] = []
    for size in sizes[1:][::-1]:  # peel test, then dev, off the end
        if size == 0:
            parts.append(np.array([], dtype=int))
            continue
        y = [labels[i] for i in rest]
        rest, part = train_test_split(rest, test_size=size, stratify=y, random_state=seed)
        parts.append(np.sort(part))
    return [np.sort(rest), *parts[::-1]]


def stratified_sample(
    labels: Sequence[Hashable] | Sequence[Sequence[Hashable]], n: int, seed: int = 0
) -> np.ndarray:
    """Sorted indices of a stratified random subsample of exactly ``min(n, len)`` rows."""
    total = len(labels)
    if n >= total:
        return np.arange(total)
    if n <= 0:
        return np.array([], dtype=int)
    return stratified_split(labels, [n / total, 1 - n / total], seed=seed)[0]


# --- duplicates ------------------------------------------------------------------------
def normalize_text(text: str) -> str:
    """Key for near-duplicates: NFKC, casefolded, punctuation and whitespace removed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return "".join(
        ch for ch in text if not (ch.isspace() or unicodedata.category(ch).startswith("P"))
    )


@dataclass
class DupStats:
    """Duplicates within one split (``pair == (split,)``) or between two splits ``(a, b)``.

    Within a split: rows repeating an earlier row of the split (``rows``) and the distinct
    texts that repeat (``texts``). Across splits: rows of ``b`` whose text occurs in ``a``
    (``rows``) and the distinct such texts (``texts``). ``normalized`` counts rows as
    ``rows`` does, but by :func:`normalize_text`; ``conflicting`` counts the exact duplicate
    rows whose labels differ from the earlier occurrence.
    """

    pair: tuple[str, ...]
    rows: int = 0
    texts: int = 0
    normalized: int = 0
    conflicting: int = 0
    examples: list[str] = field(default_factory=list)
    conflict_examples: list[str] = field(default_factory=list)


@dataclass
class DuplicateReport:
    """Within-split and cross-split duplicates; ``removed`` is filled by :func:`dedupe`."""

    within: dict[str, DupStats] = field(default_factory=dict)
    across: dict[tuple[str, str], DupStats] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """Human-readable summary lines."""
        out = []
        for split, st in self.within.items():
            if not (st.rows or st.normalized):
                continue
            out.append(
                f"within {split}: {st.texts} texts repeated ({st.rows} extra rows, "
                f"{st.conflicting} with conflicting labels); {st.normalized} extra rows after "
                "normalisation"
            )
            out += [f"    conflict: {ex}" for ex in st.conflict_examples[:3]]
        for (a, b), st in self.across.items():
            if not (st.rows or st.normalized):
                continue
            out.append(
                f"{a}/{b}: {st.texts} texts ({st.rows} {b} rows, {st.conflicting} with other "
                f"labels) also in {a}; {st.normalized} {b} rows after normalisation"
            )
            out += [f"    e.g. {ex}" for ex in st.examples[:3]]
        for split, n in self.removed.items():
            if n:
                out.append(f"--dedupe removed {n} rows from {split}")
        return out or ["none found"]


Item = tuple[str, Hashable]  # (text, hashable label summary)


def _ordered(splits: Mapping[str, Sequence[Item]]) -> list[str]:
    known = [s for s in SPLIT_ORDER if s in splits]
    return known + sorted(s for s in splits if s not in SPLIT_ORDER)


def find_duplicates(splits: Mapping[str, Sequence[Item]], n_examples: int = 5) -> DuplicateReport:
    """Count exact and normalised duplicates within and across splits.

    ``splits`` maps a split name to ``(text, label)`` items; ``label`` is any hashable
    summary of the annotation, used to flag conflicting duplicates.
    """
    report = DuplicateReport()
    names = _ordered(splits)
    first_label: dict[str, dict[str, Hashable]] = {}
    norms: dict[str, list[str]] = {}
    for name in names:
        st = DupStats((name,))
        seen: dict[str, Hashable] = {}
        repeated: set[str] = set()
        norms[name] = [normalize_text(text) for text, _ in splits[name]]
        st.normalized = len(norms[name]) - len(set(norms[name]))
        for text, label in splits[name]:
            if text not in seen:
                seen[text] = label
                continue
            st.rows += 1
            repeated.add(text)
            if seen[text] != label:
                st.conflicting += 1
                if len(st.conflict_examples) < n_examples:
                    st.conflict_examples.append(f"{text!r}: {seen[text]} vs {label}")
        st.texts = len(repeated)
        report.within[name] = st
        first_label[name] = seen
    for j, b in enumerate(names):
        for a in names[:j]:
            st = DupStats((a, b))
            earlier, earlier_norms = first_label[a], set(norms[a])
            shared: set[str] = set()
            for (text, label), norm in zip(splits[b], norms[b], strict=True):
                if text in earlier:
                    st.rows += 1
                    shared.add(text)
                    if earlier[text] != label:
                        st.conflicting += 1
                    if len(st.examples) < n_examples and repr(text) not in st.examples:
                        st.examples.append(repr(text))
                st.normalized += norm in earlier_norms
            st.texts = len(shared)
            report.across[(a, b)] = st
    return report


def dedupe(splits: Mapping[str, Sequence[Item]]) -> tuple[dict[str, list[int]], DuplicateReport]:
    """Indices to keep per split, and the report of what was found and removed.

    Later splits (train < dev < test) lose rows whose normalised text occurs in an earlier
    split; train loses exact repeats of its own rows (the first occurrence is kept).
    """
    report = find_duplicates(splits)
    names = _ordered(splits)
    keep: dict[str, list[int]] = {}
    earlier: set[str] = set()
    for name in names:
        rows = splits[name]
        kept: list[int] = []
        seen: set[str] = set()
        for i, (text, _label) in enumerate(rows):
            if normalize_text(text) in earlier:
                continue
            if name == names[0]:
                if text in seen:
                    continue
                seen.add(text)
            kept.append(i)
        keep[name] = kept
        report.removed[name] = len(rows) - len(kept)
        earlier |= {normalize_text(rows[i][0]) for i in kept}
    return keep, report
