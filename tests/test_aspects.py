"""The spaCy battery for senti_aspects: overfit, IO, pipe == call, one encoder pass, edge
docs, masked training, errors, the scorer by hand, BIO coding, pooling weights and the
span feature gradient."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import numpy as np
import pytest
import spacy
from helpers import (
    ASPECT_ROWS,
    aspect_doc,
    aspect_examples,
    build_aspects_pipeline,
    load_config,
    nlp_from_config,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from spacy import displacy
from spacy.training import Example
from thinc.api import NumpyOps

from spacy_senti.components.aspects import SentiAspects
from spacy_senti.errors import ConfigError
from spacy_senti.evaluation.aspect_scorer import gold_and_predicted_terms, score_aspect_terms
from spacy_senti.models.aspects import (
    N_POOLS,
    decode_bio,
    encode_bio,
    pooling_weights,
    span_features,
)

TEXTS = [row[0] for row in ASPECT_ROWS]
UNSEEN = ["the waiter was great", "awful price but i love the pad thai", "the staff"]
LONG = " ".join(["the price was terrible and i love the staff"] * 45)  # 405 tokens


@pytest.fixture(scope="module")
def nlp(aspects_pipeline):
    return spacy.load(aspects_pipeline)


@pytest.fixture(scope="module")
def aspects_only(tiny_bert, tmp_path_factory):
    """transformer + senti_aspects (no senti_textcat), overfitted on ASPECT_ROWS."""
    path = tmp_path_factory.mktemp("aspects_only") / "model"
    return spacy.load(build_aspects_pipeline(tiny_bert, path, with_textcat=False))


NO_DROPOUT = {"components.transformer.model.transformer_config": {
    "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}}


@pytest.fixture()
def fresh(tiny_bert):
    """An initialised, untrained transformer + senti_aspects pipeline, without the
    backbone's own dropout (so two updates on the same docs see the same rows)."""
    nlp = nlp_from_config(load_config("aspect_terms", tiny_bert, **NO_DROPOUT))
    examples = aspect_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    return nlp


def terms_of(doc, key: str = "aspects") -> list[tuple[int, int, str]]:
    return [(s.start, s.end, s.label_) for s in doc.spans[key]]


def predictions(docs) -> list[dict]:
    """Everything senti_aspects writes, per doc, for comparisons."""
    out = []
    for doc in docs:
        group = doc.spans["aspects"]
        out.append({
            "terms": terms_of(doc),
            "tag_scores": np.asarray(group.attrs["scores"], dtype=float),
            "polarity": np.asarray([list(s._.polarity_scores.values()) for s in group],
                                   dtype=float),
            "aspect_terms": [{k: v for k, v in t.items() if k != "score"}
                             for t in doc._.aspect_terms],
            "term_scores": np.asarray([t["score"] for t in doc._.aspect_terms], dtype=float),
        })
    return out


def assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x["terms"] == y["terms"] and x["aspect_terms"] == y["aspect_terms"]
        for key in ("tag_scores", "polarity", "term_scores"):
            np.testing.assert_allclose(x[key], y[key], atol=1e-6)


# --- overfitting and what is written ------------------------------------------------------
def check_overfit(nlp) -> None:
    pipe = nlp.get_pipe("senti_aspects")
    assert isinstance(pipe, SentiAspects)
    assert pipe.labels == ("negative", "neutral", "positive")
    for doc, (text, gold, _) in zip(nlp.pipe(TEXTS), ASPECT_ROWS):
        assert terms_of(doc) == gold, text
        group = doc.spans[pipe.spans_key]
        assert len(group.attrs["scores"]) == len(group)
        assert all(0.5 < s <= 1.0 for s in group.attrs["scores"])
        assert len(doc._.aspect_terms) == len(group)
        for span, term in zip(group, doc._.aspect_terms):
            scores = span._.polarity_scores
            assert list(scores) == list(pipe.labels)
            assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
            assert max(scores, key=scores.get) == span.label_ == term["polarity"]
            assert term["score"] == pytest.approx(scores[span.label_])
            assert (term["start"], term["end"]) == (span.start_char, span.end_char)
            assert term["text"] == span.text == doc.text[term["start"]:term["end"]]


def test_overfit_with_textcat(nlp):
    assert nlp.pipe_names == ["transformer", "senti_textcat", "senti_aspects"]
    check_overfit(nlp)
    doc = nlp(TEXTS[1])
    assert doc._.sentiment == "negative"


