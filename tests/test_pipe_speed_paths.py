"""``senti_transformer``: nlp.pipe batched by wordpiece count, with the stock outputs."""

from __future__ import annotations

import random

import numpy as np
import pytest
import spacy

from spacy_senti.components.transformer import (
    SentiTransformer,
    WordpieceCounter,
    batch_by_padded_size,
    split_by_doc,
)
from spacy_senti.errors import ConfigError

LONG = " ".join(["the food was great but the service was awful and slow"] * 40)
TEXTS = [
    "i loved the food",
    "",
    "awful service, never again!!! http://t.co/xyz #fail",
    "   ",
    LONG,
    "zzqx unknownish wordpieces everywhere: supercalifragilistic",
    "not bad",
    "The plot was boring; the staff were very happy though.",
    "a",
    "emoji 😀 and tabs\tand\nnewlines",
] * 3

SENTI = {"components": {"transformer": {"factory": "senti_transformer"}}}


@pytest.fixture(scope="module")
def pipelines(multitask_pipeline):
    """The same saved pipeline with the stock ``transformer`` and with ``senti_transformer``
    (a small wordpiece budget, so the 30 texts need many sub-batches; the component's saved
    cfg, read by from_disk, wins over a config override, as in spacy-transformers)."""
    senti = spacy.load(multitask_pipeline, config=SENTI)
    senti.get_pipe("transformer").cfg["max_batch_items"] = 96
    return spacy.load(multitask_pipeline), senti


def _views(doc):
    return (doc.text, dict(doc.cats), doc._.sentiment, doc._.sentiment_scores,
            doc._.emotions, doc._.emotion_labels, doc._.aspects, doc._.aspect_scores)


def _assert_same(doc_a, doc_b, tol=1e-6):
    assert doc_a.text == doc_b.text
    assert set(doc_a.cats) == set(doc_b.cats)
    for key, value in doc_a.cats.items():
        assert doc_b.cats[key] == pytest.approx(value, abs=tol), key
    assert doc_a._.sentiment == doc_b._.sentiment
    assert doc_a._.emotion_labels == doc_b._.emotion_labels
    assert doc_a._.aspects == doc_b._.aspects


def test_senti_transformer_predicts_what_the_stock_transformer_predicts(pipelines):
    stock, senti = pipelines
    assert isinstance(senti.get_pipe("transformer"), SentiTransformer)
    expected = list(stock.pipe(TEXTS, batch_size=4))
    got = list(senti.pipe(TEXTS, batch_size=64))
    assert [d.text for d in got] == TEXTS  # order kept across sorted sub-batches
    for doc_a, doc_b in zip(expected, got):
        _assert_same(doc_a, doc_b)
        assert doc_a._.trf_data.wordpieces.input_ids.shape[0] == (
            doc_b._.trf_data.wordpieces.input_ids.shape[0])
    assert not got[1].cats  # an empty doc stays unannotated
    assert len(got[4]._.trf_data.wordpieces.lengths) > 1  # the long doc: strided spans


def test_pipe_equals_call_and_other_buffer_sizes(pipelines):
    _, senti = pipelines
    single = [senti(t) for t in TEXTS[:10]]
    for batch_size in (1, 7, 1000):
        for doc_a, doc_b in zip(single, senti.pipe(TEXTS[:10], batch_size=batch_size)):
            _assert_same(doc_a, doc_b)


def test_saved_senti_transformer_loads_and_predicts_the_same(pipelines, tmp_path):
    _, senti = pipelines
    senti.to_disk(tmp_path / "pipe")
    loaded = spacy.load(tmp_path / "pipe")
    assert isinstance(loaded.get_pipe("transformer"), SentiTransformer)
    assert loaded.get_pipe("transformer").cfg["max_batch_items"] == 96
    for doc_a, doc_b in zip(senti.pipe(TEXTS), loaded.pipe(TEXTS)):
        _assert_same(doc_a, doc_b, tol=0.0)


