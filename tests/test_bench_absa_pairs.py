"""bench/bench_absa_pairs.py scores the pair formulation exactly as the grouped head scores."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from helpers import load_bench_script

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pairs():
    return load_bench_script("bench_absa_pairs")


def test_aspect_scores_read_classes_and_probabilities_per_group(pairs):
    # 2 sentences x 2 categories; classes index POLARITIES (0 = absent)
    gold = np.array([[1, 0], [2, 4]])
    probs = np.zeros((2, 2, len(pairs.POLARITIES)))
    probs[0, 0] = [0.1, 0.6, 0.1, 0.1, 0.1]  # detected, positive: right
    probs[0, 1] = [0.1, 0.5, 0.2, 0.1, 0.1]  # detected but absent in gold: a false positive
    probs[1, 0] = [0.6, 0.1, 0.2, 0.05, 0.05]  # missed; its best polarity (negative) is right
    probs[1, 1] = [0.1, 0.1, 0.1, 0.2, 0.5]  # conflict: right
    scores = pairs.aspect_scores(gold, probs)
    # detection: tp 2, fp 1, fn 1 -> F1 2/3; polarity on the 3 gold-present: all right
    assert scores == {"detection micro-F1": pytest.approx(2 / 3), "polarity accuracy": 1.0}
    probs[1, 1] = [0.1, 0.5, 0.1, 0.2, 0.1]
    assert pairs.aspect_scores(gold, probs)["polarity accuracy"] == pytest.approx(2 / 3)


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
