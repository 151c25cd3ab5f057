"""Evaluation report: calibration, error lists, files written, and `spacy-senti evaluate`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import spacy
import srsly
from helpers import load_config, make_examples, nlp_from_config, train, write_docbin
from spacy.tokens import DocBin
from spacy.training import Example
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.errors import InputError
from spacy_senti.evaluation.calibration import (
    calibration_pairs,
    expected_calibration_error,
    reliability_bins,
)
from spacy_senti.evaluation.report import (
    check_gold,
    most_confident_errors,
    predict_examples,
    write_report,
)
from spacy_senti.evaluation.scorer import head_arrays, score_heads
from spacy_senti.heads import HeadSpec

SENTIMENT = HeadSpec("sentiment", "exclusive", labels=["negative", "positive"])
EMOTION = HeadSpec("emotion", "multilabel", labels=["anger", "joy"], thresholds={"joy": 0.4})
ASPECT = HeadSpec("aspect", "grouped", labels=["negative", "positive"],
                  groups=["food", "service"])
HEADS_CFG = {"sentiment": {"kind": "exclusive"}, "emotion": {"kind": "multilabel"},
             "aspect": {"kind": "grouped"}}

ROWS = [
    ("i loved this film", {"sentiment/positive": 1.0, "sentiment/negative": 0.0,
                           "emotion/joy": 1.0, "emotion/anger": 0.0}),
    ("the plot was awful", {"sentiment/positive": 0.0, "sentiment/negative": 1.0,
                            "emotion/joy": 0.0, "emotion/anger": 1.0}),
    ("great food and great staff", {"sentiment/positive": 1.0, "sentiment/negative": 0.0,
                                    "aspect/food/positive": 1.0,
                                    "aspect/service/positive": 1.0}),
    ("i hate this boring movie", {"sentiment/positive": 0.0, "sentiment/negative": 1.0,
                                  "emotion/anger": 1.0, "emotion/joy": 0.0}),
    ("the food was bad", {"aspect/food/negative": 1.0, "aspect/service/absent": 1.0}),
    ("the waiter was very good", {"aspect/service/positive": 1.0, "emotion/joy": 1.0,
                                  "emotion/anger": 0.0}),
]


# --- helpers -------------------------------------------------------------------------------
def fake_example(nlp, text: str, gold: dict, pred: dict) -> Example:
    """An Example whose predicted doc.cats are written by hand."""
    reference, predicted = nlp.make_doc(text), nlp.make_doc(text)
    reference.cats, predicted.cats = dict(gold), dict(pred)
    return Example(predicted, reference)


def exclusive_case(nlp) -> list[Example]:
    """Six docs; wrong ones at p(predicted) 0.9 ('b'), 0.7 ('d'), 0.6 ('f')."""
    spec = [("a", "positive", 0.99), ("b", "positive", 0.1), ("c", "negative", 0.02),
            ("d", "positive", 0.3), ("e", "positive", 0.95), ("f", "negative", 0.6)]
    examples = []
    for text, gold, p_pos in spec:
        gold_cats = {"sentiment/positive": float(gold == "positive"),
                     "sentiment/negative": float(gold == "negative")}
        pred_cats = {"sentiment/positive": p_pos, "sentiment/negative": 1.0 - p_pos}
        examples.append(fake_example(nlp, f"doc {text}", gold_cats, pred_cats))
    return examples


def multihead_case(nlp) -> list[Example]:
    examples = exclusive_case(nlp)
    examples += [
        fake_example(nlp, "emo 1", {"emotion/joy": 1.0, "emotion/anger": 0.0},
                     {"emotion/joy": 0.35, "emotion/anger": 0.8}),  # FN joy 0.65, FP anger 0.8
        fake_example(nlp, "emo 2", {"emotion/joy": 0.0, "emotion/anger": 1.0},
                     {"emotion/joy": 0.2, "emotion/anger": 0.9}),
        fake_example(nlp, "asp 1", {"aspect/food/positive": 1.0},
                     {"aspect/food/absent": 0.1, "aspect/food/negative": 0.7,
                      "aspect/food/positive": 0.2, "aspect/service/absent": 0.9,
                      "aspect/service/negative": 0.05, "aspect/service/positive": 0.05}),
        fake_example(nlp, "asp 2", {"aspect/service/negative": 1.0},
                     {"aspect/food/absent": 0.8, "aspect/food/negative": 0.1,
                      "aspect/food/positive": 0.1, "aspect/service/absent": 0.1,
                      "aspect/service/negative": 0.85, "aspect/service/positive": 0.05}),
    ]
    return examples


def assert_close(actual, expected, path="metrics"):
    """Nested dicts equal, floats to 1e-8 (JSON keeps 10 digits)."""
    if isinstance(expected, dict):
        assert set(actual) == set(expected), path
        for key in expected:
            assert_close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, abs=1e-8), path
    else:
        assert actual == expected, path


def assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) > 5000, path
    image = matplotlib.image.imread(path)
    assert image.shape[0] >= 200 and image.shape[1] >= 200, (path, image.shape)
    assert image[..., :3].std() > 0.05, path  # not a blank canvas


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf8", newline="") as file:
        return list(csv.DictReader(file))


# --- calibration ---------------------------------------------------------------------------
def test_ece_of_a_calibrated_set_is_zero():
    probs, outcomes = [], []
    for p in np.linspace(0.05, 0.95, 10):  # one bin each; exact positive rate p
        n_pos = int(round(p * 100))
        probs += [p] * 100
        outcomes += [1] * n_pos + [0] * (100 - n_pos)
    assert expected_calibration_error(np.array(probs), np.array(outcomes)) == pytest.approx(
        0.0, abs=1e-9)


def test_ece_of_a_random_calibrated_set_is_small_and_overconfident_is_large():
    rng = np.random.default_rng(0)
    probs = rng.random(50_000)
    outcomes = rng.random(50_000) < probs
    assert expected_calibration_error(probs, outcomes) < 0.01
    confident = np.full(1000, 0.95)
    half_right = np.arange(1000) % 2
    assert expected_calibration_error(confident, half_right) == pytest.approx(0.45)


def test_reliability_bins_edges_and_counts():
    bins = reliability_bins(np.array([0.0, 0.05, 0.5, 0.99, 1.0]), np.array([0, 0, 1, 1, 1]),
                            n_bins=10)
    assert bins.counts.tolist() == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]
    assert bins.accuracy[9] == 1.0 and np.isnan(bins.accuracy[1])
    with pytest.raises(ValueError):
        reliability_bins(np.array([0.5]), np.array([1, 0]))


def test_calibration_pairs_per_head_kind():
    nlp = spacy.blank("en")
    examples = multihead_case(nlp)
    probs, correct = calibration_pairs(SENTIMENT, *head_arrays(examples, SENTIMENT))
    assert probs.tolist() == pytest.approx([0.99, 0.9, 0.98, 0.7, 0.95, 0.6])
    assert correct.tolist() == [1, 0, 1, 0, 1, 0]
    probs, positive = calibration_pairs(EMOTION, *head_arrays(examples, EMOTION))
    assert len(probs) == 4 and positive.sum() == 2  # per (doc, label)
    probs, correct = calibration_pairs(ASPECT, *head_arrays(examples, ASPECT))
    assert probs.tolist() == pytest.approx([0.7, 0.9, 0.8, 0.85])
    assert correct.tolist() == [0, 1, 1, 1]


# --- errors and confusion ------------------------------------------------------------------
def test_most_confident_errors_exclusive():
    nlp = spacy.blank("en")
    examples = exclusive_case(nlp)
    texts = [eg.reference.text for eg in examples]
    rows = most_confident_errors(SENTIMENT, texts, *head_arrays(examples, SENTIMENT), n=2)
    assert [(r.text, r.gold, r.predicted) for r in rows] == [
        ("doc b", "positive", "negative"), ("doc d", "positive", "negative")]
    assert [r.confidence for r in rows] == pytest.approx([0.9, 0.7])


def test_most_confident_errors_multilabel_and_grouped():
    nlp = spacy.blank("en")
    examples = multihead_case(nlp)
    emo = [eg for eg in examples if EMOTION.is_annotated(eg.reference.cats)]
    rows = most_confident_errors(EMOTION, [e.reference.text for e in emo],
                                 *head_arrays(emo, EMOTION), n=10)
    # joy threshold 0.4: 0.35 is a false negative (confidence 0.65); anger 0.8 a false positive
    assert [(r.text, r.item, r.gold, r.predicted) for r in rows] == [
        ("emo 1", "anger", "0", "1"), ("emo 1", "joy", "1", "0")]
    assert [r.confidence for r in rows] == pytest.approx([0.8, 0.65])
    asp = [eg for eg in examples if ASPECT.is_annotated(eg.reference.cats)]
    rows = most_confident_errors(ASPECT, [e.reference.text for e in asp],
                                 *head_arrays(asp, ASPECT), n=10)
    assert [(r.text, r.item, r.gold, r.predicted, round(r.confidence, 4)) for r in rows] == [
        ("asp 1", "food", "positive", "negative", 0.7)]


def test_confusion_matrices():
    nlp = spacy.blank("en")
    examples = multihead_case(nlp)
    labels, matrix = SENTIMENT.confusion(*head_arrays(examples, SENTIMENT))
    assert labels == ["negative", "positive"]
    assert matrix.tolist() == [[1, 1], [2, 2]]
    labels, matrix = ASPECT.confusion(*head_arrays(examples, ASPECT))
    assert labels == ["absent", "negative", "positive"]
    # (asp1 food: positive->negative), (asp1 service: absent->absent), (asp2 food: absent),
    # (asp2 service: negative->negative); pooled over the two groups
    assert matrix.tolist() == [[2, 0, 0], [0, 1, 0], [0, 1, 0]]
    labels, counts = EMOTION.confusion(*head_arrays(examples, EMOTION))
    assert counts.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1]]  # TP FN FP TN per label


def test_check_gold_lists_heads_and_found_keys():
    nlp = spacy.blank("en")
    doc = nlp.make_doc("x")
    doc.cats = {"topic/sports": 1.0}
    with pytest.raises(InputError, match=r"sentiment.*emotion.*topic/sports"):
        check_gold([doc], [SENTIMENT, EMOTION], "DATA")
    doc.cats = {"emotion/joy": 1.0}
    check_gold([doc], [SENTIMENT, EMOTION])


# --- the report from fake predictions ---------------------------------------------------------
def test_write_report_files_metrics_and_markdown(tmp_path):
    nlp = spacy.blank("en")
    examples = multihead_case(nlp)
    heads = [SENTIMENT, EMOTION, ASPECT]
    report = write_report(examples, heads, tmp_path, model_name="en_test", model_version="1.2.3",
                          data_path="dev.spacy", n_errors=2)
    metrics = srsly.read_json(tmp_path / "metrics.json")
    assert_close(metrics["scores"], score_heads(examples, heads))
    assert metrics["n_docs"] == len(examples)
    assert metrics["heads"]["sentiment"]["n"] == 6
    assert metrics["heads"]["emotion"]["n"] == 2
    assert metrics["heads"]["aspect"]["n"] == 2
    assert metrics["heads"]["emotion"]["thresholds"] == {"anger": 0.5, "joy": 0.4}
    probs, correct = calibration_pairs(SENTIMENT, *head_arrays(examples, SENTIMENT))
    assert metrics["heads"]["sentiment"]["ece"] == pytest.approx(
        expected_calibration_error(probs, correct))
    for head in ("sentiment", "emotion", "aspect"):
        for kind in ("confusion", "f1", "reliability"):
            assert_png(tmp_path / f"{head}_{kind}.png")
    rows = read_csv(tmp_path / "errors_sentiment.csv")
    assert [r["text"] for r in rows] == ["doc b", "doc d"]
    assert [float(r["confidence"]) for r in rows] == pytest.approx([0.9, 0.7])
    assert read_csv(tmp_path / "errors_emotion.csv")[0]["label"] == "anger"
    assert read_csv(tmp_path / "errors_aspect.csv")[0]["group"] == "food"
    md = (tmp_path / "report.md").read_text(encoding="utf8")
    assert md.startswith("# Evaluation report: en_test 1.2.3")
    assert "`dev.spacy` (10 docs)" in md
    assert "| head | kind | n | accuracy | macro-F1 | micro-F1 | ECE |" in md
    s = metrics["scores"]
    assert (f"| sentiment | exclusive | 6 | {s['senti_sentiment_acc']:.3f} | "
            f"{s['senti_sentiment_macro_f']:.3f} | {s['senti_sentiment_micro_f']:.3f} | ") in md
    assert "| positive | 0.667 | 0.500 | 0.571 | 4 |" in md  # per-label P/R/F1 + support
    assert "| joy | 0.400 | tuned |" in md and "| anger | 0.500 | default |" in md
    assert "| food | 1 | 1 |" in md  # per-group row of the grouped head
    for head in ("sentiment", "emotion", "aspect"):
        assert f"]({head}_confusion.png)" in md and f"]({head}_reliability.png)" in md
    assert "| doc b | positive | negative | 0.900 |" in md
    assert {p.name for p in report.files} >= {"metrics.json", "report.md", "errors_aspect.csv"}


def test_report_header_relative_paths_and_placeholder_name(tmp_path, monkeypatch):
    """A pipeline under the cwd is shown relative to it; spaCy's placeholder meta
    (what `spacy train` writes) is not presented as a package `en_pipeline 0.0.0`."""
    monkeypatch.chdir(tmp_path)
    model = tmp_path / "training" / "sst2" / "model-best"
    data = tmp_path / "corpus" / "test.spacy"
    placeholder = {"lang": "en", "name": "pipeline", "version": "0.0.0"}
    write_report(exclusive_case(spacy.blank("en")), [SENTIMENT], tmp_path / "out",
                 model_meta=placeholder, model_source=str(model), data_path=str(data))
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf8")
    metrics_text = (tmp_path / "out" / "metrics.json").read_text(encoding="utf8")
    for text in (md, metrics_text):
        assert str(tmp_path) not in text
        assert "en_pipeline" not in text
    assert md.startswith("# Evaluation report: training/sst2/model-best\n")
    assert "- model: `training/sst2/model-best` (unnamed pipeline: meta name 'pipeline', " \
        "version 0.0.0" in md
    assert "- data: `corpus/test.spacy` (6 docs)" in md
    assert srsly.read_json(tmp_path / "out" / "metrics.json")["model"] == {
        "name": "training/sst2/model-best", "version": "", "named": False,
        "source": "training/sst2/model-best", "meta_name": "pipeline", "meta_version": "0.0.0"}
    # the same through the legacy name/version arguments
    write_report(exclusive_case(spacy.blank("en")), [SENTIMENT], tmp_path / "legacy",
                 model_name="en_pipeline", model_version="0.0.0", model_source=str(model))
    assert "en_pipeline" not in (tmp_path / "legacy" / "report.md").read_text(encoding="utf8")
    # a named pipeline keeps its package name; a path outside the cwd is shown as given
    outside = tmp_path.parent / "elsewhere" / "model-best"
    named = {"lang": "en", "name": "senti_bench_sst2", "version": "0.1.0"}
    write_report(exclusive_case(spacy.blank("en")), [SENTIMENT], tmp_path / "named",
                 model_meta=named, model_source=str(outside), data_path="corpus/test.spacy")
    md = (tmp_path / "named" / "report.md").read_text(encoding="utf8")
    assert md.startswith("# Evaluation report: en_senti_bench_sst2 0.1.0\n")
    assert f"- model: `en_senti_bench_sst2` version 0.1.0, loaded from `{outside}`" in md


def test_report_of_a_head_without_gold(tmp_path):
    nlp = spacy.blank("en")
    report = write_report(exclusive_case(nlp), [SENTIMENT, EMOTION], tmp_path)
    assert report.metrics["heads"]["emotion"] == {"kind": "multilabel", "n": 0,
                                                  "n_unscored": 0, "ece": None,
                                                  "n_bins": None,
                                                  "thresholds": {"anger": 0.5, "joy": 0.4}}
    assert not (tmp_path / "emotion_confusion.png").exists()
    assert "No document in the data annotates this head" in (tmp_path / "report.md").read_text()


def test_gold_labels_the_model_lacks_are_not_scored_as_an_invented_label(tmp_path):
    """Issue 13, row 7: docs whose only gold label is unknown to the model were scored as if
    their gold were the head's first label (an all-zero gold row, argmax 0)."""
    nlp = spacy.blank("en")
    known = exclusive_case(nlp)
    neutral = [fake_example(nlp, f"neutral {i}", {"sentiment/neutral": 1.0},
                            {"sentiment/negative": 0.9, "sentiment/positive": 0.1})
               for i in range(4)]
    alone = score_heads(known, [SENTIMENT])
    mixed = score_heads(known + neutral, [SENTIMENT])
    assert mixed["senti_sentiment_acc"] == alone["senti_sentiment_acc"]
    assert mixed["senti_sentiment_macro_f"] == alone["senti_sentiment_macro_f"]
    gold, _ = head_arrays(known + neutral, SENTIMENT)
    assert len(gold) == len(known)
    report = write_report(known + neutral, [SENTIMENT], tmp_path)
    assert report.metrics["heads"]["sentiment"]["n"] == len(known)
    assert report.metrics["heads"]["sentiment"]["n_unscored"] == 4
    assert report.metrics["unknown_gold_keys"] == ["sentiment/neutral"]
    assert "4 documents left out" in (tmp_path / "report.md").read_text()
    # a multilabel doc with an unknown positive label is left out too; all-negative gold stays
    extra = [fake_example(nlp, "awe", {"emotion/awe": 1.0, "emotion/joy": 0.0},
                          {"emotion/joy": 0.2, "emotion/anger": 0.1}),
             fake_example(nlp, "calm", {"emotion/joy": 0.0, "emotion/anger": 0.0},
                          {"emotion/joy": 0.2, "emotion/anger": 0.1})]
    gold, _ = head_arrays(extra, EMOTION)
    assert gold.tolist() == [[0.0, 0.0]]


