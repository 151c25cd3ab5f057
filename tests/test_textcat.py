"""The textcat battery for senti_textcat: overfit every head kind, IO, pipe == call, masks."""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from helpers import load_config, make_examples, nlp_from_config, train
from spacy.training import Example
from thinc.api import Config

from spacy_senti.errors import ConfigError

# The tiny test BERT is random, not pretrained: it needs a higher rate than fine-tuning.
LR = 2e-3

SENTIMENT_ROWS = [
    ("i loved this film", "positive"),
    ("the plot was awful", "negative"),
    ("great food and great staff", "positive"),
    ("i hate this boring movie", "negative"),
]
EMOTION_ROWS = [
    ("i am so happy and i love it", ["joy", "love"]),
    ("this makes me angry", ["anger"]),
    ("so sad and angry", ["anger", "sadness"]),
    ("what a wonderful fun day", ["joy"]),
]
ASPECT_ROWS = [
    ("the food was great", {"food": "positive"}),
    ("the service was awful", {"service": "negative"}),
    ("great food but awful service", {"food": "positive", "service": "negative"}),
    ("the price was fine", {"price": "neutral"}),
]


def exclusive_cats(label: str, labels=("negative", "positive"), head="sentiment"):
    return {f"{head}/{lab}": float(lab == label) for lab in labels}


def multilabel_cats(chosen, labels=("anger", "joy", "love", "sadness"), head="emotion"):
    return {f"{head}/{lab}": float(lab in chosen) for lab in labels}


def grouped_cats(aspects, groups=("food", "price", "service"), head="aspect"):
    cats = {}
    for g in groups:
        for p in ("absent", "negative", "neutral", "positive"):
            chosen = aspects.get(g, "absent")
            cats[f"{head}/{g}/{p}"] = float(p == chosen)
    return cats


def heads_config(heads: dict) -> Config:
    return Config({"components": {"senti_textcat": {"heads": heads}}})


def build(tiny_bert, heads: dict, **overrides):
    config = load_config("sentiment", tiny_bert, **overrides)
    config["components"]["senti_textcat"]["heads"] = heads
    return nlp_from_config(config)


