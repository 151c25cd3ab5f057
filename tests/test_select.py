"""spacy-senti select: uncertainty scores, k-center greedy, exports and the command."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import write_jsonl
from typer.testing import CliRunner

from spacy_senti.active.select import k_center_greedy, select, uncertainty
from spacy_senti.cli import app
from spacy_senti.heads import HeadSpec

EXCL = HeadSpec("sentiment", "exclusive", labels=["negative", "neutral", "positive"])
MULTI = HeadSpec("emotion", "multilabel", labels=["joy", "anger"])
POOL = ["good great love", "bad awful hate", "good bad", "the movie was fine", "sad joy",
        "wonderful excellent fun", "terrible worst", "it is the film", "happy sad angry",
        "boring plot but great staff"]


@pytest.fixture(scope="module")
def pipeline(cpu_fast_pipeline):
    return cpu_fast_pipeline


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least-confidence"])
def test_uncertainty_orders_confident_below_uncertain(strategy):
    probs = np.array([[0.98, 0.01, 0.01], [0.4, 0.35, 0.25], [1 / 3, 1 / 3, 1 / 3]])
    scores = uncertainty(EXCL, probs, strategy)
    assert scores[0] < scores[1] < scores[2] or (strategy == "margin" and scores[1] <= scores[2])
    assert scores.max() == pytest.approx(1.0)
    multi = uncertainty(MULTI, np.array([[0.99, 0.01], [0.5, 0.5]]), strategy)
    assert multi[0] < 0.2 and multi[1] == pytest.approx(1.0)


def test_k_center_greedy_covers_clusters():
    rng = np.random.RandomState(0)
    centres = np.eye(3) * 10
    vectors = np.concatenate([c + rng.normal(scale=0.1, size=(20, 3)) for c in centres])
    picked = k_center_greedy(vectors, 3)
    assert sorted(i // 20 for i in picked) == [0, 1, 2]


def test_select_errors_and_random():
    probs = {"sentiment": np.full((5, 3), 1 / 3)}
    with pytest.raises(ValueError, match="larger than the pool"):
        select([EXCL], probs, 6)
    with pytest.raises(ValueError, match="Unknown strategy"):
        select([EXCL], probs, 2, "bogus")
    idx, _ = select([EXCL], probs, 3, "random", seed=1)
    assert len(set(idx)) == 3


@pytest.mark.parametrize("strategy", ["entropy", "diverse"])
def test_select_command_writes_prodigy_and_label_studio(pipeline, tmp_path, strategy):
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    out, ls = tmp_path / "out.jsonl", tmp_path / "ls.json"
    res = CliRunner().invoke(app, ["select", str(pipeline), str(pool), "--n", "4",
                                   "--strategy", strategy, "--head", "sentiment",
                                   "--output", str(out), "--label-studio", str(ls)])
    assert res.exit_code == 0, res.output
    tasks = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(tasks) == 4 and len({t["text"] for t in tasks}) == 4
    assert all(t["meta"]["strategy"] == strategy for t in tasks)
    assert {o["id"] for o in tasks[0]["options"]} == {"negative", "positive"}
    assert tasks[0]["label"] in ("negative", "positive")
    if strategy == "entropy":
        scores = [t["meta"]["score"] for t in tasks]
        assert scores == sorted(scores, reverse=True)
    studio = json.loads(ls.read_text())
    assert studio[0]["data"]["text"] == tasks[0]["text"]
    result = studio[0]["predictions"][0]["result"][0]
    assert result["from_name"] == "sentiment" and result["type"] == "choices"
    assert "<Choices name=\"sentiment\"" in ls.with_suffix(".config.xml").read_text()


@pytest.mark.parametrize("case", ["too_many", "head", "missing", "strategy"])
def test_select_command_errors(pipeline, tmp_path, case):
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    args = {
        "too_many": [str(pool), "--n", "11"],
        "head": [str(pool), "--head", "emotion"],
        "missing": [str(tmp_path / "none.jsonl")],
        "strategy": [str(pool), "--strategy", "bald"],
    }[case]
    res = CliRunner().invoke(app, ["select", str(pipeline), *args, "--output",
                                   str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1
    expected = {"too_many": "pool size", "head": "Unknown head", "missing": "not found",
                "strategy": "Unknown --strategy"}[case]
    assert expected in res.output