def test_split_by_doc_matches_spacy_transformers(pipelines):
    stock, _ = pipelines
    trf = stock.get_pipe("transformer")
    docs = [stock.make_doc(t) for t in TEXTS[:10]]
    docs.append(docs[0])  # the same Doc twice in one batch
    batch = trf.predict(docs)
    expected = batch.split_by_doc()
    got = split_by_doc(batch)
    assert len(got) == len(expected)
    for a, b in zip(expected, got):
        assert np.array_equal(a.wordpieces.input_ids, b.wordpieces.input_ids)
        assert a.wordpieces.strings == b.wordpieces.strings
        assert a.wordpieces.lengths == b.wordpieces.lengths
        assert np.array_equal(a.align.data, b.align.data)
        assert np.array_equal(a.align.lengths, b.align.lengths)
        assert set(a.model_output) == set(b.model_output)
        for key in a.model_output:
            assert np.array_equal(a.model_output[key], b.model_output[key])


def test_wordpiece_counter_counts_the_model_wordpieces(pipelines):
    stock, _ = pipelines
    model = stock.get_pipe("transformer").model
    tokenizer = model.tokenizer
    texts = ["i loved the food", "not bad at all", "", "the plot was boring", LONG]
    docs = [stock.make_doc(t) for t in texts]
    sizes = WordpieceCounter().sizes(model, docs)
    spans = model.attrs["get_spans"](docs)
    for doc_spans, (n_spans, longest) in zip(spans, sizes, strict=True):
        assert n_spans == len(doc_spans)
        exact = [len(tokenizer(s.text)["input_ids"]) for s in doc_spans]
        assert longest == max(exact, default=0)


def test_wordpiece_counter_needs_an_initialised_model(tiny_bert):
    from helpers import MULTITASK_TEXTCAT_ONLY, load_config, nlp_from_config

    import spacy_senti.components.transformer  # noqa: F401

    config = load_config("multitask", tiny_bert, **MULTITASK_TEXTCAT_ONLY)
    config["components"]["transformer"]["factory"] = "senti_transformer"
    nlp = nlp_from_config(config)
    trf = nlp.get_pipe("transformer")
    assert WordpieceCounter().sizes(trf.model, [nlp.make_doc("hello")]) is None
    # before initialisation the batches are spacy-transformers' (by spaCy token count)
    docs = [nlp.make_doc(t) for t in ("a b c", "a", "a b")]
    assert sorted(i for b in trf.batch_indices(docs) for i in b) == [0, 1, 2]


def test_batch_by_padded_size_covers_every_doc_within_the_budget():
    rng = random.Random(0)
    sizes = [(rng.choice([0, 1, 1, 1, 2, 3]), rng.randint(0, 80)) for _ in range(500)]
    sizes = [(n, 0 if n == 0 else longest) for n, longest in sizes]
    batches = batch_by_padded_size(sizes, 256)
    assert sorted(i for b in batches for i in b) == list(range(len(sizes)))
    for batch in batches:
        assert batch == sorted(batch)
        cost = sum(sizes[i][0] for i in batch) * max(sizes[i][1] for i in batch)
        assert cost <= 256 or len(batch) == 1
    longest = [max(sizes[i][1] for i in b) for b in batches]
    shortest = [min(sizes[i][1] for i in b) for b in batches]
    assert all(hi <= lo for hi, lo in zip(longest, shortest[1:]))  # sorted by length
    assert batch_by_padded_size([], 10) == []
    assert batch_by_padded_size([(1, 50)], 10) == [[0]]  # an oversize doc gets its own batch


@pytest.mark.parametrize("bad", [0, -5])
def test_max_batch_items_must_be_a_positive_int(multitask_pipeline, bad):
    config = {"components": {"transformer": {"factory": "senti_transformer",
                                             "max_batch_items": bad}}}
    with pytest.raises(ConfigError, match="max_batch_items"):
        spacy.load(multitask_pipeline, config=config)
