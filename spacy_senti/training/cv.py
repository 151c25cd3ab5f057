"""Stratified k-fold cross-validation of a training config through spaCy's training loop.

Folds are stratified on the gold labels of every ``senti_textcat`` head (iterative
stratification when a doc has several positive labels, see ``data/split.py``). For each fold
the other folds are the training data, a stratified ``dev_fraction`` of them picks the best
checkpoint (``spacy.cli.train.train`` writes ``model-best``), and the held-out fold is the
test set. Reported: mean ± sample std (ddof=1) of every numeric score across folds.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from tqdm import tqdm

from ..data.split import stratified_split
from ..errors import InputError
from ..heads import SEP
from ..util import read_docs


def strat_label(doc: Doc) -> Hashable | tuple[Hashable, ...]:
    """A doc's stratification label: its one positive key, or the tuple of several."""
    positive = tuple(sorted(k for k, v in doc.cats.items() if SEP in k and v >= 0.5))
    if not positive:
        return "(none)"
    return positive[0] if len(positive) == 1 else positive


def make_folds(docs: Sequence[Doc], k: int, seed: int = 0) -> list[np.ndarray]:
    """``k`` sorted index arrays, stratified on :func:`strat_label`."""
    if k < 2:
        raise InputError("--folds must be at least 2.")
    if len(docs) < k:
        raise InputError(f"{len(docs)} docs cannot be split into {k} folds.")
    labels = [strat_label(d) for d in docs]
    if any(isinstance(lab, tuple) for lab in labels):
        labels = [lab if isinstance(lab, tuple) else (lab,) for lab in labels]
    return stratified_split(labels, [1.0 / k] * k, seed=seed)


@dataclass
class CVResult:
    """Per-fold scores and their mean and std."""

    folds: list[dict[str, float]] = field(default_factory=list)
    sizes: list[dict[str, int]] = field(default_factory=list)

    def summary(self) -> dict[str, dict[str, float]]:
        keys = [k for k in self.folds[0] if all(k in f for f in self.folds)] if self.folds else []
        out = {}
        for key in keys:
            values = np.array([f[key] for f in self.folds], dtype=float)
            std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
            out[key] = {"mean": float(values.mean()), "std": std}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"folds": self.folds, "sizes": self.sizes, "summary": self.summary()}


def numeric_scores(scores: dict[str, Any]) -> dict[str, float]:
    """Flat numeric scores (per-type dicts and speed left out)."""
    return {k: float(v) for k, v in scores.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "speed"}


def _write(docs: Sequence[Doc], path: Path) -> Path:
    db = DocBin(store_user_data=False)
    for doc in docs:
        db.add(doc)
    db.to_disk(path)
    return path


def cross_validate(config: Path, data: Path, *, folds: int = 5,
                   overrides: dict[str, Any] | None = None, seed: int = 0,
                   dev_fraction: float = 0.1, output: Path | None = None,
                   keep_models: bool = False, progress: bool = True) -> CVResult:
    """Train and evaluate ``config`` on each of ``folds`` stratified folds of ``data``."""
    import spacy
    from spacy.cli.train import train as spacy_train

    docs = read_docs(data)
    parts = make_folds(docs, folds, seed)
    work = Path(output) if output is not None else Path(tempfile.mkdtemp(prefix="senti_cv_"))
    work.mkdir(parents=True, exist_ok=True)
    result = CVResult()
    try:
        for k in tqdm(range(folds), desc="folds", disable=not progress):
            fold_dir = work / f"fold{k}"
            fold_dir.mkdir(parents=True, exist_ok=True)
            test = [docs[i] for i in parts[k]]
            rest = np.concatenate([parts[j] for j in range(folds) if j != k])
            if dev_fraction > 0:
                labels = [strat_label(docs[i]) for i in rest]
                if any(isinstance(lab, tuple) for lab in labels):
                    labels = [lab if isinstance(lab, tuple) else (lab,) for lab in labels]
                tr, dv = stratified_split(labels, [1 - dev_fraction, dev_fraction], seed=seed)
                train_docs, dev_docs = [docs[rest[i]] for i in tr], [docs[rest[i]] for i in dv]
            else:
                train_docs, dev_docs = [docs[i] for i in rest], test
            paths = {
                "paths.train": str(_write(train_docs, fold_dir / "train.spacy")),
                "paths.dev": str(_write(dev_docs, fold_dir / "dev.spacy")),
            }
            spacy_train(Path(config), fold_dir / "model", use_gpu=-1,
                        overrides={**(overrides or {}), **paths})
            nlp = spacy.load(fold_dir / "model" / "model-best")
            examples = [Example(nlp.make_doc(d.text), d) for d in test]
            scores = numeric_scores(nlp.evaluate(examples))
            result.folds.append(scores)
            result.sizes.append({"train": len(train_docs), "dev": len(dev_docs),
                                 "test": len(test)})
            if not keep_models:
                shutil.rmtree(fold_dir / "model", ignore_errors=True)
    finally:
        if output is None:
            shutil.rmtree(work, ignore_errors=True)
    if output is not None:
        (work / "cv.json").write_text(json.dumps(result.to_dict(), indent=2), encoding="utf8")
        (work / "cv.md").write_text(markdown(result), encoding="utf8")
    return result


def _main_keys(summary: dict[str, Any]) -> list[str]:
    keys = [k for k in summary if k.endswith(("_acc", "_macro_f", "_micro_f", "_macro_p",
                                              "_macro_r"))]
    return keys or list(summary)


def markdown(result: CVResult) -> str:
    summary = result.summary()
    lines = [f"# Cross-validation ({len(result.folds)} folds)", "",
             "| metric | mean | std | " + " | ".join(f"fold {i}" for i in
                                                       range(len(result.folds))) + " |",
             "|---|---:|---:|" + "---:|" * len(result.folds)]
    for key in _main_keys(summary):
        lines.append(f"| {key} | {summary[key]['mean']:.4f} | {summary[key]['std']:.4f} | "
                     + " | ".join(f"{f[key]:.4f}" for f in result.folds) + " |")
    return "\n".join(lines) + "\n"


def format_table(result: CVResult):
    """A rich table of mean ± std per main metric."""
    from rich.table import Table

    summary = result.summary()
    table = Table(title=f"{len(result.folds)}-fold cross-validation")
    table.add_column("metric")
    table.add_column("mean ± std", justify="right")
    for key in _main_keys(summary):
        table.add_row(key, f"{summary[key]['mean']:.4f} ± {summary[key]['std']:.4f}")
    return table