CASES = {
    "exclusive": (
        {"sentiment": {"kind": "exclusive"}},
        [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS],
    ),
    "multilabel": (
        {"emotion": {"kind": "multilabel"}},
        [(t, multilabel_cats(labs)) for t, labs in EMOTION_ROWS],
    ),
    "grouped": (
        {"aspect": {"kind": "grouped"}},
        [(t, grouped_cats(asp)) for t, asp in ASPECT_ROWS],
    ),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_overfitting_IO(tiny_bert, tmp_path, kind):
    heads, rows = CASES[kind]
    nlp = build(tiny_bert, heads)
    examples = make_examples(nlp, rows)
    losses = train(nlp, examples, n_iter=80, lr=LR)
    assert losses[-1] < 0.05 < losses[0]

    texts = [t for t, _ in rows]
    docs = list(nlp.pipe(texts))
    for doc, (_, gold) in zip(docs, rows):
        for key, value in gold.items():
            assert abs(doc.cats[key] - value) < 0.5, (doc.text, key, doc.cats[key])
    # typed views
    if kind == "exclusive":
        assert [d._.sentiment for d in docs] == [lab for _, lab in SENTIMENT_ROWS]
        assert abs(sum(docs[0]._.sentiment_scores.values()) - 1.0) < 1e-5
    elif kind == "multilabel":
        assert [sorted(d._.emotion_labels) for d in docs] == [sorted(x) for _, x in EMOTION_ROWS]
        assert set(docs[0]._.emotions) == {"anger", "joy", "love", "sadness"}
    else:
        assert [d._.aspects for d in docs] == [asp for _, asp in ASPECT_ROWS]
        assert set(docs[0]._.aspect_scores["food"]) == {"absent", "negative", "neutral", "positive"}

    # save, reload, identical scores
    nlp.to_disk(tmp_path / "model")
    nlp2 = spacy.load(tmp_path / "model")
    docs2 = list(nlp2.pipe(texts))
    for d1, d2 in zip(docs, docs2):
        assert d1.cats.keys() == d2.cats.keys()
        np.testing.assert_allclose(list(d1.cats.values()), list(d2.cats.values()), atol=1e-5)

    # to_bytes / from_bytes
    nlp3 = nlp_from_config(nlp.config)
    nlp3.from_bytes(nlp.to_bytes())
    np.testing.assert_allclose(
        list(nlp3(texts[0]).cats.values()), list(docs[0].cats.values()), atol=1e-5
    )

    # nlp.pipe == nlp()
    for text, doc in zip(texts, docs):
        np.testing.assert_allclose(list(nlp(text).cats.values()), list(doc.cats.values()),
                                   atol=1e-5)

    # nlp.evaluate keys
    scores = nlp.evaluate(examples)
    head = next(iter(heads))
    for key in ("acc", "macro_f", "micro_f", "macro_p", "macro_r", "f_per_type"):
        assert f"senti_{head}_{key}" in scores
    assert scores["senti_macro_f"] == pytest.approx(1.0)


def test_multitask_masked_heads(tiny_bert):
    """Docs from different corpora annotate different heads; missing heads are masked."""
    heads = {"sentiment": {"kind": "exclusive"}, "emotion": {"kind": "multilabel"}}
    nlp = build(tiny_bert, heads)
    rows = [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS]
    rows += [(t, multilabel_cats(labs)) for t, labs in EMOTION_ROWS]
    examples = make_examples(nlp, rows)
    losses = train(nlp, examples, n_iter=80, lr=LR)
    assert losses[-1] < 0.05

    textcat = nlp.get_pipe("senti_textcat")
    # The emotion head's loss ignores sentiment-only docs: their emotion gradient is zero.
    docs = [eg.predicted for eg in examples]
    logits = textcat.model.predict(docs)
    _, d_logits = textcat.get_loss(examples, logits)
    slices = textcat.head_slices()
    assert np.all(d_logits[:4, slices["emotion"]] == 0)
    assert np.all(d_logits[4:, slices["sentiment"]] == 0)
    assert np.any(d_logits[:4, slices["sentiment"]] != 0)

    # Both heads still predicted for every doc, and scoring counts only annotated docs.
    doc = nlp("i loved this film")
    assert doc._.sentiment == "positive" and doc._.emotions is not None
    scores = nlp.evaluate(examples)
    assert scores["senti_sentiment_acc"] == 1.0
    assert scores["senti_emotion_macro_f"] == pytest.approx(1.0)


def test_masked_head_gets_no_gradient_even_untrained(tiny_bert):
    heads = {"sentiment": {"kind": "exclusive"}, "aspect": {"kind": "grouped"}}
    nlp = build(tiny_bert, heads)
    rows = [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS]
    rows += [(t, grouped_cats(asp)) for t, asp in ASPECT_ROWS]
    examples = make_examples(nlp, rows)
    nlp.initialize(get_examples=lambda: examples)
    textcat = nlp.get_pipe("senti_textcat")
    only_sentiment = examples[:4]
    logits = textcat.model.predict([eg.predicted for eg in only_sentiment])
    loss, d_logits = textcat.get_loss(only_sentiment, logits)
    assert loss > 0
    assert np.all(d_logits[:, textcat.head_slices()["aspect"]] == 0)


def test_thresholds_roundtrip(tiny_bert, tmp_path):
    heads, rows = CASES["multilabel"]
    nlp = build(tiny_bert, heads)
    examples = make_examples(nlp, rows)
    nlp.initialize(get_examples=lambda: examples)
    textcat = nlp.get_pipe("senti_textcat")
    textcat.set_thresholds("emotion", {"joy": 0.01, "anger": 0.99})
    doc = nlp("so happy")
    assert "joy" in doc._.emotion_labels and "anger" not in doc._.emotion_labels
    nlp.to_disk(tmp_path / "m")
    reloaded = spacy.load(tmp_path / "m").get_pipe("senti_textcat").get_head("emotion")
    assert reloaded.thresholds == {"joy": 0.01, "anger": 0.99}
    assert reloaded.label_threshold("love") == 0.5
    with pytest.raises(ConfigError, match="Unknown labels"):
        textcat.set_thresholds("emotion", {"fear": 0.3})


def test_labels_inferred_sorted_and_configured_order_kept(tiny_bert):
    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive"}})
    examples = make_examples(nlp, [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS])
    nlp.initialize(get_examples=lambda: examples)
    assert nlp.get_pipe("senti_textcat").labels == ("sentiment/negative", "sentiment/positive")

    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive", "labels": ["positive", "negative"]}})
    nlp.initialize(get_examples=lambda: make_examples(
        nlp, [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS]))
    assert nlp.get_pipe("senti_textcat").labels == ("sentiment/positive", "sentiment/negative")


def test_grouped_labels_inferred(tiny_bert):
    heads, rows = CASES["grouped"]
    nlp = build(tiny_bert, heads)
    nlp.initialize(get_examples=lambda: make_examples(nlp, rows))
    head = nlp.get_pipe("senti_textcat").get_head("aspect")
    assert head.groups == ["food", "price", "service"]
    assert head.polarities == ["absent", "negative", "neutral", "positive"]
    assert len(nlp.get_pipe("senti_textcat").labels) == 12


@pytest.mark.parametrize("pooling", ["mean", "cls", "attention"])
def test_pooling_variants_learn(tiny_bert, pooling):
    heads, rows = CASES["exclusive"]
    nlp = build(tiny_bert, heads, **{"components.senti_textcat.model.pooling": pooling})
    losses = train(nlp, make_examples(nlp, rows), n_iter=40, lr=LR)
    assert losses[-1] < losses[0] / 5


def test_l2_normalize_layer_unit_rows_and_gradient():
    """Rows of unit length; backprop matches central finite differences."""
    from thinc.api import NumpyOps

    from spacy_senti.models.pooling import l2_normalize

    layer = l2_normalize()
    layer.ops = NumpyOps()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3, 5)).astype("float64") * [[1.0], [10.0], [0.1]]
    Y, backprop = layer(X, is_train=True)
    assert np.allclose(np.linalg.norm(Y, axis=1), 1.0)
    assert np.allclose(Y * np.linalg.norm(X, axis=1, keepdims=True), X)
    dY = rng.normal(size=Y.shape)
    dX = backprop(dY)
    numeric = np.zeros_like(X)
    for i, j in np.ndindex(*X.shape):
        step = np.zeros_like(X)
        step[i, j] = 1e-6
        plus, _ = layer(X + step, is_train=False)
        minus, _ = layer(X - step, is_train=False)
        numeric[i, j] = ((plus - minus) * dY).sum() / 2e-6
    assert np.allclose(dX, numeric, atol=1e-6)


