"""senti_hybrid: lexicon features, modes, the fitted stacker, serialisation and fit-hybrid."""

from __future__ import annotations

import math

import numpy as np
import pytest
import spacy
import srsly
from helpers import write_docbin
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.components.hybrid import (
    LEXICON_FEATURES,
    SentiHybrid,
    Stacker,
    lexicon_features,
    lexicon_label,
    lexicon_probs,
)
from spacy_senti.errors import ConfigError, InputError
from spacy_senti.training.hybrid import (
    C_GRID,
    HybridData,
    Selection,
    _scores_codes,
    accuracy_macro_f1,
    balanced_weights,
    fit_hybrid,
    fit_on_data,
    fit_stacker,
    hybrid_predictions,
    select_mode,
    tune_blend_weight,
    tune_cutoffs,
)

LABELS = ("negative", "positive")
THREE = ("negative", "neutral", "positive")
DEV_ROWS = [
    ("i loved the food", "positive"),
    ("awful boring film", "negative"),
    ("great fun", "positive"),
    ("i hate the staff", "negative"),
    ("really excellent movie", "positive"),
    ("terrible and sad", "negative"),
    ("amazing plot", "positive"),
    ("the worst price", "negative"),
    ("the film was not bad", "positive"),
    ("not good at all", "negative"),
]


def cats(label: str, labels=LABELS, head: str = "sentiment") -> dict[str, float]:
    return {f"{head}/{lab}": float(lab == label) for lab in labels}


@pytest.fixture(scope="module")
def trained(sentiment_pipeline):
    """The session's tiny senti_textcat pipeline (overfitted on helpers.SENTIMENT_ROWS),
    loaded, and its saved copy (shared: read-only)."""
    return spacy.load(sentiment_pipeline), sentiment_pipeline


@pytest.fixture(scope="module")
def tiny_pipeline(trained):
    return trained[0]


@pytest.fixture(scope="module")
def saved_model(trained):
    return trained[1]


@pytest.fixture(scope="module")
def dev_docs(tiny_pipeline):
    docs = []
    for text, label in DEV_ROWS:
        doc = tiny_pipeline.make_doc(text)
        doc.cats = cats(label)
        docs.append(doc)
    return docs


@pytest.fixture(scope="module")
def fitted(tiny_pipeline, dev_docs):
    """The tiny pipeline with senti_lexicon + a fitted stacker senti_hybrid."""
    result = fit_hybrid(tiny_pipeline, dev_docs, mode="stacker")
    return tiny_pipeline, result


def lexicon_nlp(**hybrid_config):
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon")
    nlp.add_pipe("senti_hybrid", config=hybrid_config)
    return nlp


# --- features and the fixed modes ----------------------------------------------------------------
def test_lexicon_features_of_a_hand_made_doc():
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon")
    doc = nlp("I don't like it, never good 😀")
    feats = lexicon_features(doc)
    assert list(feats) == list(LEXICON_FEATURES)
    polarity = doc._.lexicon_polarity
    for key in ("compound", "pos", "neg", "neu"):
        assert feats[key] == pytest.approx(polarity[key])
    assert feats["negations"] == 2  # "n't" and "never"
    emoji_token = doc[-1]
    assert emoji_token.text == "😀" and emoji_token._.valence
    assert feats["emoji_valence"] == pytest.approx(emoji_token._.valence)
    assert feats["compound"] < 0  # both sentiment words negated
    plain = lexicon_features(nlp("the table is brown"))
    assert plain == {"compound": 0.0, "pos": 0.0, "neg": 0.0, "neu": 1.0,
                     "negations": 0.0, "emoji_valence": 0.0}


def test_lexicon_features_need_the_lexicon():
    nlp = spacy.blank("en")
    with pytest.raises(ConfigError, match="add senti_lexicon"):
        lexicon_features(nlp("good"))


