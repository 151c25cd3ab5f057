"""Stratified splits/samples and duplicate detection (spacy_senti.data.split)."""

from __future__ import annotations

import csv
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from spacy_senti.data import split as split_mod
from spacy_senti.data.readers import ReaderOptions, open_source
from spacy_senti.data.split import (
    dedupe,
    find_duplicates,
    normalize_text,
    parse_ratios,
    stratified_sample,
    stratified_split,
)

ASSETS = Path(__file__).resolve().parents[1] / "assets"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _goemotions(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    with open(path, newline="", encoding="utf-8") as f:
        return [(r[0], tuple(r[1].split(","))) for r in csv.reader(f, delimiter="\t")]


def test_parse_ratios_validates():
    assert parse_ratios("0.8,0.1,0.1") == [0.8, 0.1, 0.1]
    assert parse_ratios("0.9,0.1") == [0.9, 0.1]
    for bad, msg in [("0.8,0.1", "sum to 0.9"), ("1", "give 2"), ("a,b", "numbers"),
                     ("0.5,0.6,-0.1", "positive")]:
        with pytest.raises(ValueError, match=msg):
            parse_ratios(bad)


def test_single_label_split_is_exact_and_stratified():
    labels = ["neg"] * 300 + ["pos"] * 600 + ["neu"] * 100
    parts = stratified_split(labels, [0.8, 0.1, 0.1], seed=3)
    assert [len(p) for p in parts] == [800, 100, 100]
    assert sorted(np.concatenate(parts).tolist()) == list(range(1000))  # a partition
    for part in parts:
        counts = Counter(labels[i] for i in part)
        assert counts["pos"] == 0.6 * len(part) and counts["neu"] == 0.1 * len(part)
    again = stratified_split(labels, [0.8, 0.1, 0.1], seed=3)
    assert all((a == b).all() for a, b in zip(parts, again, strict=True))


def test_rare_single_label_class_falls_back_to_iterative():
    labels = ["a"] * 50 + ["b"] * 49 + ["rare"]
    parts = stratified_split(labels, [0.8, 0.1, 0.1], seed=0)
    assert [len(p) for p in parts] == [80, 10, 10]


@pytest.mark.parametrize("fallback", [False, True])
def test_multilabel_split_on_real_goemotions_rows(monkeypatch, fallback):
    if fallback:  # the port used when iterative-stratification is not installed
        monkeypatch.setattr(split_mod, "iterative_stratification",
                            lambda y, r, rng: split_mod._iterative_stratification(
                                np.asarray(y, bool), np.asarray(r, float), rng))
    rows = _goemotions(ASSETS / "goemotions" / "train.tsv")
    labels = [lab for _, lab in rows]
    parts = stratified_split(labels, [0.8, 0.1, 0.1], seed=0)
    assert [len(p) for p in parts] == [4000, 500, 500]
    assert len(set(np.concatenate(parts).tolist())) == 5000
    total = Counter(x for lab in labels for x in lab)
    for part in parts[1:]:
        counts = Counter(x for i in part for x in labels[i])
        for label in ("27", "0", "15"):  # neutral, admiration, gratitude: frequent labels
            expected = total[label] * len(part) / len(rows)
            assert abs(counts[label] - expected) <= 0.25 * expected + 3


def test_stratified_sample_exact_size_and_proportions():
    labels = ["0"] * 700 + ["1"] * 300
    idx = stratified_sample(labels, 100, seed=1)
    assert len(idx) == 100 and Counter(labels[i] for i in idx) == {"0": 70, "1": 30}
    assert len(stratified_sample(labels, 5000)) == 1000
    multi = [("a",), ("a", "b"), ("c",)] * 50
    assert len(stratified_sample(multi, 31, seed=2)) == 31


def test_normalize_text():
    assert normalize_text("Thank you!") == normalize_text("thank  you")
    assert normalize_text("I ❤️ it") != normalize_text("I it")  # symbols/emoji kept
    assert normalize_text("Ｔｈａｎｋｓ") == "thanks"  # NFKC


def test_find_duplicates_counts_and_conflicts():
    splits = {
        "train": [("Thank you!", "pos"), ("Thank you!", "neu"), ("bad", "neg"),
                  ("bad", "neg")],
        "dev": [("Thank you!", "pos"), ("thank you", "pos"), ("new", "neu")],
        "test": [("BAD", "neg"), ("new", "pos")],
    }
    report = find_duplicates(splits)
    within = report.within["train"]
    assert (within.rows, within.texts, within.conflicting) == (2, 2, 1)
    train_dev = report.across[("train", "dev")]
    assert (train_dev.rows, train_dev.texts, train_dev.normalized) == (1, 1, 2)
    assert report.across[("train", "test")].rows == 0
    assert report.across[("train", "test")].normalized == 1
    dev_test = report.across[("dev", "test")]
    assert (dev_test.rows, dev_test.conflicting) == (1, 1)
    text = "\n".join(report.lines())
    assert "conflict: 'Thank you!'" in text and "train/dev: 1 texts" in text


def test_dedupe_keeps_train_and_removes_leaks():
    splits = {
        "train": [("Thank you!", "pos"), ("Thank you!", "neu"), ("bad", "neg")],
        "dev": [("thank you", "pos"), ("new", "neu"), ("new", "neu")],
        "test": [("NEW.", "neu"), ("other", "pos")],
    }
    keep, report = dedupe(splits)
    assert keep == {"train": [0, 2], "dev": [1, 2], "test": [1]}
    assert report.removed == {"train": 1, "dev": 1, "test": 1}
    assert "--dedupe removed 1 rows from dev" in report.lines()


def test_bundled_samples_have_no_cross_split_duplicates():
    splits = {s: _goemotions(ASSETS / "goemotions" / f"{s}.tsv") for s in ("train", "dev", "test")}
    report = find_duplicates(splits)
    assert all(st.normalized == 0 for st in report.across.values())
    assert report.lines() == ["none found"]


@pytest.mark.slow
def test_goemotions_full_duplicate_counts_match_the_data_readme():
    if not (SHARED / "goemotions" / "train.tsv").exists():
        pytest.skip("shared/data/goemotions is not available")
    start = time.perf_counter()
    splits = {}
    for name in ("train", "dev", "test"):
        source = open_source(SHARED / "goemotions" / f"{name}.tsv", ReaderOptions("goemotions"))
        splits[name] = [(r.text, tuple(r.labels or ())) for r in source.records]
    report = find_duplicates(splits)
    assert report.across[("train", "dev")].texts == 41  # shared/data/README.md
    assert report.across[("train", "test")].texts == 32
    assert report.within["train"].rows == 183  # SOURCE.md: "train repeats 183 text strings"
    assert time.perf_counter() - start < 20