def test_normalize_gives_unit_pooled_vectors_and_learns(tiny_bert):
    """normalize = true: the pooled features the heads see have unit length (as SetFit's
    head sees them) and the head still learns; the default leaves them unscaled."""
    from spacy_senti.active.select import pooled_embeddings

    heads, rows = CASES["exclusive"]
    texts = [text for text, _ in rows]
    plain = build(tiny_bert, heads)
    plain.initialize(lambda: make_examples(plain, rows))
    norms = np.linalg.norm(pooled_embeddings(plain.get_pipe("senti_textcat"),
                                             list(plain.pipe(texts))), axis=1)
    assert not np.allclose(norms, 1.0)
    nlp = build(tiny_bert, heads, **{"components.senti_textcat.model.normalize": True})
    losses = train(nlp, make_examples(nlp, rows), n_iter=60, lr=LR)
    assert losses[-1] < losses[0] / 3
    pooled = pooled_embeddings(nlp.get_pipe("senti_textcat"), list(nlp.pipe(texts)))
    assert np.allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)


def test_token_level_listener_and_focal_and_weights(tiny_bert):
    """spacy-transformers' own listener works too, with focal loss and balanced weights."""
    heads = {"sentiment": {"kind": "exclusive", "loss": "focal", "focal_gamma": 2.0,
                           "class_weights": "balanced", "label_smoothing": 0.1}}
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = heads
    config["components"]["senti_textcat"]["model"]["tok2vec"] = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0,
        "pooling": {"@layers": "reduce_mean.v1"},
        "upstream": "*",
    }
    nlp = nlp_from_config(config)
    rows = CASES["exclusive"][1] + [("really bad", exclusive_cats("negative"))]
    losses = train(nlp, make_examples(nlp, rows), n_iter=50, lr=LR)
    assert losses[-1] < losses[0] / 2  # smoothing keeps a floor under the loss
    assert [d._.sentiment for d in nlp.pipe([t for t, _ in rows])] == [
        max(c, key=c.get).split("/")[1] for _, c in rows
    ]
    weights = nlp.get_pipe("senti_textcat").cfg["class_weight_values"]["sentiment"]
    # 3 negatives, 2 positives -> balanced weights n / (k * count)
    assert weights == pytest.approx([5 / 6, 5 / 4])


def test_empty_doc_predicts_nothing_and_training_rejects_it(tiny_bert):
    heads, rows = CASES["exclusive"]
    nlp = build(tiny_bert, heads)
    examples = make_examples(nlp, rows)
    nlp.initialize(get_examples=lambda: examples)
    docs = list(nlp.pipe(["", "i loved this film"]))
    assert docs[0].cats == {} and docs[0]._.sentiment is None
    assert docs[1]._.sentiment in ("positive", "negative")
    bad = [Example.from_dict(nlp.make_doc(""), {"cats": exclusive_cats("positive")})]
    with pytest.raises(ConfigError, match="no text"):
        nlp.update(bad)


