"""ONNX export: fp32 parity with senti_textcat, int8, the runner without torch, senti_onnx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import REPO, load_config, make_examples, nlp_from_config, train
from spacy_transformers.span_getters import get_strided_spans

from spacy_senti.errors import ConfigError, ExportError
from spacy_senti.onnx import MANIFEST, SentiOnnx
from spacy_senti.onnx.component import SentiOnnxTextCategorizer
from spacy_senti.onnx.export import export_onnx
from spacy_senti.onnx.runner import MODEL_FP32, MODEL_INT8, strided_windows

HEADS = {
    "sentiment": {"kind": "exclusive"},
    "emotion": {"kind": "multilabel", "thresholds": {"joy": 0.3}},
    "aspect": {"kind": "grouped"},
}
ROWS = [
    ("i loved this film", {"sentiment": "positive", "emotion": ["joy"], "aspect": {}}),
    ("the plot was awful", {"sentiment": "negative", "emotion": ["anger"], "aspect": {}}),
    ("great food but awful service",
     {"sentiment": "negative", "emotion": [], "aspect": {"food": "positive",
                                                        "service": "negative"}}),
    ("the food was great", {"sentiment": "positive", "emotion": ["joy"],
                            "aspect": {"food": "positive"}}),
]


def cats_for(ann: dict) -> dict[str, float]:
    cats = {f"sentiment/{lab}": float(lab == ann["sentiment"]) for lab in ("negative", "positive")}
    cats.update({f"emotion/{lab}": float(lab in ann["emotion"]) for lab in ("anger", "joy")})
    for group in ("food", "service"):
        for pol in ("absent", "negative", "positive"):
            cats[f"aspect/{group}/{pol}"] = float(ann["aspect"].get(group, "absent") == pol)
    return cats


def sst2_sentences(n: int) -> list[str]:
    lines = (REPO / "assets/sst2/test.tsv").read_text(encoding="utf8").splitlines()[1:]
    return [line.split("\t")[0] for line in lines[:n]]


def build_pipeline(tiny_bert: Path, pooling: str, hidden: int, heads=HEADS,
                   normalize: bool = False):
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = heads
    config["components"]["senti_textcat"]["model"]["pooling"] = pooling
    config["components"]["senti_textcat"]["model"]["hidden_width"] = hidden
    config["components"]["senti_textcat"]["model"]["normalize"] = normalize
    nlp = nlp_from_config(config)
    rows = [(t, {k: v for k, v in cats_for(a).items() if k.split("/")[0] in heads})
            for t, a in ROWS]
    train(nlp, make_examples(nlp, rows), n_iter=8, lr=3e-4)
    return nlp


@pytest.fixture(scope="module",
                params=[("mean", 0, False), ("cls", 0, False), ("attention", 16, False),
                        ("mean", 0, True)],
                ids=["mean", "cls", "attention+hidden", "mean+normalize"])
def exported(request, tiny_bert, tmp_path_factory):
    """Long docs (several windows) check the runner's re-pooling: with ``normalize`` the
    merged vector is normalised after the windows are pooled, as the Thinc model does."""
    pooling, hidden, normalize = request.param
    nlp = build_pipeline(tiny_bert, pooling, hidden, normalize=normalize)
    out = export_onnx(nlp, tmp_path_factory.mktemp(f"onnx_{pooling}"), quantize="int8")
    return nlp, out


def spacy_probs(nlp, texts: list[str], labels: list[str]) -> np.ndarray:
    return np.asarray([[doc.cats[k] for k in labels] for doc in nlp.pipe(texts)])


def long_texts() -> list[str]:
    base = sst2_sentences(40)
    return [" ".join(base[i:i + 12]) for i in range(0, 36, 12)]  # ~200-250 tokens each


def test_export_files_and_manifest(exported):
    nlp, out = exported
    info = json.loads((out / MANIFEST).read_text())
    assert (out / MODEL_FP32).exists() and (out / MODEL_INT8).exists()
    assert (out / "tokenizer" / "tokenizer.json").exists()
    assert [h["name"] for h in info["heads"]] == ["sentiment", "emotion", "aspect"]
    assert info["heads"][1]["thresholds"] == {"joy": 0.3}
    assert (info["window"], info["stride"]) == (128, 96)
    assert info["default"] == "int8"
    assert info["n_outputs"] == nlp.get_pipe("senti_textcat").n_outputs


def test_fp32_parity_runner(exported):
    nlp, out = exported
    runner = SentiOnnx(out, variant="fp32", threads=1)
    texts = sst2_sentences(100)
    expected = spacy_probs(nlp, texts, runner.labels)
    assert np.abs(runner.predict_probs(texts) - expected).max() <= 1e-3
    docs = list(nlp.pipe(texts[:10]))
    for doc, result in zip(docs, runner.predict(texts[:10])):
        assert result["heads"]["sentiment"]["label"] == doc._.sentiment
        assert result["heads"]["emotion"]["labels"] == doc._.emotion_labels
        assert result["heads"]["aspect"]["aspects"] == doc._.aspects


def test_fp32_parity_component_long_docs(exported):
    """The component cuts windows on spaCy tokens: exact for docs over one window."""
    nlp, out = exported
    texts = long_texts()
    assert all(len(nlp.make_doc(t)) > 128 for t in texts)
    onnx_nlp = spacy.blank("en")
    onnx_nlp.add_pipe("senti_onnx", config={"path": str(out), "variant": "fp32"})
    labels = onnx_nlp.get_pipe("senti_onnx").runner.labels
    expected = spacy_probs(nlp, texts + sst2_sentences(20), labels)
    got = spacy_probs(onnx_nlp, texts + sst2_sentences(20), labels)
    assert np.abs(got - expected).max() <= 1e-3


def test_int8_close_and_normalised(exported):
    nlp, out = exported
    runner = SentiOnnx(out, threads=1)
    assert runner.variant == "int8"
    assert (out / MODEL_INT8).stat().st_size < (out / MODEL_FP32).stat().st_size
    probs = runner.predict_probs(sst2_sentences(20))
    assert np.allclose(probs[:, :2].sum(axis=1), 1.0, atol=1e-5)
    assert np.isfinite(probs).all()


def test_component_sets_same_views(exported, tmp_path):
    nlp, out = exported
    onnx_nlp = spacy.blank("en")
    onnx_nlp.add_pipe("senti_onnx", config={"path": str(out), "variant": "fp32"})
    text = "great food but awful service"
    ref, doc = nlp(text), onnx_nlp(text)
    assert doc._.sentiment == ref._.sentiment
    assert doc._.emotion_labels == ref._.emotion_labels
    assert doc._.aspects == ref._.aspects
    assert set(doc.cats) == set(ref.cats)
    assert onnx_nlp("").cats == {}
    onnx_nlp.to_disk(tmp_path / "pipe")
    reloaded = spacy.load(tmp_path / "pipe")
    assert reloaded(text).cats == pytest.approx(onnx_nlp(text).cats, abs=1e-6)


def test_runner_imports_no_torch(exported):
    _, out = exported
    code = (
        "import sys\n"
        "from spacy_senti.onnx import SentiOnnx\n"
        f"r = SentiOnnx({str(out)!r}).predict(['i loved it', ''])\n"
        "assert r[0]['heads']['sentiment']['label'] in ('negative', 'positive'), r\n"
        "assert r[1] == {'cats': {}, 'heads': {}}\n"
        "bad = [m for m in ('torch', 'spacy', 'thinc', 'transformers') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("n", [0, 1, 95, 96, 97, 128, 129, 191, 192, 193, 300, 401])
def test_strided_windows_match_spacy_transformers(n):
    doc = spacy.blank("en")(" ".join(["w"] * n)) if n else spacy.blank("en")("")
    spans = get_strided_spans([doc], window=128, stride=96)[0]
    assert strided_windows(n, 128, 96) == [(s.start, s.end) for s in spans]


def test_token_listener_is_refused(tiny_bert, tmp_path):
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["model"]["tok2vec"] = {
        "@architectures": "spacy-transformers.TransformerListener.v1",
        "grad_factor": 1.0, "upstream": "*", "pooling": {"@layers": "reduce_mean.v1"},
    }
    nlp = nlp_from_config(config)
    with pytest.raises(ExportError, match="WordpieceListener"):
        export_onnx(nlp, tmp_path / "out")


def test_tok2vec_pipeline_is_refused_as_not_a_transformer_pipeline(tmp_path):
    """A cpu_fast (tok2vec) pipeline: the message names the missing transformer, not a
    token-level listener, and the configs that have one (issue 13, row 13)."""
    config = load_config("cpu_fast", tmp_path, **{
        "components.senti_textcat.model.tok2vec.embed.width": 16,
        "components.senti_textcat.model.tok2vec.encode.width": 16,
        "components.senti_textcat.model.tok2vec.encode.depth": 1,
    })
    nlp = nlp_from_config(config)
    nlp.initialize(lambda: make_examples(nlp, [("good", {"sentiment/positive": 1.0,
                                                         "sentiment/negative": 0.0})]))
    with pytest.raises(ExportError, match="needs a transformer pipeline") as err:
        export_onnx(nlp, tmp_path / "out")
    assert "configs/sentiment.cfg" in str(err.value)
    assert "token-level listener" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_cli_export(tiny_bert, tmp_path):
    from typer.testing import CliRunner

    from spacy_senti.cli import app

    nlp = build_pipeline(tiny_bert, "mean", 0, heads={"sentiment": {"kind": "exclusive"}})
    nlp.to_disk(tmp_path / "pipe")
    result = CliRunner().invoke(app, ["export-onnx", str(tmp_path / "pipe"), str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert SentiOnnx(tmp_path / "o").variant == "fp32"
    bad = CliRunner().invoke(app, ["export-onnx", str(tmp_path), str(tmp_path / "o2")])
    assert bad.exit_code == 1


def test_component_without_a_model_says_how_to_set_one():
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("senti_onnx")
    assert isinstance(pipe, SentiOnnxTextCategorizer) and pipe.runner is None
    with pytest.raises(ConfigError, match="export-onnx"):
        nlp("a text")