# --- the CLI on a real tiny pipeline ----------------------------------------------------------
@pytest.fixture(scope="module")
def model_and_data(tiny_bert, tmp_path_factory):
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = HEADS_CFG
    nlp = nlp_from_config(config)
    train(nlp, make_examples(nlp, ROWS), n_iter=8, lr=3e-4)
    root = tmp_path_factory.mktemp("report_cli")
    nlp.to_disk(root / "model")
    write_docbin(root / "dev.spacy", ROWS, nlp)
    return root


def test_evaluate_cli_writes_report_matching_score_heads(model_and_data):
    root = model_and_data
    out = root / "report"
    result = CliRunner().invoke(app, ["evaluate", str(root / "model"), str(root / "dev.spacy"),
                                      "--output", str(out), "--n-errors", "5"])
    assert result.exit_code == 0, result.output
    assert "Report written" in result.output
    nlp = spacy.load(root / "model")
    docs = list(DocBin().from_disk(root / "dev.spacy").get_docs(nlp.vocab))
    examples = predict_examples(nlp, docs)
    heads = nlp.get_pipe("senti_textcat").heads
    metrics = srsly.read_json(out / "metrics.json")
    assert_close(metrics["scores"], score_heads(examples, heads))
    assert metrics["n_docs"] == len(ROWS)
    # `spacy train`-style placeholder meta: named by its source, never "en_pipeline 0.0.0"
    assert metrics["model"]["name"] == metrics["model"]["source"] == str(root / "model")
    assert metrics["model"]["named"] is False and metrics["model"]["meta_name"] == "pipeline"
    for head in ("sentiment", "emotion", "aspect"):
        assert_png(out / f"{head}_reliability.png")
        assert len(read_csv(out / f"errors_{head}.csv")) <= 5
    md = (out / "report.md").read_text(encoding="utf8")
    assert "| emotion | multilabel | 4 |" in md and "| aspect | grouped | 3 |" in md
    assert "en_pipeline" not in md and "(unnamed pipeline: meta name 'pipeline'" in md


def test_evaluate_cli_bad_inputs(model_and_data, tmp_path):
    root = model_and_data
    runner = CliRunner()
    missing = tmp_path / "no_model"
    result = runner.invoke(app, ["evaluate", str(missing), str(root / "dev.spacy"),
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "MODEL" in result.output and str(missing) in result.output
    result = runner.invoke(app, ["evaluate", str(root / "model"), str(tmp_path / "nope.spacy"),
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "DATA" in result.output and "nope.spacy" in result.output
    write_docbin(tmp_path / "nogold.spacy", [("no gold here", {"topic/sports": 1.0})])
    result = runner.invoke(app, ["evaluate", str(root / "model"), str(tmp_path / "nogold.spacy"),
                                 "--output", str(tmp_path / "out")])
    assert result.exit_code == 1
    assert "no gold annotations" in result.output
    assert "sentiment" in result.output and "topic/sports" in result.output
    assert not (tmp_path / "out").exists()
