"""ONNX export of senti_aspects (issue 15): term spans and polarities equal to the torch
pipeline, token rows aligned like spacy-transformers, int8, and exports without aspects."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import spacy
from helpers import (
    ASPECT_ROWS,
    aspect_examples,
    build_aspects_pipeline,
    load_config,
    nlp_from_config,
)

import spacy_senti.onnx.export as export_module
from spacy_senti.errors import ExportError
from spacy_senti.onnx import MANIFEST, SentiOnnx
from spacy_senti.onnx.export import doc_tokens, export_onnx
from spacy_senti.onnx.runner import ASPECT_FILE, MODEL_FP32
from spacy_senti.util import load_pipeline

KEY = "aspects"
LONG = " ".join(text for text, _, _ in ASPECT_ROWS * 8)  # ~260 tokens: three 128-token windows
# Texts whose token rows are easy to get wrong: whitespace tokens (no wordpieces), an emoji
# ([UNK]), accents the tokenizer strips, punctuation and contractions, a long doc.
HARD_TEXTS = [
    "",
    "   ",
    "the  food   was great",
    "the waiter \U0001f600 was rude!!",
    "Caf\u00e9 na\u00efve: don't touch the pad-thai, it's (really) awful...",
    "THE PRICE WAS TERRIBLE",
    LONG,
]
TEXTS = [text for text, _, _ in ASPECT_ROWS] + HARD_TEXTS


@pytest.fixture(scope="module")
def torch_nlp(aspects_pipeline):
    return load_pipeline(aspects_pipeline)


@pytest.fixture(scope="module")
def exported(torch_nlp, tmp_path_factory) -> Path:
    return export_onnx(torch_nlp, tmp_path_factory.mktemp("onnx_aspects"), quantize="int8")


def terms(doc) -> list[tuple[int, int, str]]:
    return [(s.start, s.end, s.label_) for s in doc.spans[KEY]]


def assert_same_aspects(ref, doc, tol: float = 1e-4) -> None:
    assert terms(doc) == terms(ref), doc.text
    assert np.allclose(doc.spans[KEY].attrs["scores"], ref.spans[KEY].attrs["scores"], atol=tol)
    for span, ref_span in zip(doc.spans[KEY], ref.spans[KEY]):
        assert span._.polarity_scores.keys() == ref_span._.polarity_scores.keys()
        assert span._.polarity_scores == pytest.approx(ref_span._.polarity_scores, abs=tol)
    assert len(doc._.aspect_terms) == len(ref._.aspect_terms)
    for got, want in zip(doc._.aspect_terms, ref._.aspect_terms):
        assert {k: v for k, v in got.items() if k != "score"} == \
            {k: v for k, v in want.items() if k != "score"}
        assert got["score"] == pytest.approx(want["score"], abs=tol)


def test_manifest_records_the_aspects_part(exported, torch_nlp):
    info = json.loads((exported / MANIFEST).read_text())
    aspects = torch_nlp.get_pipe("senti_aspects")
    part = info["aspects"]
    assert part["spans_key"] == KEY
    assert part["labels"] == list(aspects.labels)
    assert part["tags"] == ["O", "B", "I"]
    assert part["local_window"] == aspects.model.attrs["local_window"]
    assert (exported / part["weights"]).exists() and part["weights"] == ASPECT_FILE
    assert part["parity"]["span_agreement"] == 1.0
    assert part["parity"]["polarity_max_abs"] <= part["parity"]["tolerance"]
    assert 0.0 <= info["int8"]["aspects"]["span_agreement"] <= 1.0
    assert "hidden" in info["outputs"] and info["heads"][0]["name"] == "sentiment"
    outputs = [o.name for o in ort.InferenceSession(str(exported / MODEL_FP32)).get_outputs()]
    assert outputs == ["logits", "pooled", "pool_logw", "hidden"]


def test_fp32_load_pipeline_gives_the_same_terms(exported, torch_nlp, tmp_path):
    onnx_nlp = load_pipeline(exported, allow_onnx=True, variant="fp32")
    refs = list(torch_nlp.pipe(TEXTS))
    docs = list(onnx_nlp.pipe(TEXTS))
    for (_, gold, _), doc in zip(ASPECT_ROWS, docs):
        assert terms(doc) == gold  # the fixture is overfitted: the gold terms come back
    for ref, doc in zip(refs, docs):
        assert_same_aspects(ref, doc)
        assert doc.cats == pytest.approx(ref.cats, abs=1e-4)
    assert docs[TEXTS.index("")]._.aspect_terms == [] and len(docs[TEXTS.index("")].spans[KEY]) == 0
    assert docs[2]._.aspect_terms == []  # "we came here on a friday": no term
    assert any(len(doc.spans[KEY]) for doc in docs[-1:])  # the long doc has terms
    single = onnx_nlp(ASPECT_ROWS[0][0])  # __call__ == pipe
    assert_same_aspects(docs[0], single, tol=1e-6)
    onnx_nlp.to_disk(tmp_path / "pipe")
    assert_same_aspects(docs[0], spacy.load(tmp_path / "pipe")(ASPECT_ROWS[0][0]), tol=1e-6)


def test_token_rows_match_the_listener(exported, torch_nlp):
    """Wordpieces averaged per spaCy token over every window, as spacy-transformers does."""
    runner = SentiOnnx(exported, variant="fp32", threads=1)
    with torch_nlp.select_pipes(enable=["transformer"]):
        docs = list(torch_nlp.pipe(TEXTS))
    expected = torch_nlp.get_pipe("senti_aspects").model.get_ref("tok2vec").predict(docs)
    _, rows = runner.predict_docs([doc_tokens(doc) for doc in docs])
    assert len(docs[-1]) > 2 * 128 - 96  # three windows
    for doc, want, got in zip(docs, expected, rows):
        assert got.shape == (len(doc), runner.aspects.width)
        if len(doc):  # the listener's rows of an empty doc have width 0
            assert np.abs(got - want).max() <= 1e-5, doc.text


def test_int8_exports_and_runs(exported, torch_nlp):
    runner = SentiOnnx(exported, threads=1)
    assert runner.variant == "int8" and runner.aspects is not None
    onnx_nlp = load_pipeline(exported, allow_onnx=True)
    for doc in onnx_nlp.pipe(TEXTS):
        assert len(doc._.aspect_terms) == len(doc.spans[KEY])
        for span, term in zip(doc.spans[KEY], doc._.aspect_terms):
            assert sum(span._.polarity_scores.values()) == pytest.approx(1.0, abs=1e-5)
            assert term["text"] == span.text and term["polarity"] == span.label_
            assert term["polarity"] in runner.aspects.labels


def test_aspects_only_pipeline_exports(tiny_bert, tmp_path):
    """senti_aspects without senti_textcat: no heads, the encoder's states only."""
    path = build_aspects_pipeline(tiny_bert, tmp_path / "model", with_textcat=False)
    nlp = load_pipeline(path)
    out = export_onnx(nlp, tmp_path / "onnx")
    info = json.loads((out / MANIFEST).read_text())
    assert info["heads"] == [] and info["n_outputs"] == 0 and list(info["outputs"]) == ["hidden"]
    assert not (out / "heads.npz").exists()
    onnx_nlp = load_pipeline(out, allow_onnx=True)
    for ref, doc in zip(nlp.pipe(TEXTS), onnx_nlp.pipe(TEXTS)):
        assert_same_aspects(ref, doc)
        assert doc.cats == {}
    assert SentiOnnx(out).predict(["i love the staff"]) == [{"cats": {}, "heads": {}}]


