"""Head kinds as classes: dispatch, layout, gold rows, activation, loss, decoding, scoring, and
spaCy's ``cats_*`` keys as ``python -m spacy evaluate`` prints them."""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import numpy as np
import pytest
import spacy
from helpers import load_config, make_examples, nlp_from_config, train, write_docbin
from spacy.training import Example

from spacy_senti.errors import ConfigError
from spacy_senti.evaluation.scorer import CATS_SCORE_DESC, score_heads
from spacy_senti.extensions import register_head_extensions
from spacy_senti.heads import (
    HEAD_KINDS,
    ExclusiveHead,
    GroupedHead,
    Head,
    HeadSpec,
    MultilabelHead,
    heads_from_config,
)
from spacy_senti.models.losses import sigmoid_loss

EXCL = ExclusiveHead("sentiment", labels=["negative", "neutral", "positive"])
MULTI = MultilabelHead("emotion", labels=["anger", "joy"], thresholds={"joy": 0.4})
GROUP = GroupedHead("aspect", labels=["negative", "positive"], groups=["food", "service"])


# --- construction ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind,cls", [("exclusive", ExclusiveHead),
                                      ("multilabel", MultilabelHead),
                                      ("grouped", GroupedHead)])
def test_kind_dispatch(kind, cls):
    assert HEAD_KINDS[kind] is cls and cls.kind == kind
    assert type(Head.from_config("h", {"kind": kind})) is cls
    assert type(HeadSpec("h", kind, ["a", "b"])) is cls  # release 0.1's positional form
    assert type(HeadSpec(name="h", kind=kind)) is cls
    assert type(cls("h")) is cls and type(cls("h", kind)) is cls
    assert HeadSpec is Head


def test_construction_errors():
    with pytest.raises(ConfigError, match="unknown kind 'bogus'.*exclusive, multilabel"):
        Head.from_config("h", {"kind": "bogus"})
    with pytest.raises(ConfigError, match="unknown kind None"):
        Head.from_config("h", {})
    with pytest.raises(ConfigError, match="is a multilabel head, not 'exclusive'"):
        MultilabelHead.from_config("h", {"kind": "exclusive"})
    with pytest.raises(ConfigError, match=r"unknown setting\(s\) \['colour'\]"):
        Head.from_config("h", {"kind": "exclusive", "colour": "red"})
    with pytest.raises(ConfigError, match="Invalid head name"):
        Head.from_config("a/b", {"kind": "exclusive"})
    with pytest.raises(ConfigError, match="only grouped heads have groups"):
        Head.from_config("h", {"kind": "multilabel", "groups": ["x"]})
    with pytest.raises(ConfigError, match="unknown loss"):
        ExclusiveHead("h", loss="hinge")
    with pytest.raises(ConfigError, match="class_weights must be"):
        ExclusiveHead("h", class_weights="inverse")
    with pytest.raises(ConfigError, match="label_smoothing"):
        ExclusiveHead("h", label_smoothing=1.0)


@pytest.mark.parametrize("head", [EXCL, MULTI, GROUP], ids=lambda h: h.kind)
def test_to_config_round_trip_keeps_kind(head):
    cfg = head.to_config()
    assert cfg["kind"] == head.kind
    assert set(cfg) == {"kind", "labels", "groups", "loss", "focal_gamma", "class_weights",
                        "weight", "label_smoothing", "threshold", "thresholds"}
    again = Head.from_config(head.name, cfg)
    assert again == head and type(again) is type(head)
    assert heads_from_config({head.name: cfg}) == [head]


def test_grouped_strips_absent_and_thresholds_survive_json_floats():
    head = Head.from_config("aspect", {"kind": "grouped", "labels": ["absent", "pos"]})
    assert head.labels == ["pos"] and head.polarities == ["absent", "pos"]
    assert MultilabelHead("e", thresholds={"a": 0.30000000000000004}).thresholds == {"a": 0.3}


def test_a_new_kind_is_one_class_and_one_registry_entry(monkeypatch):
    class BinaryHead(MultilabelHead):
        kind: ClassVar[str] = "binary"

    monkeypatch.setitem(HEAD_KINDS, "binary", BinaryHead)
    head = Head.from_config("spam", {"kind": "binary", "labels": ["spam"]})
    assert type(head) is BinaryHead and head.to_config()["kind"] == "binary"