def test_overfit_aspects_alone(aspects_only):
    assert aspects_only.pipe_names == ["transformer", "senti_aspects"]
    check_overfit(aspects_only)
    assert aspects_only(TEXTS[0]).cats == {}
    scores = aspects_only.evaluate(aspect_examples(aspects_only))
    assert scores["aspect_terms_f"] == 1.0 and scores["aspect_polarity_acc"] == 1.0
    assert not any(k.startswith(("senti_", "cats_")) for k in scores)


def test_evaluate_on_fixture(nlp):
    scores = nlp.evaluate(aspect_examples(nlp, with_sentiment=True))
    assert scores["aspect_terms_f"] == 1.0
    assert scores["aspect_pairs_f"] == 1.0
    assert scores["aspect_polarity_acc"] == 1.0
    assert scores["aspect_polarity_macro_f"] == 1.0
    assert scores["aspect_polarity_on"] == "gold terms"
    assert scores["aspect_terms_n_gold"] == scores["aspect_terms_n_pred"] == 6
    assert scores["senti_sentiment_acc"] == 1.0


# --- IO and batching ---------------------------------------------------------------------
def test_to_disk_from_disk_identical(nlp, tmp_path):
    texts = TEXTS + UNSEEN
    before = predictions(nlp.pipe(texts))
    nlp.to_disk(tmp_path / "copy")
    loaded = spacy.load(tmp_path / "copy")
    assert loaded.get_pipe("senti_aspects").labels == nlp.get_pipe("senti_aspects").labels
    assert loaded.get_pipe("senti_aspects").spans_key == "aspects"
    assert_same(before, predictions(loaded.pipe(texts)))


def test_to_bytes_from_bytes_identical(aspects_only):
    texts = TEXTS + UNSEEN
    copy = spacy.util.load_model_from_config(aspects_only.config, auto_fill=False)
    copy.from_bytes(aspects_only.to_bytes())
    assert_same(predictions(aspects_only.pipe(texts)), predictions(copy.pipe(texts)))


def test_pipe_equals_call(nlp):
    texts = TEXTS + UNSEEN + [LONG]
    assert_same(predictions(nlp.pipe(texts, batch_size=3)), predictions(nlp(t) for t in texts))


def _count_encoder_calls(nlp):
    hf_model = nlp.get_pipe("transformer").model.transformer
    calls = [0]

    def hook(*_):
        calls[0] += 1

    return calls, hf_model.register_forward_hook(hook)


def test_one_encoder_pass_for_both_components(nlp):
    calls, handle = _count_encoder_calls(nlp)
    try:
        nlp(TEXTS[0])
        assert calls[0] == 1
        counts = {}
        for disabled in ([], ["senti_aspects"], ["senti_textcat"]):
            calls[0] = 0
            with nlp.select_pipes(disable=disabled):
                docs = list(nlp.pipe(TEXTS + UNSEEN, batch_size=3))
            counts[tuple(disabled)] = calls[0]
            assert all(doc._.trf_data is not None for doc in docs)
    finally:
        handle.remove()
    # 9 texts in batches of 3: one encoder call per batch whatever listens to it
    assert counts[()] == counts[("senti_aspects",)] == counts[("senti_textcat",)] == 3


# --- edge docs ---------------------------------------------------------------------------
def test_empty_doc_alone(nlp):
    doc = nlp("")
    assert len(doc.spans["aspects"]) == 0 and doc._.aspect_terms == []


def test_evaluate_empty_docs(nlp):
    scores = nlp.evaluate([Example(nlp.make_doc(""), aspect_doc(nlp, "", []))])
    assert scores["aspect_terms_n_gold"] == scores["aspect_terms_n_pred"] == 0
    assert scores["aspect_terms_f"] is None and scores["aspect_polarity_acc"] is None


def test_empty_doc_in_a_batch(nlp):
    empty, full = nlp.pipe(["", TEXTS[1]])
    assert len(empty.spans["aspects"]) == 0 and empty.spans["aspects"].attrs["scores"] == []
    assert empty._.aspect_terms == []
    assert terms_of(full) == ASPECT_ROWS[1][1]


