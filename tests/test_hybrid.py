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
from spacy_senti.errors import ConfigError
from spacy_senti.training.hybrid import fit_hybrid, fit_stacker, tune_cutoffs

LABELS = ("negative", "positive")
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
def test_stacker_matches_sklearn():
    from sklearn.linear_model import LogisticRegression

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3 + len(LEXICON_FEATURES)))
    y = np.array(["negative", "neutral", "positive"])[(X[:, 0] + X[:, 3] > 0).astype(int)
                                                     + (X[:, 1] > 0.8).astype(int)]
    stacker = fit_stacker(X, y, ["negative", "neutral", "positive"])
    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    ref = LogisticRegression(C=stacker.C, max_iter=2000).fit(Z, y)
    assert stacker.classes == list(ref.classes_)
    np.testing.assert_allclose(stacker.predict_proba(X), ref.predict_proba(Z), atol=3e-3)
    again = Stacker.from_dict(srsly.json_loads(srsly.json_dumps(stacker.to_dict())))
    np.testing.assert_allclose(again.predict_proba(X), stacker.predict_proba(X))


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
    loaded = spacy.load(tmp_path / "model")
    after = [d._.sentiment_scores for d in loaded.pipe(texts)]
    for a, b in zip(before, after):
        assert a == pytest.approx(b, abs=1e-6)
    hybrid = nlp.get_pipe("senti_hybrid")
    fresh = SentiHybrid(nlp.vocab, labels=LABELS).from_bytes(hybrid.to_bytes())
    assert fresh.stacker.to_dict() == hybrid.stacker.to_dict()
    assert (fresh.neg_cutoff, fresh.pos_cutoff) == (hybrid.neg_cutoff, hybrid.pos_cutoff)


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
                                      "--no-progress"])
    assert result.exit_code == 0, result.output
    for word in ("model-only", "lexicon-only", "hybrid (stacker"):
        assert word in result.output
    loaded = spacy.load(out)
    assert loaded.pipe_names == ["transformer", "senti_textcat", "senti_lexicon", "senti_hybrid"]
    assert loaded.get_pipe("senti_hybrid").stacker is not None
    assert loaded("great fun")._.sentiment in LABELS

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