def test_clear_errors(tiny_bert):
    with pytest.raises(ConfigError, match="unknown kind 'exclusve'"):
        build(tiny_bert, {"sentiment": {"kind": "exclusve"}})
    with pytest.raises(ConfigError, match="unknown setting"):
        build(tiny_bert, {"sentiment": {"kind": "exclusive", "lables": ["a"]}})
    with pytest.raises(ConfigError, match="unknown loss"):
        build(tiny_bert, {"sentiment": {"kind": "exclusive", "loss": "hinge"}})

    # a label in the data that the config does not list
    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive", "labels": ["negative", "positive"]}})
    rows = [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS]
    rows.append(("meh", {"sentiment/mixed": 1.0}))
    with pytest.raises(ConfigError, match="'sentiment/mixed'.*not among the labels"):
        nlp.initialize(get_examples=lambda: make_examples(nlp, rows))

    # a key naming no head
    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive"}})
    with pytest.raises(ConfigError, match="names no head"):
        nlp.initialize(get_examples=lambda: make_examples(nlp, [("x y", {"emotion/joy": 1.0})]))

    # a grouped label without a group
    nlp = build(tiny_bert, {"aspect": {"kind": "grouped"}})
    with pytest.raises(ConfigError, match="has no group"):
        nlp.initialize(get_examples=lambda: make_examples(nlp, [("x y", {"aspect/positive": 1.0})]))

    # a head with no labels at all
    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive"}, "emotion": {"kind": "multilabel"}})
    with pytest.raises(ConfigError, match="Head 'emotion' has no labels"):
        nlp.initialize(get_examples=lambda: make_examples(
            nlp, [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS]))


def test_add_pipe_default_and_labels(tiny_bert):
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("senti_textcat")
    assert [h.name for h in textcat.heads] == ["sentiment"]
    textcat.add_label("sentiment/positive")
    textcat.add_label("sentiment/negative")
    assert textcat.labels == ("sentiment/positive", "sentiment/negative")
    with pytest.raises(ConfigError, match="names no head"):
        textcat.add_label("topic/sports")


def test_grouped_configured_polarities_infer_groups(tiny_bert):
    heads = {"aspect": {"kind": "grouped", "labels": ["positive", "negative", "neutral"]}}
    nlp = build(tiny_bert, heads)
    rows = CASES["grouped"][1]
    nlp.initialize(get_examples=lambda: make_examples(nlp, rows))
    head = nlp.get_pipe("senti_textcat").get_head("aspect")
    assert head.groups == ["food", "price", "service"]
    assert head.labels == ["positive", "negative", "neutral"]
    # a polarity outside the configured ones is an error
    nlp = build(tiny_bert, heads)
    bad = rows + [("so so", {"aspect/food/conflict": 1.0})]
    with pytest.raises(ConfigError, match="not among the labels"):
        nlp.initialize(get_examples=lambda: make_examples(nlp, bad))


def test_heads_start_at_label_priors(tiny_bert):
    """Before any update, multilabel probabilities sit at each label's training frequency."""
    labels = ("anger", "joy", "love", "sadness")
    rows = [("so happy", multilabel_cats(["joy"]))] * 9 + [("so angry", multilabel_cats(["anger"]))]
    rows += [(t, exclusive_cats(lab)) for t, lab in SENTIMENT_ROWS[:3]]
    nlp = build(tiny_bert, {"sentiment": {"kind": "exclusive"}, "emotion": {"kind": "multilabel"}})
    nlp.initialize(get_examples=lambda: make_examples(nlp, rows))
    textcat = nlp.get_pipe("senti_textcat")
    bias = textcat.model.get_ref("output_layer").get_param("b")
    probs = 1 / (1 + np.exp(-bias[textcat.head_slices()["emotion"]]))
    expected = {"anger": 1.5 / 11, "joy": 9.5 / 11, "love": 0.5 / 11, "sadness": 0.5 / 11}
    np.testing.assert_allclose(probs, [expected[lab] for lab in labels], rtol=1e-5)
    # exclusive: softmax of the bias gives the (smoothed) class frequencies, 2 pos : 1 neg
    sent = bias[textcat.head_slices()["sentiment"]]
    soft = np.exp(sent) / np.exp(sent).sum()
    np.testing.assert_allclose(soft, [1.5 / 4, 2.5 / 4], rtol=1e-5)