def test_lexicon_cutoffs_three_and_two_labels():
    three = ("negative", "neutral", "positive")
    assert lexicon_label(0.6, three, -0.05, 0.05) == "positive"
    assert lexicon_label(-0.6, three, -0.05, 0.05) == "negative"
    assert lexicon_label(0.01, three, -0.05, 0.05) == "neutral"
    assert lexicon_label(0.01, LABELS, -0.05, 0.05) == "positive"  # binary: the sign
    assert lexicon_label(-0.01, LABELS, -0.05, 0.05) == "negative"
    assert lexicon_label(0.3, three, -0.5, 0.5) == "neutral"  # tuned cut-offs
    probs = lexicon_probs(0.6, three, -0.05, 0.05, 5.0)
    assert max(probs, key=probs.get) == "positive"
    assert sum(probs.values()) == pytest.approx(1.0)
    with pytest.raises(ConfigError, match="negative/positive"):
        lexicon_label(0.5, ("joy", "anger"), -0.05, 0.05)


def test_lexicon_mode_without_textcat():
    nlp = lexicon_nlp(mode="lexicon")
    assert nlp("What a great, wonderful day!")._.sentiment == "positive"
    assert nlp("This is terrible and awful.")._.sentiment == "negative"
    doc = nlp("The meeting is on Tuesday.")
    assert doc._.sentiment == "neutral"
    assert set(doc._.sentiment_scores) == {"negative", "neutral", "positive"}
    assert doc._.sentiment_sources["model"] is None
    assert doc._.sentiment_sources["hybrid"] == doc._.sentiment_scores
    assert doc.cats["sentiment/neutral"] == pytest.approx(doc._.sentiment_scores["neutral"])


def test_blend_mode_math():
    nlp = lexicon_nlp(mode="blend", blend_weight=0.25)
    doc = nlp.make_doc("a good film")
    doc.cats = {"sentiment/negative": 0.9, "sentiment/positive": 0.1}  # the "model"
    doc = nlp.get_pipe("senti_hybrid")(nlp.get_pipe("senti_lexicon")(doc))
    c = doc._.lexicon_score
    assert c > 0
    lex_pos = 1.0 / (1.0 + math.exp(-2 * 5.0 * c))  # softmax(5 * [c, -c]) with cut 0
    expected_pos = 0.25 * 0.1 + 0.75 * lex_pos
    assert doc._.sentiment_scores["positive"] == pytest.approx(expected_pos)
    assert doc._.sentiment_scores["negative"] == pytest.approx(1 - expected_pos)
    assert doc._.sentiment_sources["model"] == {"negative": 0.9, "positive": 0.1}
    assert doc._.sentiment_sources["lexicon"]["positive"] == pytest.approx(lex_pos)
    assert doc._.sentiment == ("positive" if expected_pos > 0.5 else "negative")
    assert doc.cats["sentiment/positive"] == pytest.approx(expected_pos)


def test_model_mode_passes_the_model_through():
    nlp = lexicon_nlp(mode="model")
    doc = nlp.make_doc("a good film")
    doc.cats = {"sentiment/negative": 0.6, "sentiment/positive": 0.4}
    doc = nlp.get_pipe("senti_hybrid")(nlp.get_pipe("senti_lexicon")(doc))
    assert doc._.lexicon_score > 0.3  # the lexicon disagrees: ignored
    assert doc._.sentiment_scores == {"negative": 0.6, "positive": 0.4}
    assert doc._.sentiment == "negative"
    assert doc._.sentiment_sources["hybrid"] == doc._.sentiment_sources["model"]


def test_unfitted_stacker_falls_back_to_blend_with_a_warning():
    nlp = lexicon_nlp(mode="stacker", blend_weight=1.0)
    doc = nlp.make_doc("awful")
    doc.cats = {"sentiment/negative": 0.3, "sentiment/positive": 0.7}
    with pytest.warns(UserWarning, match="no stacker is fitted"):
        doc = nlp.get_pipe("senti_hybrid")(nlp.get_pipe("senti_lexicon")(doc))
    assert doc._.sentiment_scores == pytest.approx({"negative": 0.3, "positive": 0.7})


def test_model_modes_need_model_scores():
    nlp = lexicon_nlp(mode="blend")
    with pytest.raises(ConfigError, match="found no 'sentiment/...' scores"):
        nlp("good")