def test_pipeline_without_aspects_exports_as_before(sentiment_pipeline, tmp_path):
    out = export_onnx(load_pipeline(sentiment_pipeline), tmp_path / "onnx")
    info = json.loads((out / MANIFEST).read_text())
    assert "aspects" not in info and "hidden" not in info["outputs"]
    assert not (out / ASPECT_FILE).exists()
    outputs = [o.name for o in ort.InferenceSession(str(out / MODEL_FP32)).get_outputs()]
    assert outputs == ["logits", "pooled", "pool_logw"]
    runner = SentiOnnx(out)
    assert runner.aspects is None
    probs, rows = runner.predict_docs([("a fine film", [(0, 1), (2, 6), (7, 11)]), ("", [])])
    assert rows is None and probs.shape == (2, runner.info["n_outputs"]) and not probs[1].any()
    doc = load_pipeline(out, allow_onnx=True)("a fine film")
    assert KEY not in doc.spans and doc.cats


def test_parity_failure_is_refused_and_writes_no_manifest(torch_nlp, tmp_path, monkeypatch):
    """A wrong polarity head (shifted biases) must not be exported silently."""
    real = export_module.aspect_params

    def broken(aspects):
        params, info = real(aspects)
        params["polarity_b"] = params["polarity_b"] + np.arange(len(params["polarity_b"]))
        return params, info

    monkeypatch.setattr(export_module, "aspect_params", broken)
    with pytest.raises(ExportError, match="senti_aspects component 'senti_aspects'"):
        export_onnx(torch_nlp, tmp_path / "onnx")
    assert not (tmp_path / "onnx" / MANIFEST).exists()


def test_unsupported_listener_pooling_is_refused(tiny_bert, tmp_path):
    config = load_config("aspect_terms", tiny_bert)
    config["components"]["senti_aspects"]["model"]["tok2vec"]["pooling"] = {
        "@layers": "reduce_max.v1"}
    nlp = nlp_from_config(config)
    examples = aspect_examples(nlp)
    nlp.initialize(get_examples=lambda: examples)
    with pytest.raises(ExportError, match="token rows of the senti_aspects.*reduce_max"):
        export_onnx(nlp, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


@pytest.mark.parametrize("text", [t for t in TEXTS if t] + [
    "don't", "(really)awful", "pad-thai,great", "a\u00a0b  c\n\nd", "\U0001f600\U0001f600x"])
def test_window_alignment_equals_spacy_transformers(text, tiny_bert):
    """Same (token, wordpiece) pairs as spacy-transformers' offset-mapping alignment."""
    from spacy_transformers.align import get_alignment_via_offset_mapping
    from transformers import AutoTokenizer

    from spacy_senti.onnx.aspects import window_alignment

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    doc = spacy.blank("en")(text)
    offsets = tokenizer([doc[:].text], return_offsets_mapping=True)["offset_mapping"][0]
    align = get_alignment_via_offset_mapping([doc[:]], np.asarray([offsets]))
    expected = sorted((t, int(j)) for t in range(len(doc)) for j in align[t].dataXd.ravel())
    tokens, pieces = window_alignment(doc_tokens(doc)[1], len(text), np.asarray(offsets))
    assert list(zip(tokens.tolist(), pieces.tolist())) == expected


def test_aspect_runner_parts_import_no_torch():
    """The exported tagger/polarity runner and its BIO/pooling helpers stay numpy-only."""
    code = (
        "import sys\n"
        "import spacy_senti.onnx.aspects, spacy_senti.models.aspect_spans\n"
        "bad = [m for m in ('torch', 'spacy', 'thinc', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
