"""Fused ONNX export (onnxruntime's transformer optimizer), int8 settings, runner batching."""

from __future__ import annotations

import collections
import json
import random

import numpy as np
import onnx
import pytest
from test_onnx import build_pipeline, spacy_probs, sst2_sentences

from spacy_senti.errors import ExportError, InputError
from spacy_senti.onnx import MANIFEST, SentiOnnx
from spacy_senti.onnx.export import export_onnx, quantize_int8
from spacy_senti.onnx.runner import MODEL_FP32, MODEL_INT8

SENTIMENT = {"sentiment": {"kind": "exclusive"}}


def op_counts(path) -> collections.Counter:
    return collections.Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def manifest(out) -> dict:
    return json.loads((out / MANIFEST).read_text())


@pytest.fixture(scope="module")
def nlp(tiny_bert):
    return build_pipeline(tiny_bert, "mean", 0)


@pytest.fixture(scope="module")
def exports(nlp, tmp_path_factory):
    """The same pipeline exported fused (--optimize) and unfused (default), both with int8."""
    root = tmp_path_factory.mktemp("onnx_opt")
    return {
        "fused": export_onnx(nlp, root / "fused", quantize="int8", optimize=True),
        "unfused": export_onnx(nlp, root / "unfused", quantize="int8", optimize=False),
    }


def test_optimizer_fuses_the_tiny_bert_and_the_manifest_says_so(exports):
    info = manifest(exports["fused"])["optimization"]
    assert info["optimized"] is True
    assert (info["num_heads"], info["hidden_size"]) == (2, 32)  # from the encoder config
    assert info["fused_ops"] == {"EmbedLayerNormalization": 1, "Attention": 2, "BiasGelu": 2,
                                 "SkipLayerNormalization": 4}
    assert info["parity_max_abs"] <= 1e-3
    ops = op_counts(exports["fused"] / MODEL_FP32)
    assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4
    assert ops["Softmax"] == 0 and ops["LayerNormalization"] == 0  # really fused


def test_no_optimize_keeps_standard_onnx_ops(exports):
    assert manifest(exports["unfused"])["optimization"] == {"optimized": False}
    ops = op_counts(exports["unfused"] / MODEL_FP32)
    assert ops["Attention"] == 0 and ops["Softmax"] == 2 and ops["LayerNormalization"] == 5
    domains = {n.domain for n in onnx.load(str(exports["unfused"] / MODEL_FP32)).graph.node}
    assert domains <= {"", "ai.onnx"}  # runs on any ONNX runtime


def test_fused_and_unfused_agree_with_spacy(nlp, exports):
    texts = sst2_sentences(60)
    fused = SentiOnnx(exports["fused"], variant="fp32", threads=1)
    unfused = SentiOnnx(exports["unfused"], variant="fp32", threads=1)
    expected = spacy_probs(nlp, texts, fused.labels)
    got_fused, got_unfused = fused.predict_probs(texts), unfused.predict_probs(texts)
    assert np.abs(got_fused - got_unfused).max() <= 1e-4
    assert np.abs(got_fused - expected).max() <= 1e-3
    assert np.abs(got_unfused - expected).max() <= 1e-3


@pytest.mark.parametrize("kind", ["fused", "unfused"])
def test_int8_within_tolerance_with_head_in_fp32(nlp, exports, kind):
    out = exports[kind]
    info = manifest(out)["int8"]
    assert info["per_channel"] is True and info["pre_process"]
    assert "/output/Gemm" in info["excluded_nodes"]
    graph = onnx.load(str(out / MODEL_INT8)).graph
    quantized = [n.name for n in graph.node if n.op_type in ("MatMulInteger", "QAttention")]
    assert quantized and not [q for q in quantized if q.startswith("/output/")]
    if kind == "fused":
        assert op_counts(out / MODEL_INT8)["QAttention"] == 2
    texts = sst2_sentences(60)
    fp32 = SentiOnnx(out, variant="fp32", threads=1).predict_probs(texts)
    int8 = SentiOnnx(out, variant="int8", threads=1).predict_probs(texts)
    assert np.abs(int8 - fp32).max() <= 0.05
    assert (fp32[:, :2].argmax(1) == int8[:, :2].argmax(1)).mean() >= 0.9


def test_quantize_int8_settings_are_recorded(exports, tmp_path):
    used = quantize_int8(exports["unfused"] / MODEL_FP32, tmp_path / "q.onnx",
                         {"per_channel": False, "excluded": None})
    assert used["per_channel"] is False and used["excluded_nodes"] == []
    names = {n.name for n in onnx.load(str(tmp_path / "q.onnx")).graph.node}
    assert any(name.startswith("/output/Gemm") and "quant" in name for name in names)


def test_broken_fused_graph_falls_back_to_unfused_with_a_warning(nlp, tmp_path, monkeypatch):
    """A fuser that changes the outputs (here: a perturbed head bias) is caught by the
    export-time parity check: the unfused graph is kept and the manifest says why."""
    import onnxruntime.transformers.optimizer as optimizer

    real = optimizer.optimize_model

    def broken(*args, **kwargs):
        model = real(*args, **kwargs)
        for init in model.model.graph.initializer:
            if init.name.startswith("output.bias"):
                value = onnx.numpy_helper.to_array(init) + 0.5
                init.CopyFrom(onnx.numpy_helper.from_array(value, init.name))
        return model

    monkeypatch.setattr(optimizer, "optimize_model", broken)
    with pytest.warns(UserWarning, match="optimisation skipped.*differs"):
        out = export_onnx(nlp, tmp_path / "out", optimize=True)
    info = manifest(out)["optimization"]
    assert info["optimized"] is False and "differs" in info["reason"]
    assert op_counts(out / MODEL_FP32)["Attention"] == 0
    texts = sst2_sentences(20)
    runner = SentiOnnx(out, threads=1)
    assert np.abs(runner.predict_probs(texts) - spacy_probs(nlp, texts, runner.labels)).max() \
        <= 1e-3