def test_bad_config_values():
    with pytest.raises(ConfigError, match="mode"):
        lexicon_nlp(mode="vote")
    with pytest.raises(ConfigError, match="blend_weight"):
        lexicon_nlp(blend_weight=1.5)
    with pytest.raises(ConfigError, match="neg_cutoff"):
        lexicon_nlp(neg_cutoff=0.3, pos_cutoff=0.1)


# --- fitting ----------------------------------------------------------------------------------
def synthetic(n: int, lexicon_signal: bool, seed: int = 0) -> HybridData:
    """3-class dev data: an ~75%-accurate "model"; lexicon features that are pure noise or
    whose pos/neg features carry the gold label (compound stays noise, so only a stacker,
    not the compound-based blend, can use the signal)."""
    rng = np.random.RandomState(seed)
    y = rng.randint(0, 3, size=n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.5
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    lexicon = []
    for label in y:
        feats = {name: float(rng.normal()) for name in LEXICON_FEATURES}
        feats["compound"] = float(np.tanh(rng.normal()))
        if lexicon_signal:
            feats["pos"] = float(3.0 * (label == 2) + rng.normal())
            feats["neg"] = float(3.0 * (label == 0) + rng.normal())
        lexicon.append(feats)
    return HybridData(list(THREE), [THREE[i] for i in y],
                      [dict(zip(THREE, row.tolist())) for row in probs], lexicon)


@pytest.mark.parametrize(("balanced", "intercept"), [(False, True), (True, False),
                                                     (True, True), (False, False)])
def test_stacker_is_the_optimum_of_the_penalty_toward_the_model(balanced, intercept):
    data = synthetic(200, lexicon_signal=True)
    data = data.subset([i for i, g in enumerate(data.gold) if g != "neutral" or i % 3 == 0])
    X = data.matrix()
    stacker = fit_stacker(X, data.gold, THREE, C=0.5, balanced=balanced, intercept=intercept)
    assert stacker.offset == [0, 1, 2] and stacker.classes == list(THREE)
    assert stacker.fit_intercept is intercept
    assert stacker.class_weight == ("balanced" if balanced else None)
    # first-order conditions of  sum_i w_i log-loss_i + ||(W, b)||^2 / (2C)  with the model's
    # log-probabilities as a fixed offset: (P - Y)^T diag(w) Z + W / C = 0 and, with
    # intercepts, w^T (P - Y) + b / C = 0 (else b = 0); w = 1, or balanced_weights; Z is
    # standardised with the w-weighted mean and standard deviation
    codes = np.asarray([THREE.index(g) for g in data.gold])
    w = balanced_weights(codes) if balanced else np.ones(len(codes))
    mean = (w[:, None] * X).sum(0) / w.sum()
    np.testing.assert_allclose(stacker.mean, mean)
    np.testing.assert_allclose(
        stacker.scale, np.sqrt((w[:, None] * (X - mean) ** 2).sum(0) / w.sum()))
    Z = (X - np.asarray(stacker.mean)) / np.asarray(stacker.scale)
    Y = np.eye(3)[codes]
    P = stacker.predict_proba(X)
    W, b = np.asarray(stacker.coef), np.asarray(stacker.intercept)
    np.testing.assert_allclose((w[:, None] * (P - Y)).T @ Z + W / stacker.C, 0, atol=1e-4)
    if intercept:
        np.testing.assert_allclose(w @ (P - Y) + b / stacker.C, 0, atol=1e-4)
    else:
        assert b.tolist() == [0.0, 0.0, 0.0]
    logits = X[:, :3] + Z @ W.T + b
    np.testing.assert_allclose(P, np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
    again = Stacker.from_dict(srsly.json_loads(srsly.json_dumps(stacker.to_dict())))
    np.testing.assert_allclose(again.predict_proba(X), P)


def test_strongly_regularised_stacker_is_the_model():
    data = synthetic(200, lexicon_signal=True)
    X = data.matrix()
    model = np.asarray([[m[lab] for lab in THREE] for m in data.model])
    strong = fit_stacker(X, data.gold, THREE, C=1e-9)
    np.testing.assert_allclose(strong.predict_proba(X), model, atol=1e-6)
    assert (strong.predict_proba(X).argmax(1) == model.argmax(1)).all()
    free = fit_stacker(X, data.gold, THREE, C=10.0)  # the signal is used when allowed
    gold = np.asarray([THREE.index(g) for g in data.gold])
    assert (free.predict_proba(X).argmax(1) == gold).mean() > \
        (model.argmax(1) == gold).mean() + 0.1
    assert fit_stacker(X, data.gold, THREE).C in C_GRID  # chosen by CV log-loss


def calibrated(counts: dict[str, int], seed: int) -> HybridData:
    """3-class data with ``counts`` docs per label: a model calibrated for equally frequent
    labels (its probabilities are the exact posteriors under a uniform prior) and lexicon
    features that are pure noise."""
    rng = np.random.RandomState(seed)
    y = np.concatenate([np.full(n, THREE.index(lab)) for lab, n in counts.items()])
    rng.shuffle(y)
    scores = rng.normal(size=(len(y), 3))
    scores[np.arange(len(y)), y] += 1.0
    logits = 1.0 * scores  # N(e_y, I) class-conditionals: posterior = softmax(1.0 * scores)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    lexicon = [{name: float(rng.normal()) for name in LEXICON_FEATURES} for _ in y]
    for feats in lexicon:
        feats["compound"] = float(np.tanh(feats["compound"]))
    return HybridData(list(THREE), [THREE[i] for i in y],
                      [dict(zip(THREE, row.tolist())) for row in probs], lexicon)


def test_stacker_does_not_learn_the_dev_label_mix():
    """Issue 14: a stacker fitted on a mostly-positive dev, whose lexicon features say nothing,
    must not push a mostly-negative set toward positive. Balanced, without intercepts (the
    defaults), it gives back the model's labels; fitted as before (unweighted, intercepts) it
    learns dev's prior as a bias and loses macro-F1 on the other mix."""
    dev = calibrated({"negative": 60, "neutral": 90, "positive": 450}, seed=0)
    other = calibrated({"negative": 450, "neutral": 90, "positive": 60}, seed=1)
    model = np.asarray([max(m, key=m.get) for m in other.model])
    X = other.matrix()

    robust = fit_stacker(dev.matrix(), dev.gold, THREE)
    assert robust.fit_intercept is False and robust.class_weight == "balanced"
    pred = np.asarray(THREE)[robust.predict_proba(X).argmax(1)]
    assert (pred == model).mean() >= 0.97

    naive = fit_stacker(dev.matrix(), dev.gold, THREE, balanced=False, intercept=True)
    shifted = np.asarray(THREE)[naive.predict_proba(X).argmax(1)]
    assert (shifted == model).mean() < 0.85
    assert (shifted == "positive").sum() > 2 * (model == "positive").sum()

    def f1(p):
        return accuracy_macro_f1(other.gold, p.tolist(), THREE)["macro_f1"]
    assert f1(pred) > f1(shifted) + 0.05
    # fit_on_data / auto use the same defaults: the choice leaves the model's labels alone
    auto = fit_on_data(dev, "auto")
    assert auto.options == {"balanced": True, "intercept": False}
    assert auto.selection["metric"] == "balanced_macro_f1"
    assert (np.asarray(hybrid_predictions(other, auto)) == model).mean() >= 0.97


def test_balanced_weights_score_as_if_dev_were_balanced():
    """Balanced cut-offs, blend weight and macro-F1 equal the plain ones on a copy of dev in
    which every doc of a label is repeated so that all labels are equally frequent."""
    rng = np.random.RandomState(3)
    counts = {"negative": 6, "neutral": 3, "positive": 2}  # repeat x1, x2, x3: 6 each
    data = synthetic(200, lexicon_signal=False, seed=3)
    idx = [i for lab, n in counts.items()
           for i in [j for j, g in enumerate(data.gold) if g == lab][: n * 5]]
    dev = data.subset(idx)
    for row, label in zip(dev.lexicon, dev.gold):  # a lexicon that separates some docs
        row["compound"] = float(np.clip({"negative": -0.5, "neutral": 0.0,
                                         "positive": 0.5}[label] + rng.normal(0, 0.4), -1, 1))
    repeat = {lab: 6 // n for lab, n in counts.items()}
    copy = dev.subset([i for i, g in enumerate(dev.gold) for _ in range(repeat[g])])
    codes = np.asarray([THREE.index(g) for g in dev.gold])
    w = balanced_weights(codes)
    assert w.mean() == pytest.approx(1.0)
    assert {lab: w[codes == THREE.index(lab)].sum() for lab in THREE} == pytest.approx(
        {lab: len(codes) / 3 for lab in THREE})
    pred = np.asarray([THREE.index(lexicon_label(c, THREE, -0.1, 0.1)) for c in dev.compounds])
    copy_codes = np.asarray([THREE.index(g) for g in copy.gold])
    copy_pred = np.asarray([THREE.index(lexicon_label(c, THREE, -0.1, 0.1))
                            for c in copy.compounds])
    assert _scores_codes(codes, pred, 3, w) == pytest.approx(
        _scores_codes(copy_codes, copy_pred, 3))
    cut = tune_cutoffs(dev.compounds, dev.gold, THREE, balanced=True)
    assert cut == tune_cutoffs(copy.compounds, copy.gold, THREE, balanced=False)
    assert cut != tune_cutoffs(dev.compounds, dev.gold, THREE, balanced=False)
    assert tune_blend_weight(dev, cut, 5.0, balanced=True) == \
        tune_blend_weight(copy, cut, 5.0, balanced=False)


@pytest.mark.parametrize("seed", [0, 1])
def test_auto_picks_model_when_the_lexicon_is_noise(seed):
    data = synthetic(300, lexicon_signal=False, seed=seed)
    result = fit_on_data(data, "auto", seed=seed)
    assert result.mode == "model" and result.stacker is None
    sel = result.selection
    assert sel["chosen"] == "model" and sel["requested"] == "auto" and sel["folds"] == 5
    assert set(sel["candidates"]) == {"model", "blend", "stacker"}
    assert all(len(c["folds"]) == 5 for c in sel["candidates"].values())
    assert hybrid_predictions(data, result) == [max(m, key=m.get) for m in data.model]
    assert result.scores["hybrid"] == result.scores["model"]


def test_auto_picks_the_stacker_when_the_lexicon_carries_signal():
    data = synthetic(300, lexicon_signal=True)
    result = fit_on_data(data, "auto")
    sel = result.selection
    assert result.mode == sel["chosen"] == "stacker" and result.stacker is not None
    means = {mode: c["mean"] for mode, c in sel["candidates"].items()}
    assert means["stacker"] > means["model"] + 0.1
    assert means["stacker"] > means["blend"]
    # the same folds for every candidate: model-only's fold scores are its own macro-F1s
    again = select_mode(data)
    assert again.fold_scores["model"] == sel["candidates"]["model"]["folds"]


def test_auto_breaks_ties_toward_the_simpler_mode():
    sel = Selection("model", 5, 0, 1.0, {"model": [0.70, 0.72, 0.71, 0.69, 0.70],
                                          "stacker": [0.71, 0.71, 0.72, 0.70, 0.70]})
    assert sel.best == "stacker" and sel.paired_se("stacker", "model") > 0
    tied = Selection("model", 3, 0, 0.0, {"model": [0.5, 0.6, 0.7], "blend": [0.5, 0.6, 0.7],
                                          "stacker": [0.5, 0.6, 0.7]})
    assert tied.best == "model"


def test_bad_dev_data_for_fitting():
    data = synthetic(40, lexicon_signal=False)
    one_class = HybridData(list(THREE), ["positive"] * 40, data.model, data.lexicon)
    for mode in ("auto", "stacker", "blend", "model"):
        with pytest.raises(InputError, match="single label"):
            fit_on_data(one_class, mode)
    few = data.subset([i for i, g in enumerate(data.gold) if g != "neutral"][:20]
                      + [i for i, g in enumerate(data.gold) if g == "neutral"][:3])
    with pytest.raises(InputError, match="needs at least 5 docs of every label.*neutral"):
        fit_on_data(few, "auto")
    assert fit_on_data(few, "auto", folds=3).selection["folds"] == 3
    with pytest.raises(InputError, match="at least 2 folds"):
        fit_on_data(data, "auto", folds=1)
    with pytest.raises(ConfigError, match="Unknown mode"):
        fit_on_data(data, "vote")


def test_tune_cutoffs_finds_a_wider_neutral_band():
    compounds = [-0.8, -0.6, -0.3, -0.2, 0.1, 0.25, 0.3, 0.7, 0.9]
    gold = ["negative", "negative", "neutral", "neutral", "neutral", "neutral", "neutral",
            "positive", "positive"]
    neg, pos = tune_cutoffs(compounds, gold, ["negative", "neutral", "positive"])
    pred = [lexicon_label(c, ["negative", "neutral", "positive"], neg, pos) for c in compounds]
    assert pred == gold
    assert -0.6 <= neg < -0.3 and 0.3 < pos <= 0.7


def test_fit_hybrid_sources_and_scores(fitted):
    nlp, result = fitted
    assert nlp.pipe_names[-2:] == ["senti_lexicon", "senti_hybrid"]
    hybrid = nlp.get_pipe("senti_hybrid")
    assert hybrid.effective_mode == "stacker" and hybrid.stacker is not None
    assert hybrid.stacker.classes == list(LABELS)
    assert hybrid.stacker.feature_names[:2] == ["log_p(negative)", "log_p(positive)"]
    assert set(result.scores) == {"model", "lexicon", "hybrid"}
    assert result.n_docs == len(DEV_ROWS)
    text = "i loved this great film"
    with nlp.select_pipes(disable=["senti_hybrid"]):
        base = nlp(text)
    doc = nlp(text)
    sources = doc._.sentiment_sources
    assert sources["model"] == pytest.approx(base._.sentiment_scores)
    assert sources["lexicon"] == pytest.approx(
        lexicon_probs(base._.lexicon_score, LABELS, *result.cutoffs, 5.0)
    )
    assert sources["hybrid"] == doc._.sentiment_scores
    assert sum(sources["hybrid"].values()) == pytest.approx(1.0)
    assert doc._.sentiment == max(sources["hybrid"], key=sources["hybrid"].get)
    assert doc.cats["sentiment/positive"] == pytest.approx(sources["hybrid"]["positive"])
    assert sources["hybrid"] != pytest.approx(sources["model"])


def test_stacker_round_trip(fitted, tmp_path):
    nlp, _ = fitted
    texts = [t for t, _ in DEV_ROWS]
    before = [d._.sentiment_scores for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "model")
    state = srsly.read_json(tmp_path / "model" / "senti_hybrid" / "hybrid.json")
    assert state["stacker"]["feature_names"][2:] == list(LEXICON_FEATURES)
    # the label-mix options (defaults: balanced, no intercepts) are saved with it
    assert state["fit_options"] == {"balanced": True, "intercept": False}
    assert state["stacker"]["fit_intercept"] is False
    assert state["stacker"]["class_weight"] == "balanced"
    assert state["stacker"]["intercept"] == [0.0, 0.0]
    loaded = spacy.load(tmp_path / "model")
    after = [d._.sentiment_scores for d in loaded.pipe(texts)]
    for a, b in zip(before, after):
        assert a == pytest.approx(b, abs=1e-6)
    again = loaded.get_pipe("senti_hybrid")
    assert again.fit_options == {"balanced": True, "intercept": False}
    assert again.stacker.fit_intercept is False and again.stacker.class_weight == "balanced"
    hybrid = nlp.get_pipe("senti_hybrid")
    fresh = SentiHybrid(nlp.vocab, labels=LABELS).from_bytes(hybrid.to_bytes())
    assert fresh.stacker.to_dict() == hybrid.stacker.to_dict()
    assert fresh.fit_options == hybrid.fit_options
    assert (fresh.neg_cutoff, fresh.pos_cutoff) == (hybrid.neg_cutoff, hybrid.pos_cutoff)


def test_stackers_saved_before_the_label_mix_options_still_load():
    """A stacker dict from before ``fit_intercept`` / ``class_weight`` existed (fitted with
    intercepts, unweighted) loads as such and predicts exactly as before."""
    data = synthetic(120, lexicon_signal=True)
    X = data.matrix()
    fitted = fit_stacker(X, data.gold, THREE, C=0.5, balanced=False, intercept=True)
    old = {k: v for k, v in fitted.to_dict().items() if k not in ("fit_intercept",
                                                                   "class_weight")}
    loaded = Stacker.from_dict(old)
    assert loaded.fit_intercept is True and loaded.class_weight is None
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    hybrid = SentiHybrid(spacy.blank("en").vocab, labels=THREE)
    hybrid._set_state({"stacker": old, "neg_cutoff": -0.1, "pos_cutoff": 0.1,
                       "blend_weight": 0.7, "selection": None})
    assert hybrid.fit_options is None and hybrid.stacker.to_dict()["fit_intercept"] is True
    with pytest.raises(ConfigError, match="class_weight"):
        Stacker.from_dict({**old, "class_weight": "inverse"})


def test_auto_choice_is_saved_and_loaded(trained, dev_docs, tmp_path):
    nlp = spacy.load(trained[1])  # a fresh copy: the module's fitted pipeline stays as it is
    result = fit_hybrid(nlp, dev_docs, folds=2)
    hybrid = nlp.get_pipe("senti_hybrid")
    assert result.selection["chosen"] == result.mode == hybrid.mode
    assert hybrid.selection == result.selection and hybrid.selection["folds"] == 2
    assert result.selection["metric"] == "balanced_macro_f1"
    assert result.selection["options"] == {"balanced": True, "intercept": False}
    texts = [t for t, _ in DEV_ROWS]
    before = [d._.sentiment_scores for d in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "model")
    cfg = spacy.util.load_config(tmp_path / "model" / "config.cfg")
    assert cfg["components"]["senti_hybrid"]["mode"] == result.mode
    as_json = srsly.json_loads(srsly.json_dumps(result.selection))  # floats: 10 digits
    state = srsly.read_json(tmp_path / "model" / "senti_hybrid" / "hybrid.json")
    assert state["selection"] == as_json
    loaded = spacy.load(tmp_path / "model")
    again = loaded.get_pipe("senti_hybrid")
    assert again.mode == result.mode and again.selection == as_json
    after = [d._.sentiment_scores for d in loaded.pipe(texts)]
    for a, b in zip(before, after):
        assert a == pytest.approx(b, abs=1e-6)
    if result.mode == "model":
        doc = loaded(texts[0])
        assert doc._.sentiment_scores == doc._.sentiment_sources["model"]


def test_fit_errors(tiny_pipeline, dev_docs):
    with pytest.raises(ConfigError, match="No senti_textcat head 'polarity'"):
        fit_hybrid(tiny_pipeline, dev_docs, head="polarity")
    blank = spacy.blank("en")
    with pytest.raises(ConfigError, match="needs a senti_textcat"):
        fit_hybrid(blank, [blank.make_doc("good")], mode="stacker")
    doc = blank.make_doc("good")
    doc.cats = {"emotion/joy": 1.0}
    with pytest.raises(ConfigError, match="no gold 'sentiment/<label>'"):
        fit_hybrid(blank, [doc], mode="lexicon")


# --- the CLI ----------------------------------------------------------------------------------
def write_dev(path, nlp, rows):
    rows = [(text, label if isinstance(label, dict) else cats(label)) for text, label in rows]
    return write_docbin(path, rows, nlp)


def test_fit_hybrid_cli(tiny_pipeline, saved_model, tmp_path):
    model = saved_model
    assert "senti_hybrid" not in srsly.read_json(model / "meta.json")["pipeline"]
    dev = write_dev(tmp_path / "dev.spacy", tiny_pipeline, DEV_ROWS)
    out = tmp_path / "hybrid"
    result = CliRunner().invoke(app, ["fit-hybrid", str(model), str(dev), "--output", str(out),
                                      "--no-progress", "--folds", "2"])  # default: --mode auto
    assert result.exit_code == 0, result.output
    state = srsly.read_json(out / "senti_hybrid" / "hybrid.json")
    chosen = state["selection"]["chosen"]
    assert chosen in ("model", "blend", "stacker")
    for word in ("--mode auto: 2-fold CV on DEV", "metric: class-balanced macro-F1", "model",
                 "blend", "stacker", f"chosen: {chosen}", "model-only", "lexicon-only",
                 f"hybrid ({chosen}"):
        assert word in result.output
    assert spacy.load(out).get_pipe("senti_hybrid").mode == chosen

    out = tmp_path / "stacker"
    result = CliRunner().invoke(app, ["fit-hybrid", str(model), str(dev), "--output", str(out),
                                      "--no-progress", "--mode", "stacker"])
    assert result.exit_code == 0, result.output
    for word in ("model-only", "lexicon-only", "hybrid (stacker", "regularised toward"):
        assert word in result.output
    assert "--mode auto" not in result.output
    assert "(balanced, no intercepts)" in result.output
    loaded = spacy.load(out)
    assert loaded.pipe_names == ["transformer", "senti_textcat", "senti_lexicon", "senti_hybrid"]
    assert loaded.get_pipe("senti_hybrid").stacker is not None
    assert loaded("great fun")._.sentiment in LABELS

    out = tmp_path / "stacker_prior"  # the previous fit: unweighted, with intercepts
    result = CliRunner().invoke(app, ["fit-hybrid", str(model), str(dev), "--output", str(out),
                                      "--no-progress", "--mode", "stacker", "--no-balanced",
                                      "--intercept"])
    assert result.exit_code == 0, result.output
    assert "(unweighted, with intercepts)" in result.output
    hybrid = spacy.load(out).get_pipe("senti_hybrid")
    assert hybrid.fit_options == {"balanced": False, "intercept": True}
    assert hybrid.stacker.fit_intercept is True and hybrid.stacker.class_weight is None

    lex_out = tmp_path / "lexicon"
    result = CliRunner().invoke(app, ["fit-hybrid", str(model), str(dev), "-o", str(lex_out),
                                      "--mode", "lexicon", "--no-progress"])
    assert result.exit_code == 0, result.output
    cfg = spacy.util.load_config(lex_out / "config.cfg")["components"]["senti_hybrid"]
    assert cfg["mode"] == "lexicon" and cfg["neg_cutoff"] == cfg["pos_cutoff"]


def test_fit_hybrid_cli_errors(tiny_pipeline, saved_model, tmp_path):
    model = saved_model
    runner = CliRunner()
    rows = [(t, cats(lab, head="polarity")) for t, lab in DEV_ROWS]
    dev = write_dev(tmp_path / "dev.spacy", tiny_pipeline, rows)
    result = runner.invoke(app, ["fit-hybrid", str(model), str(dev), "-o",
                                 str(tmp_path / "o1"), "--head", "polarity", "--no-progress"])
    assert result.exit_code == 1
    assert "No senti_textcat head 'polarity'" in result.output
    no_gold = write_dev(tmp_path / "emo.spacy", tiny_pipeline, [("joy", {"emotion/joy": 1.0})])
    result = runner.invoke(app, ["fit-hybrid", str(model), str(no_gold), "-o",
                                 str(tmp_path / "o2"), "--no-progress"])
    assert result.exit_code == 1
    assert "no gold 'sentiment/<label>'" in result.output
    assert not (tmp_path / "o2").exists()
    one_class = write_dev(tmp_path / "one.spacy", tiny_pipeline,
                          [(t, "positive") for t, _ in DEV_ROWS])
    result = runner.invoke(app, ["fit-hybrid", str(model), str(one_class), "-o",
                                 str(tmp_path / "o3"), "--no-progress"])
    assert result.exit_code == 1
    assert "single label ['positive']" in result.output
    result = runner.invoke(app, ["fit-hybrid", str(model), str(dev), "-o",
                                 str(tmp_path / "o4"), "--folds", "1"])
    assert result.exit_code == 1 and "--folds must be at least 2" in result.output
    few = write_dev(tmp_path / "few.spacy", tiny_pipeline, DEV_ROWS[:6])  # 3 docs per label
    result = runner.invoke(app, ["fit-hybrid", str(model), str(few), "-o",
                                 str(tmp_path / "o5"), "--no-progress"])
    assert result.exit_code == 1
    assert "5-fold cross-validation" in result.output and "fewer --folds" in result.output
    assert not any((tmp_path / d).exists() for d in ("o3", "o4", "o5"))