def test_long_doc_over_several_windows(nlp):
    doc = nlp(LONG)
    assert len(doc) == 405
    assert doc._.trf_data.wordpieces.input_ids.shape[0] > 1  # more than one 128-token window
    spans = [(s.start, s.end) for s in doc.spans["aspects"]]
    assert spans, "the repeated training sentence has terms"
    assert all(0 <= a < b <= len(doc) for a, b in spans)
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))  # sorted, no overlap
    assert len(doc._.aspect_terms) == len(spans)
    assert all(doc.text[t["start"]:t["end"]] == t["text"] for t in doc._.aspect_terms)


def test_sentence_without_aspects(nlp):
    doc = nlp("we came here on a friday")
    assert len(doc.spans["aspects"]) == 0 and doc._.aspect_terms == []


def test_displacy_span_render(nlp):
    html = displacy.render(nlp(TEXTS[0]), style="span", options={"spans_key": "aspects"})
    for piece in ("pad", "thai", "waiter", "positive", "negative"):
        assert piece in html


# --- training ----------------------------------------------------------------------------
def _aspect_grads(nlp) -> list[np.ndarray]:
    model = nlp.get_pipe("senti_aspects").model
    grads = []
    for name in ("tagger", "polarity"):
        for node in model.get_ref(name).walk():
            for param in node.param_names:
                if node.has_grad(param):
                    grads.append(np.asarray(node.get_grad(param)))
    return grads


def test_unannotated_docs_are_masked(fresh):
    unannotated = [Example(fresh.make_doc(t), fresh.make_doc(t)) for t in UNSEEN]
    losses = fresh.update(unannotated, sgd=False, drop=0.0)
    assert losses["senti_aspects"] == 0.0
    assert all(not g.any() for g in _aspect_grads(fresh))
    annotated = aspect_examples(fresh)
    alone = fresh.update(annotated, sgd=False, drop=0.0)["senti_aspects"]
    mixed = fresh.update(annotated + unannotated, sgd=False, drop=0.0)["senti_aspects"]
    assert alone > 0
    assert mixed == pytest.approx(alone, rel=1e-4)


def test_update_with_an_empty_annotated_doc(fresh):
    annotated = aspect_examples(fresh)
    alone = fresh.update(annotated, sgd=False, drop=0.0)["senti_aspects"]
    empty = Example(fresh.make_doc(""), aspect_doc(fresh, "", []))
    mixed = fresh.update([empty, *annotated], sgd=False, drop=0.0)["senti_aspects"]
    assert mixed == pytest.approx(alone, rel=1e-4)


def test_unknown_gold_polarity_at_update(fresh):
    bad = Example(fresh.make_doc("the staff was odd"),
                  aspect_doc(fresh, "the staff was odd", [(1, 2, "conflict")]))
    with pytest.raises(ConfigError, match="'conflict' is not a label of senti_aspects"):
        fresh.update([bad], sgd=False)


@pytest.mark.parametrize("case", ["no_group", "empty_groups"])
def test_initialize_without_gold_terms(tiny_bert, case):
    nlp = nlp_from_config(load_config("aspect_terms", tiny_bert))
    if case == "no_group":
        examples = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in TEXTS]
    else:
        examples = [Example(nlp.make_doc(t), aspect_doc(nlp, t, [])) for t in TEXTS]
    with pytest.raises(ConfigError, match="found no labelled aspect terms"):
        nlp.initialize(get_examples=lambda: examples)


# --- the scorer by hand ------------------------------------------------------------------
@pytest.fixture(scope="module")
def blank():
    return spacy.blank("en")


def scorer_examples(blank) -> list[Example]:
    text1 = "the food was great but the service was slow"
    gold1 = [(1, 2, "positive"), (6, 7, "negative")]
    pred1 = [(1, 2, "positive"), (6, 7, "positive"), (8, 9, "negative")]
    text2 = "nice staff"
    unannotated = blank("the menu was fine")
    unannotated_pred = aspect_doc(blank, "the menu was fine", [(1, 2, "positive")])
    return [
        Example(aspect_doc(blank, text1, pred1), aspect_doc(blank, text1, gold1)),
        Example(aspect_doc(blank, text2, [(0, 2, "positive")]),
                aspect_doc(blank, text2, [(1, 2, "positive")])),
        Example(unannotated_pred, unannotated),  # not annotated for terms: left out
    ]


def test_gold_and_predicted_terms(blank):
    pairs = gold_and_predicted_terms(scorer_examples(blank))
    assert pairs[0] == ({(4, 8, "positive"), (27, 34, "negative")},
                        {(4, 8, "positive"), (27, 34, "positive"), (39, 43, "negative")})
    assert pairs[1] == ({(5, 10, "positive")}, {(0, 10, "positive")})
    assert len(pairs) == 2