# --- layout and gold --------------------------------------------------------------------------
def test_keys_outputs_and_label_names():
    assert EXCL.keys() == ["sentiment/negative", "sentiment/neutral", "sentiment/positive"]
    assert EXCL.n_outputs == 3 and EXCL.label_names == EXCL.labels
    assert MULTI.keys() == ["emotion/anger", "emotion/joy"] and MULTI.n_outputs == 2
    assert GROUP.keys() == ["aspect/food/absent", "aspect/food/negative", "aspect/food/positive",
                            "aspect/service/absent", "aspect/service/negative",
                            "aspect/service/positive"]
    assert GROUP.n_outputs == 6
    assert GROUP.label_names == ["food/negative", "food/positive", "service/negative",
                                 "service/positive"]


def test_gold_rows_and_annotation_mask():
    assert not EXCL.is_annotated({"emotion/joy": 1.0})
    assert EXCL.is_annotated({"sentiment/positive": 1.0})
    assert EXCL.gold_row({"sentiment/positive": 1.0}) == [0.0, 0.0, 1.0]
    assert MULTI.gold_row({"emotion/joy": 1.0}) == [0.0, 1.0]
    # a group without a polarity key is absent
    assert GROUP.gold_row({"aspect/service/negative": 1.0}) == [1, 0, 0, 0, 1, 0]
    assert GROUP.gold_cats(["service/negative"]) == dict(
        zip(GROUP.keys(), [1.0, 0.0, 0.0, 0.0, 1.0, 0.0], strict=True))
    assert EXCL.gold_cats(["neutral"]) == {"sentiment/negative": 0.0, "sentiment/neutral": 1.0,
                                           "sentiment/positive": 0.0}


def test_add_key_and_check_ready():
    head = ExclusiveHead("s")
    with pytest.raises(ConfigError, match="has no labels"):
        head.check_ready()
    assert head.add_key("s/pos") and not head.add_key("s/pos")
    with pytest.raises(ConfigError, match="at least two labels"):
        head.check_ready()
    with pytest.raises(ConfigError, match="not among the labels configured"):
        head.add_key("s/neg", labels_fixed=True)
    grouped = GroupedHead("a")
    assert grouped.add_key("a/food/absent") and grouped.groups == ["food"]
    assert grouped.labels == []  # absent is no polarity
    assert grouped.add_key("a/food/neg") and grouped.labels == ["neg"]
    with pytest.raises(ConfigError, match="has no group"):
        grouped.add_key("a/neg")
    with pytest.raises(ConfigError, match=r"\['food'\]"):
        grouped.add_key("a/price/neg", groups_fixed=True)
    grouped.check_ready()
    with pytest.raises(ConfigError, match="has no groups"):
        GroupedHead("b", labels=["neg"]).check_ready()


# --- activation, loss, priors ---------------------------------------------------------------
def test_activation_in_numpy():
    rng = np.random.default_rng(0)
    probs = EXCL.activate(np, rng.normal(size=(4, 3)))
    assert np.allclose(probs.sum(axis=1), 1.0)
    logits = rng.normal(size=(4, 2))
    assert np.allclose(MULTI.activate(np, logits), 1.0 / (1.0 + np.exp(-logits)))
    probs = GROUP.activate(np, rng.normal(size=(4, 6)))
    assert probs.shape == (4, 6)
    assert np.allclose(probs.reshape(4, 2, 3).sum(axis=2), 1.0)
    assert ((probs > 0) & (probs < 1)).all()


def test_losses_and_gradients_have_the_block_shape():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 6)).astype("f")
    targets = np.asarray([GROUP.gold_row({"aspect/food/positive": 1.0})] * 3, dtype="f")
    loss, grad = GROUP.compute_loss(np, logits, targets)
    assert loss > 0 and grad.shape == logits.shape
    weights = np.asarray([2.0, 1.0], dtype="f")
    logits, targets = logits[:, :2], np.asarray([[1, 0], [0, 1], [1, 1]], dtype="f")
    assert MULTI.compute_loss(np, logits, targets, weights)[0] == pytest.approx(
        sigmoid_loss(np, logits, targets, pos_weights=weights)[0])
    focal = MultilabelHead("e", labels=["a", "b"], loss="focal")
    assert focal.compute_loss(np, logits, targets)[0] < MULTI.compute_loss(np, logits, targets)[0]
    assert focal.soft_target_loss(np, logits, targets)[0] == pytest.approx(
        MULTI.compute_loss(np, logits, targets)[0])


