"""Per-label threshold tuning: the search, the library function, persistence and the CLI."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import spacy
from helpers import load_config, make_examples, nlp_from_config, train, write_docbin
from spacy.tokens import DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.evaluation.report import predict_examples
from spacy_senti.evaluation.scorer import score_heads
from spacy_senti.evaluation.thresholds import (
    best_threshold,
    f_scores,
    parse_grid,
    parse_metric,
    tune_head,
    tune_thresholds,
)
from spacy_senti.heads import HeadSpec

GRID = parse_grid("0.05:0.95:0.01")
HEADS_CFG = {"sentiment": {"kind": "exclusive"}, "emotion": {"kind": "multilabel"},
             "aspect": {"kind": "grouped"}}
ROWS = [
    ("i loved this film", {"sentiment/positive": 1.0, "sentiment/negative": 0.0,
                           "emotion/joy": 1.0, "emotion/anger": 0.0, "emotion/fear": 0.0}),
    ("the plot was awful", {"sentiment/positive": 0.0, "sentiment/negative": 1.0,
                            "emotion/joy": 0.0, "emotion/anger": 1.0, "emotion/fear": 0.0}),
    ("great food and great staff", {"sentiment/positive": 1.0, "sentiment/negative": 0.0,
                                    "aspect/food/positive": 1.0}),
    ("i hate this boring movie", {"sentiment/positive": 0.0, "sentiment/negative": 1.0,
                                  "emotion/anger": 1.0, "emotion/joy": 0.0,
                                  "emotion/fear": 1.0}),
    ("a happy and fun day", {"emotion/joy": 1.0, "emotion/anger": 0.0, "emotion/fear": 0.0}),
    ("the waiter was angry and bad", {"emotion/anger": 1.0, "emotion/joy": 0.0,
                                      "emotion/fear": 0.0, "aspect/service/negative": 1.0}),
]
# dev: no doc has fear, so its threshold must stay
DEV_ROWS = [
    ("i loved this happy film", {"emotion/joy": 1.0, "emotion/anger": 0.0}),
    ("awful and boring plot", {"emotion/joy": 0.0, "emotion/anger": 1.0}),
    ("the staff was great fun", {"emotion/joy": 1.0, "emotion/anger": 0.0}),
    ("i hate the angry waiter", {"emotion/joy": 0.0, "emotion/anger": 1.0}),
    ("a wonderful movie", {"emotion/joy": 1.0, "emotion/anger": 0.0,
                           "sentiment/positive": 1.0, "sentiment/negative": 0.0}),
    ("the worst food", {"emotion/joy": 0.0, "emotion/anger": 0.0}),
]


# --- the search ------------------------------------------------------------------------------
def test_parse_grid_and_metric():
    assert len(GRID) == 91 and GRID[0] == 0.05 and GRID[-1] == 0.95 and 0.5 in GRID
    assert parse_grid("0.3, 0.5,0.7").tolist() == [0.3, 0.5, 0.7]
    for bad in ("0.1:2", "a:b:c", "0.5:0.1:0.1", "0:0.5:0.1", ""):
        with pytest.raises(ValueError, match="grid"):
            parse_grid(bad)
    assert parse_metric("f1") == 1.0 and parse_metric("F0.5") == 0.5
    with pytest.raises(ValueError, match="metric"):
        parse_metric("accuracy")


def test_f_scores_match_sklearn():
    from sklearn.metrics import fbeta_score

    rng = np.random.default_rng(1)
    y, p = rng.random(200) < 0.3, rng.random(200)
    for beta in (0.5, 1.0, 2.0):
        expected = [fbeta_score(y, p >= t, beta=beta, zero_division=0) for t in (0.2, 0.5, 0.9)]
        got = f_scores(y, p, np.array([0.2, 0.5, 0.9]), beta)
        assert got == pytest.approx(expected)


def test_best_threshold_known_optimum_and_ties():
    y = np.array([1, 1, 1, 0, 0, 0])
    # separable between 0.55 and 0.62: F1 = 1 for t in (0.55, 0.62]; closest to 0.5 is 0.56
    probs = np.array([0.62, 0.7, 0.8, 0.1, 0.3, 0.55])
    assert best_threshold(y, probs, GRID) == (pytest.approx(0.56), 1.0)
    # separable everywhere in [0.2, 0.8]: every grid point ties, 0.5 wins
    probs = np.array([0.9, 0.85, 0.95, 0.1, 0.15, 0.05])
    assert best_threshold(y, probs, GRID)[0] == pytest.approx(0.5)
    # below 0.5: (0.15, 0.2] -> 0.2 is closest to 0.5
    probs = np.array([0.2, 0.25, 0.3, 0.1, 0.05, 0.15])
    assert best_threshold(y, probs, GRID)[0] == pytest.approx(0.2)


def fake_examples(head: HeadSpec, gold: np.ndarray, probs: np.ndarray) -> list[Example]:
    nlp = spacy.blank("en")
    examples = []
    for i, (g, p) in enumerate(zip(gold, probs, strict=True)):
        ref, pred = nlp.make_doc(f"doc {i}"), nlp.make_doc(f"doc {i}")
        ref.cats = {f"{head.name}/{lab}": float(v) for lab, v in zip(head.labels, g, strict=True)}
        pred.cats = {f"{head.name}/{lab}": float(v) for lab, v in zip(head.labels, p, strict=True)}
        examples.append(Example(pred, ref))
    return examples


def test_tune_head_synthetic_optimum_and_scorer_agreement():
    head = HeadSpec("emotion", "multilabel", labels=["a", "b", "c"], thresholds={"c": 0.7})
    gold = np.array([[1, 1, 0], [1, 1, 0], [1, 0, 0], [0, 0, 0], [0, 0, 0], [0, 0, 0]], "f")
    probs = np.array([[0.62, 0.2, 0.9], [0.7, 0.25, 0.1], [0.8, 0.12, 0.3],
                      [0.1, 0.1, 0.2], [0.3, 0.05, 0.4], [0.55, 0.15, 0.8]], "f")
    examples = fake_examples(head, gold, probs)
    before = score_heads(examples, [head])["senti_emotion_macro_f"]
    result = tune_head(head, gold, probs, GRID)
    assert result.thresholds == {"a": pytest.approx(0.56), "b": pytest.approx(0.2)}
    assert result.skipped == ["c"]
    rows = {t.label: t for t in result.labels}
    assert rows["c"].new == rows["c"].old == 0.7 and rows["c"].n_positive == 0
    assert rows["a"].after == 1.0 and rows["b"].after == 1.0
    assert result.macro_before == pytest.approx(before)
    assert result.macro_after > result.macro_before
    head.thresholds.update(result.thresholds)
    after = score_heads(examples, [head])["senti_emotion_macro_f"]
    assert result.macro_after == pytest.approx(after)
    assert result.as_dict()["thresholds"] == result.thresholds


def test_tune_head_never_lowers_a_label_score():
    rng = np.random.default_rng(3)
    head = HeadSpec("emotion", "multilabel", labels=["x", "y"], thresholds={"x": 0.333})
    gold = (rng.random((50, 2)) < 0.4).astype("f")
    probs = np.clip(gold * 0.3 + rng.random((50, 2)) * 0.7, 0, 1).astype("f")
    result = tune_head(head, gold, probs, parse_grid("0.1,0.9"))  # a coarse grid
    for row in result.labels:
        assert row.after >= row.before
    assert result.macro_after >= result.macro_before
    with pytest.raises(ValueError, match="multilabel"):
        tune_head(HeadSpec("s", "exclusive", labels=["p", "n"]), gold, probs, GRID)


# --- on a real tiny pipeline ------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tiny_bert, tmp_path_factory):
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = HEADS_CFG
    nlp = nlp_from_config(config)
    train(nlp, make_examples(nlp, ROWS), n_iter=8, lr=3e-4)
    # deliberately bad thresholds, so that tuning has to move them
    nlp.get_pipe("senti_textcat").set_thresholds("emotion", {"joy": 0.99, "anger": 0.99,
                                                             "fear": 0.99})
    root = tmp_path_factory.mktemp("thresholds")
    nlp.to_disk(root / "model")
    write_docbin(root / "dev.spacy", DEV_ROWS, nlp)
    return root


def test_tune_thresholds_library_improves_and_survives_save_load(trained, tmp_path):
    nlp = spacy.load(trained / "model")
    pipe = nlp.get_pipe("senti_textcat")
    docs = list(DocBin().from_disk(trained / "dev.spacy").get_docs(nlp.vocab))
    before = score_heads(predict_examples(nlp, docs), pipe.heads)["senti_emotion_macro_f"]
    results = tune_thresholds(nlp, docs)
    assert set(results) == {"emotion"}
    result = results["emotion"]
    assert result.skipped == ["fear"]
    assert result.macro_before == pytest.approx(before)
    assert result.macro_after >= result.macro_before
    assert result.macro_after > 0.0  # 0.99 predicted nothing; tuned thresholds predict
    head = pipe.get_head("emotion")
    assert head.thresholds["fear"] == 0.99
    assert {k: head.thresholds[k] for k in ("joy", "anger")} == result.thresholds
    after = score_heads(predict_examples(nlp, docs), pipe.heads)["senti_emotion_macro_f"]
    assert after == pytest.approx(result.macro_after)
    nlp.to_disk(tmp_path / "tuned")
    reloaded = spacy.load(tmp_path / "tuned")
    assert reloaded.get_pipe("senti_textcat").get_head("emotion").thresholds == head.thresholds
    doc = reloaded("i loved this happy film")
    expected = [lab for lab, p in doc._.emotions.items() if p >= head.label_threshold(lab)]
    assert doc._.emotion_labels == expected
    # Examples work too (their references are re-predicted); nothing changes the second time
    again = tune_thresholds(reloaded, [Example(reloaded.make_doc(d.text), d) for d in docs],
                            apply=False)
    assert again["emotion"].macro_after == pytest.approx(result.macro_after)


def test_tune_thresholds_cli_in_place(trained, tmp_path):
    model = tmp_path / "model"
    shutil.copytree(trained / "model", model)
    result = CliRunner().invoke(app, ["tune-thresholds", str(model), str(trained / "dev.spacy"),
                                      "--output", str(model)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Head 'sentiment' (exclusive) left alone" in out
    assert "Head 'aspect' (grouped) left alone" in out
    assert "old thr" in out and "new thr" in out and "0.99" in out
    assert "emotion: macro-f1" in out and "['fear']" in out
    assert f"Saved pipeline to {model}" in out
    head = spacy.load(model).get_pipe("senti_textcat").get_head("emotion")
    assert head.thresholds["fear"] == 0.99
    assert head.thresholds["joy"] != 0.99 and head.thresholds["anger"] != 0.99


def test_tune_thresholds_cli_bad_inputs(trained, tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["tune-thresholds", str(trained / "model"),
                                 str(tmp_path / "missing.spacy"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1
    assert "DEV" in result.output and "missing.spacy" in result.output
    result = runner.invoke(app, ["tune-thresholds", str(tmp_path / "nomodel"),
                                 str(trained / "dev.spacy"), "--output", str(tmp_path / "o")])
    assert result.exit_code == 1 and "MODEL" in result.output and "nomodel" in result.output
    result = runner.invoke(app, ["tune-thresholds", str(trained / "model"),
                                 str(trained / "dev.spacy"), "--output", str(tmp_path / "o"),
                                 "--grid", "0.5:0.1:0.1"])
    assert result.exit_code == 1 and "grid" in result.output
    assert not (tmp_path / "o").exists()
