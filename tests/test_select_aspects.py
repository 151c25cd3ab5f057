"""spacy-senti select over aspect terms (senti_aspects): term uncertainty, the
``aspect_terms`` head, exports, and pipelines without senti_aspects unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest
import spacy
from helpers import ASPECT_ROWS, write_jsonl
from typer.testing import CliRunner

from spacy_senti.active.export import label_studio_config, prodigy_task
from spacy_senti.active.select import (
    ASPECT_TERMS,
    Selection,
    aspect_probabilities,
    distribution_uncertainty,
    select,
    select_texts,
    term_uncertainty,
    uncertainty,
)
from spacy_senti.cli import app
from spacy_senti.errors import InputError
from spacy_senti.heads import HeadSpec
from spacy_senti.monitor.inputs import predict
from spacy_senti.util import find_aspects

TRAINING = [row[0] for row in ASPECT_ROWS]
AMBIGUOUS = "the qwzx was okay"  # a made-up term the tagger and the polarity are unsure of
POOL = [*TRAINING, AMBIGUOUS]
EXCL = HeadSpec("sentiment", "exclusive", labels=["negative", "positive"])
CONFIDENT_TAGS = np.array([[0.98, 0.01, 0.01], [0.01, 0.98, 0.01]])
CONFIDENT_POLARITY = np.array([[0.96, 0.02, 0.02]])


@pytest.fixture(scope="module")
def nlp(aspects_pipeline):
    return spacy.load(aspects_pipeline)


@pytest.fixture(scope="module")
def aspects_only_dir(nlp, tmp_path_factory):
    """The fixture pipeline without its senti_textcat (senti_aspects alone)."""
    path = tmp_path_factory.mktemp("aspects_only") / "model"
    only = spacy.util.load_model_from_config(nlp.config, auto_fill=False)
    only.from_bytes(nlp.to_bytes())
    only.remove_pipe("senti_textcat")
    only.to_disk(path)
    return path


# --- scores ------------------------------------------------------------------------------
@pytest.mark.parametrize("strategy", ["entropy", "margin", "least-confidence"])
def test_term_uncertainty_takes_the_most_uncertain_part(strategy):
    unsure_tag = np.array([[0.98, 0.01, 0.01], [0.5, 0.45, 0.05]])
    unsure_polarity = np.array([[0.96, 0.02, 0.02], [0.4, 0.3, 0.3]])
    scores = term_uncertainty(
        [CONFIDENT_TAGS, unsure_tag, CONFIDENT_TAGS, unsure_tag, np.zeros((0, 3))],
        [CONFIDENT_POLARITY, np.zeros((0, 3)), unsure_polarity, unsure_polarity,
         np.zeros((0, 3))],
        strategy,
    )
    confident, tagger_unsure, polarity_unsure, both, empty = scores
    assert confident < 0.2 and empty == 0.0
    # a doc without terms still counts when the tagger is unsure about a token
    assert tagger_unsure > 3 * confident
    assert polarity_unsure > 3 * confident
    assert both == pytest.approx(max(tagger_unsure, polarity_unsure))
    assert tagger_unsure == pytest.approx(
        distribution_uncertainty(unsure_tag, strategy).max())
    assert ((scores >= 0) & (scores <= 1)).all()


def test_least_confidence_on_tags_is_one_minus_max_prob_normalised():
    tags = np.array([[0.6, 0.3, 0.1]])
    score = term_uncertainty([tags], [np.zeros((0, 2))], "least-confidence")[0]
    assert score == pytest.approx((1 - 0.6) * 3 / 2)


def test_distribution_uncertainty_single_label_and_unknown():
    assert distribution_uncertainty(np.ones((4, 1)), "margin").tolist() == [0.0] * 4
    with pytest.raises(InputError, match="Unknown strategy"):
        distribution_uncertainty(np.ones((1, 2)) / 2, "random")


def test_head_uncertainty_unchanged():
    probs = np.array([[0.9, 0.1], [0.6, 0.4]])
    expected_entropy = [-(p * np.log(p) + (1 - p) * np.log(1 - p)) / np.log(2) for p in (0.9, 0.6)]
    np.testing.assert_allclose(uncertainty(EXCL, probs, "entropy"), expected_entropy)
    np.testing.assert_allclose(uncertainty(EXCL, probs, "margin"), [0.2, 0.8])
    np.testing.assert_allclose(uncertainty(EXCL, probs, "least-confidence"), [0.2, 0.8])


def test_select_averages_terms_with_heads():
    probs = {"sentiment": np.array([[0.5, 0.5], [0.99, 0.01], [0.99, 0.01]])}
    terms = np.array([0.0, 1.0, 0.2])
    idx, scores = select([EXCL], probs, 3, "margin", term_scores=terms)
    np.testing.assert_allclose(scores, [0.5, 0.51, 0.11])
    assert idx == [1, 0, 2]
    idx, scores = select([], {}, 2, "margin", term_scores=terms)
    assert idx == [1, 2] and scores.tolist() == terms.tolist()
    idx, _ = select([], {}, 2, "random", term_scores=terms)
    assert len(set(idx)) == 2
    with pytest.raises(InputError, match="Nothing to select on"):
        select([], {}, 1)


# --- the fixture pipeline ----------------------------------------------------------------
def test_aspect_probabilities_match_the_written_terms(nlp):
    docs = list(nlp.pipe(["", *POOL]))
    tags, polarities = aspect_probabilities(find_aspects(nlp), docs, batch_size=3)
    assert tags[0].shape == (0, 3) and polarities[0].shape == (0, 3)
    for doc, tag, pol in zip(docs, tags, polarities):
        assert tag.shape == (len(doc), 3) and pol.shape == (len(doc.spans["aspects"]), 3)
        written = [list(s._.polarity_scores.values()) for s in doc.spans["aspects"]]
        np.testing.assert_allclose(pol, np.asarray(written).reshape(pol.shape), atol=1e-6)


@pytest.mark.parametrize("strategy", ["entropy", "margin", "least-confidence"])
def test_ambiguous_term_ranks_above_training_sentences(nlp, strategy):
    chosen, heads = select_texts(nlp, POOL, len(POOL), strategy, head=ASPECT_TERMS,
                                 progress=False)
    assert heads == []
    assert chosen[0].text == AMBIGUOUS
    assert chosen[0].score > 2 * max(c.score for c in chosen[1:])
    assert chosen[0].probs == {}
    assert [t["text"] for t in chosen[0].terms] == ["qwzx"]
    by_text = {c.text: c for c in chosen}
    assert [t["text"] for t in by_text[TRAINING[0]].terms] == ["pad thai", "waiter"]
    assert by_text[TRAINING[0]].terms[0]["token_end"] == 2  # inclusive, Prodigy style


def test_default_averages_heads_and_terms(nlp):
    chosen, heads = select_texts(nlp, POOL, len(POOL), "margin", progress=False)
    assert [h.name for h in heads] == ["sentiment"]
    preds = predict(nlp, POOL, progress=False)
    docs = preds.docs
    terms = term_uncertainty(*aspect_probabilities(find_aspects(nlp), docs), "margin")
    expected = (uncertainty(heads[0], preds.probs["sentiment"], "margin") + terms) / 2
    for sel in chosen:
        assert sel.score == pytest.approx(expected[sel.index])
        assert set(sel.probs) == {"sentiment"} and sel.terms is not None
    # one textcat head alone: as before, no terms
    chosen, _ = select_texts(nlp, POOL, 2, "margin", head="sentiment", progress=False)
    assert all(sel.terms is None for sel in chosen)
    np.testing.assert_allclose(
        [s.score for s in chosen],
        np.sort(uncertainty(heads[0], preds.probs["sentiment"], "margin"))[::-1][:2],
    )


def test_aspects_only_pipeline(aspects_only_dir):
    nlp = spacy.load(aspects_only_dir)
    assert nlp.pipe_names == ["transformer", "senti_aspects"]
    for strategy in ("entropy", "diverse", "random"):
        chosen, heads = select_texts(nlp, POOL, 3, strategy, progress=False)
        assert heads == [] and len({c.index for c in chosen}) == 3
        assert all(c.terms is not None for c in chosen)
        if strategy == "entropy":
            assert chosen[0].text == AMBIGUOUS
    with pytest.raises(InputError, match=r"Unknown head 'sentiment'.*\['aspect_terms'\]"):
        select_texts(nlp, POOL, 2, head="sentiment", progress=False)


def test_exports_carry_terms():
    terms = [{"start": 4, "end": 8, "token_start": 1, "token_end": 1, "label": "positive",
              "text": "food", "score": 0.9}]
    tokens = [{"text": w, "start": s, "end": s + len(w), "id": i, "ws": True}
              for i, (w, s) in enumerate([("the", 0), ("food", 4)])]
    sel = Selection(3, "the food", 0.7, {}, terms=terms, tokens=tokens)
    task = prodigy_task(sel, [], "entropy")
    assert task["spans"] == [{k: v for k, v in terms[0].items() if k != "score"}]
    assert task["tokens"] == tokens and task["meta"]["head"] == ASPECT_TERMS
    assert "options" not in task
    xml = label_studio_config([], ["negative", "positive"])
    assert '<Labels name="aspect_terms" toName="text"><Label value="negative"/>' in xml
    assert "<Choices" not in xml


# --- the command -------------------------------------------------------------------------
def test_select_command_aspect_terms(aspects_pipeline, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    out, ls = tmp_path / "out.jsonl", tmp_path / "ls.json"
    res = CliRunner().invoke(app, ["select", str(aspects_pipeline), str(pool), "--n", "2",
                                   "--head", "aspect_terms", "--output", str(out),
                                   "--label-studio", str(ls)])
    assert res.exit_code == 0, res.output
    tasks = [json.loads(line) for line in out.read_text().splitlines()]
    assert tasks[0]["text"] == AMBIGUOUS and tasks[0]["meta"]["head"] == "aspect_terms"
    span = tasks[0]["spans"][0]
    assert AMBIGUOUS[span["start"]:span["end"]] == "qwzx"
    assert [t["text"] for t in tasks[0]["tokens"]] == AMBIGUOUS.split()
    studio = json.loads(ls.read_text())
    result = studio[0]["predictions"][0]["result"]
    assert [r["type"] for r in result] == ["labels"]
    assert result[0]["from_name"] == "aspect_terms"
    assert result[0]["value"]["text"] == "qwzx"
    config = ls.with_suffix(".config.xml").read_text()
    assert '<Labels name="aspect_terms"' in config and "<Choices" not in config


def test_select_command_default_with_both(aspects_pipeline, tmp_path):
    pool = write_jsonl(tmp_path / "pool.jsonl", POOL)
    out, ls = tmp_path / "out.jsonl", tmp_path / "ls.json"
    res = CliRunner().invoke(app, ["select", str(aspects_pipeline), str(pool), "--n", "3",
                                   "--output", str(out), "--label-studio", str(ls)])
    assert res.exit_code == 0, res.output
    task = json.loads(out.read_text().splitlines()[0])
    assert {o["id"] for o in task["options"]} == {"negative", "positive"}
    assert "spans" in task and task["meta"]["head"] == "sentiment"
    types = {r["type"] for r in json.loads(ls.read_text())[0]["predictions"][0]["result"]}
    assert "choices" in types
    config = ls.with_suffix(".config.xml").read_text()
    assert '<Choices name="sentiment"' in config and '<Labels name="aspect_terms"' in config


def test_without_senti_aspects_unchanged(cpu_fast_pipeline, tmp_path):
    """No terms, no new keys, and ``--head aspect_terms`` a clear error."""
    nlp = spacy.load(cpu_fast_pipeline)
    assert find_aspects(nlp) is None
    texts = ["good great love", "bad awful hate", "good bad", "the movie was fine"]
    chosen, heads = select_texts(nlp, texts, 2, "entropy", progress=False)
    preds = predict(nlp, texts, progress=False)
    expected = np.mean([uncertainty(h, preds.probs[h.name], "entropy") for h in heads], axis=0)
    assert [c.index for c in chosen] == np.argsort(-expected, kind="stable")[:2].tolist()
    assert all(c.terms is None and c.tokens is None for c in chosen)
    task = prodigy_task(chosen[0], heads, "entropy")
    assert "spans" not in task and "tokens" not in task
    pool = write_jsonl(tmp_path / "pool.jsonl", texts)
    res = CliRunner().invoke(app, ["select", str(cpu_fast_pipeline), str(pool), "--n", "2",
                                   "--head", "aspect_terms", "--output",
                                   str(tmp_path / "o.jsonl")])
    assert res.exit_code == 1
    assert "Unknown head 'aspect_terms'" in res.output and "senti_aspects" in res.output