def test_scorer_by_hand_on_extracted_gold_terms(blank):
    scores = score_aspect_terms(scorer_examples(blank),
                                labels=["negative", "neutral", "positive"])
    # 3 gold terms, 4 predicted, 2 spans right (food, service), 1 pair right (food positive)
    assert (scores["aspect_terms_n_gold"], scores["aspect_terms_n_pred"]) == (3, 4)
    assert scores["aspect_terms_p"] == pytest.approx(2 / 4)
    assert scores["aspect_terms_r"] == pytest.approx(2 / 3)
    assert scores["aspect_terms_f"] == pytest.approx(4 / 7)
    assert scores["aspect_pairs_p"] == pytest.approx(1 / 4)
    assert scores["aspect_pairs_r"] == pytest.approx(1 / 3)
    assert scores["aspect_pairs_f"] == pytest.approx(2 / 7)
    # polarity on the 2 gold terms found: food pos->pos, service neg->pos
    assert scores["aspect_polarity_on"] == "extracted gold terms"
    assert scores["aspect_polarity_acc"] == pytest.approx(0.5)
    # negative: p=r=f=0; positive: p=1/2, r=1, f=2/3; neutral absent -> macro over 2
    assert scores["aspect_polarity_macro_f"] == pytest.approx(1 / 3)
    assert scores["aspect_polarity_per_type"] == {
        "negative": {"p": 0.0, "r": 0.0, "f": 0.0},
        "positive": {"p": 0.5, "r": 1.0, "f": pytest.approx(2 / 3)},
    }


def test_scorer_by_hand_on_gold_terms(blank):
    given_ = [("positive", "positive"), ("negative", "negative"), ("positive", "negative")]
    scores = score_aspect_terms(scorer_examples(blank), gold_term_polarities=given_,
                                labels=["negative", "neutral", "positive"])
    assert scores["aspect_polarity_on"] == "gold terms"
    assert scores["aspect_polarity_acc"] == pytest.approx(2 / 3)
    # negative: p=1/2, r=1, f=2/3; positive: p=1, r=1/2, f=2/3
    assert scores["aspect_polarity_macro_f"] == pytest.approx(2 / 3)
    assert scores["aspect_polarity_per_type"]["negative"] == {
        "p": 0.5, "r": 1.0, "f": pytest.approx(2 / 3)}
    assert scores["aspect_terms_f"] == pytest.approx(4 / 7)  # unchanged by the polarity source


def test_scorer_none_when_nothing_to_score(blank):
    unannotated = Example(blank("the menu"), blank("the menu"))
    scores = score_aspect_terms([unannotated])
    for key in ("terms_p", "terms_r", "terms_f", "pairs_f", "polarity_acc",
                "polarity_macro_f"):
        assert scores[f"aspect_{key}"] is None, key
    assert scores["aspect_polarity_per_type"] == {}
    # annotated, no gold terms, one predicted: precision 0, recall undefined
    pred = aspect_doc(blank, "the menu", [(1, 2, "positive")])
    scores = score_aspect_terms([Example(pred, aspect_doc(blank, "the menu", []))],
                                gold_term_polarities=[])
    assert scores["aspect_terms_p"] == 0.0
    assert scores["aspect_terms_r"] is None and scores["aspect_terms_f"] is None
    assert scores["aspect_polarity_acc"] is None
    # gold terms, nothing predicted: 0, not None
    scores = score_aspect_terms([Example(blank("the menu"),
                                         aspect_doc(blank, "the menu", [(1, 2, "neutral")]))])
    assert (scores["aspect_terms_p"], scores["aspect_terms_r"]) == (0.0, 0.0)
    assert scores["aspect_terms_f"] == 0.0
    assert scores["aspect_polarity_acc"] is None  # no gold term was extracted


def test_component_score_uses_the_registered_scorer(nlp):
    pipe = nlp.get_pipe("senti_aspects")
    examples = aspect_examples(nlp)
    for eg, doc in zip(examples, nlp.pipe(TEXTS)):
        eg.predicted = doc
    scores = pipe.score(examples)
    assert scores["aspect_polarity_on"] == "gold terms"
    assert scores["aspect_pairs_f"] == 1.0


