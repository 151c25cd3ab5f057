"""bench/bench_absa_pairs.py scores the pair formulation exactly as the grouped head scores."""

from __future__ import annotations

import importlib.util
import random
import sys
from pathlib import Path

import numpy as np
import pytest

from spacy_senti.heads.grouped import GroupedHead

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs():
    spec = importlib.util.spec_from_file_location("bench_absa_pairs",
                                                  REPO / "bench/bench_absa_pairs.py")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(REPO / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(REPO / "bench"))
    return module


def test_aspect_scores_match_the_grouped_head(pairs):
    groups = ["ambience", "anecdotes", "food", "price", "service"]
    head = GroupedHead("aspect", labels=list(pairs.POLARITIES[1:]), groups=groups)
    assert head.polarities == list(pairs.POLARITIES)
    rng = np.random.default_rng(0)
    n, g, p = 200, len(groups), len(pairs.POLARITIES)
    gold = rng.choice(p, size=(n, g), p=[0.6, 0.2, 0.1, 0.07, 0.03])
    probs = rng.dirichlet(np.ones(p), size=(n, g))
    flat_gold = np.eye(p)[gold].reshape(n, g * p)
    expected = head.score(flat_gold, probs.reshape(n, g * p))
    got = pairs.aspect_scores(gold, probs)
    assert got["detection micro-F1"] == pytest.approx(expected["detect_micro_f"])
    assert got["polarity accuracy"] == pytest.approx(expected["acc"])


def test_length_batches_keep_every_pair_once_and_group_lengths(pairs):
    items = list(range(500))
    lengths = [random.Random(i).randint(5, 60) for i in items]
    batches = pairs.length_batches(items, lengths, 32, random.Random(0), buffer=4)
    assert sorted(i for b in batches for i in b) == items
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches])
    assert spread < 20  # random batches of 32 would span ~50


def test_question_names_the_category(pairs):
    assert pairs.question("food") == "what do you think of the food of it ?"
    assert "miscellaneous" in pairs.question("anecdotes")