def test_failing_optimizer_falls_back_to_unfused(nlp, tmp_path, monkeypatch):
    import onnxruntime.transformers.optimizer as optimizer

    def fails(*args, **kwargs):
        raise RuntimeError("unknown pattern")

    monkeypatch.setattr(optimizer, "optimize_model", fails)
    with pytest.warns(UserWarning, match="optimizer failed.*unknown pattern"):
        out = export_onnx(nlp, tmp_path / "out", quantize="int8", optimize=True)
    assert manifest(out)["optimization"]["optimized"] is False
    assert manifest(out)["int8"]["gelu"] == "exact"
    assert SentiOnnx(out, threads=1).predict(["i loved it"])[0]["heads"]["sentiment"]


def test_missed_attention_retries_with_eager_attention(nlp, tmp_path, monkeypatch):
    """When the fuser finds no attention in the SDPA export, the export retries with the
    eager attention math (and checks it against the first export)."""
    import onnxruntime.transformers.optimizer as optimizer
    from onnxruntime.transformers.fusion_options import FusionOptions

    real, calls = optimizer.optimize_model, []

    def first_misses(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            options = FusionOptions("bert")
            options.enable_attention = False
            kwargs["optimization_options"] = options
        return real(*args, **kwargs)

    monkeypatch.setattr(optimizer, "optimize_model", first_misses)
    out = export_onnx(nlp, tmp_path / "out", optimize=True)
    info = manifest(out)["optimization"]
    assert info["optimized"] is True and info["attention_export"] == "eager"
    assert info["fused_ops"]["Attention"] == 2 and info["parity_max_abs"] <= 1e-3


def test_unknown_quantisation_is_refused(nlp, tmp_path):
    with pytest.raises(ExportError, match="int8"):
        export_onnx(nlp, tmp_path / "out", quantize="int4")


def test_runner_batches_by_length_and_returns_input_order(exports):
    """Texts of very different lengths, shuffled, in batches of 3: each output row is the
    one-by-one prediction of the text at the same position."""
    base = sst2_sentences(30)
    texts = [base[0][:12], " ".join(base[:6]), "ok", base[3], " ".join(base[6:9]), "bad", base[5],
             " ".join(base[10:20]), "fine film", base[7]]
    random.Random(0).shuffle(texts)
    lengths = [len(t) for t in texts]
    assert lengths != sorted(lengths) and max(lengths) > 20 * min(lengths)
    for variant in ("fp32", "int8"):
        runner = SentiOnnx(exports["fused"], variant=variant, threads=1, batch_size=3)
        batched = runner.predict_probs(texts)
        alone = np.concatenate([runner.predict_probs([t]) for t in texts])
        assert np.abs(batched - alone).max() <= (1e-5 if variant == "fp32" else 0.02)
        assert not np.allclose(batched, batched[::-1])  # distinct rows: order is tested


def test_runner_settings(exports):
    runner = SentiOnnx(exports["fused"], variant="fp32", threads=1, spinning=True)
    plain = SentiOnnx(exports["fused"], variant="fp32", threads=1)
    texts = sst2_sentences(5)
    assert np.abs(runner.predict_probs(texts) - plain.predict_probs(texts)).max() <= 1e-6
    key = "session.intra_op.allow_spinning"
    assert plain.session.get_session_options().get_session_config_entry(key) == "0"
    assert runner.session.get_session_options().get_session_config_entry(key) == "1"
    with pytest.raises(InputError, match="batch_size"):
        SentiOnnx(exports["fused"], batch_size=0)


def test_cli_unfused_by_default_fused_with_optimize(nlp, tmp_path):
    from typer.testing import CliRunner

    from spacy_senti.cli import app

    nlp.to_disk(tmp_path / "pipe")
    runner = CliRunner()
    plain = runner.invoke(app, ["export-onnx", str(tmp_path / "pipe"), str(tmp_path / "plain")])
    assert plain.exit_code == 0, plain.output
    assert manifest(tmp_path / "plain")["optimization"]["optimized"] is False
    fused = runner.invoke(app, ["export-onnx", str(tmp_path / "pipe"), str(tmp_path / "fused"),
                                "--quantize", "int8", "--optimize"])
    assert fused.exit_code == 0, fused.output
    assert manifest(tmp_path / "fused")["optimization"]["optimized"] is True
    assert "fused" in fused.output


def test_quantisation_leaves_no_files_in_the_working_directory(exports, tmp_path, monkeypatch):
    """Symbolic shape inference fails on the unfused graph and then dumps
    sym_shape_infer_temp.onnx + a <uuid>.data weights file into the working directory."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    used = quantize_int8(exports["unfused"] / MODEL_FP32, tmp_path / "q.onnx")
    assert used["pre_process"] == "onnx shape inference"  # the failing path was taken
    assert list(cwd.iterdir()) == []