# --- BIO coding --------------------------------------------------------------------------
def test_decode_bio_cases():
    assert decode_bio([]) == []
    assert decode_bio([0, 1, 2, 0, 1]) == [(1, 3), (4, 5)]
    assert decode_bio([0, 2, 2, 0]) == [(1, 3)]  # an I after O starts a term
    assert decode_bio([2, 0, 2]) == [(0, 1), (2, 3)]
    assert decode_bio([1, 1, 2]) == [(0, 1), (1, 3)]  # B after B: a new term


def test_encode_bio_overlapping_gold():
    # the earlier-starting span wins; (1, 3) overlaps (0, 2) and is dropped
    assert encode_bio(6, [(1, 3), (0, 2), (3, 5)]).tolist() == [1, 2, 0, 1, 2, 0]
    assert encode_bio(3, [(0, 3), (1, 2)]).tolist() == [1, 2, 2]
    assert encode_bio(3, [(2, 2)]).tolist() == [0, 0, 0]  # empty span ignored


@st.composite
def disjoint_spans(draw, max_tokens: int = 30):
    n = draw(st.integers(0, max_tokens))
    cuts = sorted(draw(st.sets(st.integers(0, n), max_size=12)))
    pairs = list(zip(cuts[::2], cuts[1::2]))
    return n, [(a, b) for a, b in pairs if a < b]


@settings(max_examples=200, deadline=None)
@given(disjoint_spans())
def test_bio_round_trip(case):
    n, spans = case
    assert decode_bio(encode_bio(n, spans).tolist()) == sorted(spans)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2), max_size=30))
def test_decode_then_encode_normalises_tags(tags):
    spans = decode_bio(tags)
    assert all(0 <= a < b <= len(tags) for a, b in spans)
    assert all(b <= c for (_, b), (c, _) in zip(spans, spans[1:]))
    again = encode_bio(len(tags), spans).tolist()
    # only an I after O changes (to B); every token keeps whether it is inside a term
    assert [t > 0 for t in again] == [t > 0 for t in tags]
    assert decode_bio(again) == spans


# --- pooling weights and span features ---------------------------------------------------
@st.composite
def pooling_case(draw):
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 4))
    spans = []
    for _ in range(k):
        start = draw(st.integers(0, n - 1))
        spans.append((start, draw(st.integers(start + 1, n))))
    return n, spans, draw(st.integers(0, 6))


@settings(max_examples=200, deadline=None)
@given(pooling_case())
def test_pooling_weights_properties(case):
    n, spans, window = case
    weights = pooling_weights(n, spans, window)
    assert weights.shape == (N_POOLS * len(spans), n) and weights.dtype == np.float32
    assert (weights >= 0).all()
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-5)
    positions = np.arange(n)
    for j, (start, end) in enumerate(spans):
        term, local, sentence = weights[N_POOLS * j : N_POOLS * j + N_POOLS]
        inside = (positions >= start) & (positions < end)
        np.testing.assert_allclose(term[inside], 1.0 / (end - start), rtol=1e-6)
        assert not term[~inside].any()
        np.testing.assert_allclose(sentence, 1.0 / n, rtol=1e-6)
        distance = np.maximum(np.maximum(start - positions, positions - (end - 1)), 0)
        near = distance <= window
        np.testing.assert_allclose(local[near], local.max(), rtol=1e-6)  # full weight
        order = np.argsort(distance, kind="stable")
        assert (np.diff(local[order]) <= 1e-7).all()  # fades with distance


def test_pooling_weights_local_window_values():
    weights = pooling_weights(10, [(4, 5)], local_window=1)
    local = weights[1] * (1 / weights[1].max())  # undo the normalisation
    # distance 0..1 -> 1; beyond: 1 - (d - 1) / 10
    expected = [0.7, 0.8, 0.9, 1.0, 1.0, 1.0, 0.9, 0.8, 0.7, 0.6]
    np.testing.assert_allclose(local, expected, rtol=1e-5)
    assert pooling_weights(0, [(0, 0)], 3).shape == (3, 0)


def _doc_rows(rng, lengths, width):
    return [rng.normal(size=(n, width)).astype("float32") for n in lengths]