def test_class_weights_and_prior_logits():
    gold = [[1, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert EXCL.compute_class_weights(gold) == pytest.approx([4 / 9, 4 / 3, 4 / 3])
    prior = EXCL.activate(np, EXCL.prior_logits(gold)[None, :])[0]
    assert prior == pytest.approx([3.5 / 5.5, 0.5 / 5.5, 1.5 / 5.5])
    multi_gold = [[1, 0]] + [[0, 0]] * 99
    assert MULTI.compute_class_weights(multi_gold) == pytest.approx([50.0, 50.0])  # clipped
    explicit = ExclusiveHead("s", labels=["a", "b"], class_weights={"a": 2.0})
    assert explicit.compute_class_weights([]) == [2.0, 1.0]
    with pytest.raises(ConfigError, match="unknown labels"):
        ExclusiveHead("s", labels=["a"], class_weights={"z": 2.0}).compute_class_weights([])
    assert GROUP.prior_logits([[1, 0, 0, 0, 1, 0]]).shape == (6,)


# --- decoding and doc._ ---------------------------------------------------------------------
def test_decode_predicted_labels_and_extensions():
    assert EXCL.decode([0.1, 0.2, 0.7]) == {
        "label": "positive", "scores": {"negative": 0.1, "neutral": 0.2, "positive": 0.7}}
    assert MULTI.decode([0.45, 0.4])["labels"] == ["joy"]  # joy's threshold is 0.4
    decoded = GROUP.decode([0.1, 0.8, 0.1, 0.9, 0.05, 0.05])
    assert decoded["aspects"] == {"food": "negative"}
    assert decoded["scores"]["service"]["absent"] == 0.9
    assert GROUP.predicted_labels([0.1, 0.8, 0.1, 0.9, 0.05, 0.05]) == ["food/negative"]
    assert MULTI.predicted_labels([0.1, 0.1]) == []
    assert EXCL.extension_names == ("sentiment", "sentiment_scores")
    assert MULTI.extension_names == ("emotions", "emotion_labels")
    assert GROUP.extension_names == ("aspects", "aspect_scores")
    assert (EXCL.value_types, MULTI.value_types) == (("label", "mapping"), ("mapping", "labels"))
    doc = spacy.blank("en")("good food")
    for head, probs in [(EXCL, [0.1, 0.2, 0.7]), (MULTI, [0.9, 0.1]),
                        (GROUP, [0.1, 0.1, 0.8, 0.9, 0.05, 0.05])]:
        register_head_extensions(head)
        head.set_extensions(doc, head.decode(probs))
    assert doc._.sentiment == "positive" and doc._.sentiment_scores["positive"] == 0.7
    assert doc._.emotions == {"anger": 0.9, "joy": 0.1} and doc._.emotion_labels == ["anger"]
    assert doc._.aspects == {"food": "positive"} and set(doc._.aspect_scores) == {"food",
                                                                                  "service"}


def test_distributions_and_thresholds_capability():
    probs = np.asarray([[0.2, 0.9]])
    assert np.allclose(MULTI.distributions(probs), [[[0.2, 0.8], [0.9, 0.1]]])
    assert GROUP.distributions(np.zeros((2, 6))).shape == (2, 2, 3)
    assert EXCL.distributions(np.zeros((2, 3))).shape == (2, 1, 3)
    assert [h.has_thresholds for h in (EXCL, MULTI, GROUP)] == [False, True, False]
    with pytest.raises(ConfigError, match="only multilabel heads"):
        ExclusiveHead("s", labels=["a", "b"]).set_thresholds({"a": 0.3})
    head = MultilabelHead("e", labels=["a"])
    head.set_thresholds({"a": 0.25})
    assert head.label_threshold("a") == 0.25
    with pytest.raises(ConfigError, match="Unknown labels"):
        head.set_thresholds({"b": 0.3})


# --- scoring ------------------------------------------------------------------------------
def _example(nlp, text: str, gold: dict, pred: dict) -> Example:
    reference, predicted = nlp.make_doc(text), nlp.make_doc(text)
    reference.cats, predicted.cats = dict(gold), dict(pred)
    return Example(predicted, reference)


def test_head_scores_and_support():
    gold = np.asarray([[0, 0, 1], [1, 0, 0], [0, 1, 0]], dtype="f")
    pred = np.asarray([[0.1, 0.1, 0.8], [0.1, 0.1, 0.8], [0.2, 0.6, 0.2]], dtype="f")
    scores = EXCL.score(gold, pred)
    assert scores["acc"] == pytest.approx(2 / 3)
    assert scores["f_per_type"]["positive"] == pytest.approx({"p": 0.5, "r": 1.0, "f": 2 / 3})
    assert EXCL.support(gold) == {"negative": 1, "neutral": 1, "positive": 1}
    gold = np.asarray([[1, 0, 0, 0, 0, 1]], dtype="f")
    pred = np.asarray([[0.1, 0.2, 0.7, 0.1, 0.2, 0.7]], dtype="f")
    scores = GROUP.score(gold, pred)
    assert scores["detect_micro_f"] == pytest.approx(2 / 3)
    assert scores["acc"] == 1.0
    assert GROUP.support(gold) == {"food/negative": 0, "food/positive": 0,
                                   "service/negative": 0, "service/positive": 1}


def test_score_heads_returns_spacy_textcat_keys():
    nlp = spacy.blank("en")
    examples = [
        _example(nlp, "a", {"sentiment/positive": 1.0}, {"sentiment/negative": 0.1,
                                                         "sentiment/neutral": 0.1,
                                                         "sentiment/positive": 0.8}),
        _example(nlp, "b", {"sentiment/negative": 1.0}, {"sentiment/negative": 0.3,
                                                         "sentiment/neutral": 0.1,
                                                         "sentiment/positive": 0.6}),
        _example(nlp, "c", {"emotion/joy": 1.0}, {"emotion/anger": 0.6, "emotion/joy": 0.7}),
        _example(nlp, "d", {"emotion/anger": 0.0, "emotion/joy": 0.0},
                 {"emotion/anger": 0.2, "emotion/joy": 0.1}),
    ]
    scores = score_heads(examples, [EXCL, MULTI, GROUP])
    assert scores["cats_score"] == scores["senti_macro_f"]
    assert scores["cats_score_desc"] == CATS_SCORE_DESC
    heads = ("sentiment", "emotion")
    assert scores["cats_macro_f"] == pytest.approx(
        np.mean([scores[f"senti_{h}_macro_f"] for h in heads]))
    # sentiment: 1 TP, 1 FP (positive), 1 FN (negative); emotion: 1 TP (joy), 1 FP (anger)
    assert scores["cats_micro_p"] == pytest.approx(2 / 4)
    assert scores["cats_micro_r"] == pytest.approx(2 / 3)
    assert set(scores["cats_f_per_type"]) == {"sentiment/negative", "sentiment/neutral",
                                              "sentiment/positive", "emotion/anger",
                                              "emotion/joy"}
    assert scores["cats_f_per_type"]["emotion/joy"] == {"p": 1.0, "r": 1.0, "f": 1.0}
    auc = scores["cats_auc_per_type"]
    assert auc["sentiment/positive"] == 1.0 and auc["sentiment/neutral"] is None
    assert auc["emotion/joy"] == 1.0 and auc["emotion/anger"] is None  # one gold class only
    assert scores["cats_macro_auc"] == pytest.approx(1.0)
    empty = score_heads([], [EXCL])
    assert empty["cats_score"] is None and empty["cats_f_per_type"] == {}


def test_spacy_evaluate_prints_textcat_scores(tiny_bert, tmp_path):
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = {"sentiment": {"kind": "exclusive"},
                                                      "emotion": {"kind": "multilabel"}}
    nlp = nlp_from_config(config)
    rows = [("i loved it", {"sentiment/positive": 1.0, "sentiment/negative": 0.0,
                            "emotion/joy": 1.0, "emotion/anger": 0.0}),
            ("i hated it", {"sentiment/positive": 0.0, "sentiment/negative": 1.0,
                            "emotion/joy": 0.0, "emotion/anger": 1.0})]
    train(nlp, make_examples(nlp, rows), n_iter=2)
    nlp.to_disk(tmp_path / "model")
    write_docbin(tmp_path / "dev.spacy", rows, nlp)
    result = subprocess.run(
        [sys.executable, "-m", "spacy", "evaluate", str(tmp_path / "model"),
         str(tmp_path / "dev.spacy")],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"TEXTCAT ({CATS_SCORE_DESC})" in out
    assert "Textcat F (per label)" in out and "Textcat ROC AUC (per label)" in out
    for label in ("sentiment/positive", "sentiment/negative", "emotion/joy", "emotion/anger"):
        assert label in out