def test_span_features_values():
    ops = NumpyOps()
    rng = np.random.default_rng(0)
    rows = _doc_rows(rng, [6, 4], 5)
    spans = [[(1, 3), (5, 6)], [(0, 4)]]
    features, _ = span_features(ops, rows, spans, local_window=1)
    assert features.shape == (3, N_POOLS * 5)
    for row, (doc, (start, end)) in zip(features, [(0, spans[0][0]), (0, spans[0][1]),
                                                   (1, spans[1][0])]):
        x = rows[doc]
        local = pooling_weights(len(x), [(start, end)], 1)[1]
        np.testing.assert_allclose(row[:5], x[start:end].mean(axis=0), atol=1e-5)
        np.testing.assert_allclose(row[5:10], local @ x, atol=1e-5)
        np.testing.assert_allclose(row[10:], x.mean(axis=0), atol=1e-5)


def test_span_features_gradient_matches_finite_differences():
    ops = NumpyOps()
    rng = np.random.default_rng(1)
    rows = _doc_rows(rng, [6, 3, 0, 5], 4)
    spans = [[(0, 2), (3, 6)], [], [], [(2, 3)]]
    features, backprop = span_features(ops, rows, spans, local_window=1)
    d_features = rng.normal(size=features.shape).astype("float32")
    d_rows = backprop(d_features)
    assert [d.shape for d in d_rows] == [r.shape for r in rows]
    assert not d_rows[1].any()  # no span: no gradient

    def loss(doc_rows):
        out, _ = span_features(ops, doc_rows, spans, local_window=1)
        return float((np.asarray(out, dtype=float) * d_features).sum())

    eps = 1e-2
    for i, x in enumerate(rows):
        numeric = np.zeros_like(x, dtype=float)
        for index in np.ndindex(x.shape):
            plus = [r.copy() for r in rows]
            minus = [r.copy() for r in rows]
            plus[i][index] += eps
            minus[i][index] -= eps
            numeric[index] = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(d_rows[i], numeric, atol=2e-3)


# --- registry and entry points -----------------------------------------------------------
def test_registry_resolves_architecture_and_scorer():
    assert spacy.registry.architectures.get("spacy_senti.AspectTagger.v1") is not None
    scorer = spacy.registry.scorers.get("spacy_senti.aspects_scorer.v1")()
    assert scorer is score_aspect_terms


def test_entry_points_declared():
    groups = {
        "spacy_factories": ("senti_aspects",
                            "spacy_senti.components.aspects:make_senti_aspects"),
        "spacy_architectures": ("spacy_senti.AspectTagger.v1",
                                "spacy_senti.models.aspects:build_aspect_tagger"),
        "spacy_scorers": ("spacy_senti.aspects_scorer.v1",
                          "spacy_senti.evaluation.aspect_scorer:make_aspects_scorer"),
    }
    for group, (name, value) in groups.items():
        found = {ep.name: ep for ep in entry_points(group=group)}
        assert found[name].value == value
        assert callable(found[name].load())


def test_factory_found_without_importing_spacy_senti():
    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "pipe = nlp.add_pipe('senti_aspects')\n"
        "print(type(pipe).__name__, pipe.spans_key, nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert "SentiAspects aspects ['senti_aspects']" in out.stdout


def test_term_score_is_the_chosen_tags_confidence_even_for_a_term_opened_by_i():
    """A term the decoder opens with an I (after O) scores its tokens' chosen-tag
    probabilities, not P(B) (which was 0.3 here: the bug)."""
    from spacy_senti.components.aspects import AspectPrediction, set_aspect_annotations
    from spacy_senti.extensions import register_aspect_term_extensions

    register_aspect_term_extensions()
    doc = spacy.blank("en")("the pad thai was great")
    tags = np.array([[0.9, 0.05, 0.05],   # O
                     [0.1, 0.3, 0.6],     # I after O: opens the term
                     [0.2, 0.0, 0.8],     # I
                     [0.7, 0.2, 0.1],     # O
                     [0.9, 0.05, 0.05]], dtype="f")
    spans = decode_bio(tags.argmax(axis=1).tolist())
    assert spans == [(1, 3)]
    prediction = AspectPrediction([tags], [spans], [np.array([[0.1, 0.2, 0.7]], dtype="f")])
    set_aspect_annotations([doc], prediction, ["negative", "neutral", "positive"], "terms")
    group = doc.spans["terms"]
    assert [(s.text, s.label_) for s in group] == [("pad thai", "positive")]
    assert group.attrs["scores"] == [pytest.approx(0.7)]  # mean(0.6, 0.8)
    assert doc._.aspect_terms[0]["score"] == pytest.approx(0.7)  # the polarity's probability
