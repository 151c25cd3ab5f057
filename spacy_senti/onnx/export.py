"""Export a trained ``senti_textcat`` (and/or ``senti_aspects``) pipeline to one ONNX graph.

The graph holds the fine-tuned Hugging Face encoder, the pooling of the
``spacy_senti.WordpieceListener.v1`` rows (masked mean / [CLS] / attention with the trained
query vector) and every head (optional ReLU hidden layer + the output Linear). Its inputs
are ``input_ids``, ``attention_mask`` (and ``token_type_ids`` when the tokenizer has them), one
row per transformer window; its outputs are

* ``logits`` (batch, n_outputs): all heads side by side, in ``head_slices()`` order; the
  activation (softmax / sigmoid / per-group softmax) is applied in numpy by the runner;
* ``pooled`` (batch, width) and ``pool_logw`` (batch,): the window's pooled vector and its
  log weight (mean: log #wordpieces, attention: log-sum-exp of the scores), so that docs
  spanning several windows are pooled exactly like spaCy's concatenated rows.

Only the wordpiece listener is supported: spaCy's token-level listener averages wordpieces
per spaCy token first, which the graph does not reproduce (a clear error is raised).

Aspect terms: when the pipeline has a ``senti_aspects`` component, the graph also returns
``hidden`` (batch, sequence, width), the wordpiece states, and the export writes the tagger and
polarity weights (``aspects.npz``, fp32 in every variant) and an ``aspects`` part in the
manifest; the runner averages the states per spaCy token as spacy-transformers does and runs
the two small stacks in numpy (:mod:`spacy_senti.onnx.aspects`). A pipeline with
``senti_aspects`` alone exports the encoder with ``hidden`` as its only output. The export
checks the aspects against the spaCy pipeline on ``CHECK_TEXTS`` + ``ASPECT_CHECK_TEXTS``:
identical term spans, tag and polarity probabilities within ``ASPECT_TOLERANCE`` (fp32, else
``ExportError``); the int8 graph's agreement is measured and recorded, not enforced.

With ``optimize=True`` (``--optimize``) the fp32 graph goes through onnxruntime's transformer
optimizer (``onnxruntime.transformers.optimizer``, model type "bert"), which fuses each layer into
Attention / SkipLayerNormalization / BiasGelu and the embeddings into
EmbedLayerNormalization (onnxruntime contrib ops: the graph then runs on onnxruntime only).
The fused graph is checked against the unfused one on sample inputs; above 1e-3 the export
keeps the unfused graph and warns. It is off by default: onnxruntime 1.32 applies the same
fusions itself when it loads the plain graph, and the pre-fused graph ran 5-6 % slower
(bench/results/onnx.md); the plain graph also runs on any ONNX runtime. int8: quantisation
pre-processing (shape inference), per-channel dynamic QInt8 weights on the encoder, the
pooling and heads kept in fp32.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from torch import nn

from .. import __version__
from ..components.aspects import SentiAspects
from ..components.textcat import SentiTextCategorizer
from ..errors import ExportError, InputError
from ..models.aspects import POLARITY_LAYER, TAGGER_LAYER, TAGS
from ..models.classifier import OUTPUT_LAYER, POOLING_LAYER
from ..util import find_textcat, load_pipeline
from .runner import (
    ASPECT_FILE,
    HEAD_FILE,
    MANIFEST,
    MODEL_FP32,
    MODEL_INT8,
    TOKENIZER_DIR,
    SentiOnnx,
)

FORMAT_VERSION = 1
# Above this max |difference| of any output, the optimised graph is refused (unfused kept).
OPTIMIZE_TOLERANCE = 1e-3
# The int8 graph is quantised from a fused graph whose GELUs use the tanh approximation
# (FastGelu): ~6% faster int8 (MiniLM-L6, SST-2 sentences), SST-2 dev accuracy unchanged;
# its fp32 outputs move by ~1e-3, checked against GELU_TOLERANCE. fp32 keeps the exact GELU.
INT8_GELU_APPROXIMATION = True
GELU_TOLERANCE = 1e-2
# Encoder node names start with this (SentiGraph.encoder); the rest is pooling and heads.
ENCODER_SCOPE = "/encoder/"
# Texts of different lengths, padded together, for the export-time parity check.
CHECK_TEXTS = (
    "a short example",
    "and a second one, a bit longer, with a comma and numbers 1 2 3",
    "The food was great but the service was awful; we waited forty minutes for a table "
    "and nobody apologised. Would I go back? Maybe, for the desserts alone!",
    "ok",
)
# Aspect terms: more parity texts (terms in several places, a doc over one 128-token window
# of the transformer, an empty doc), and the largest |difference| of tag and polarity
# probabilities allowed for the fp32 graph (term spans must be identical).
ASPECT_CHECK_TEXTS = (
    "",
    "the pad thai was great but the waiter was rude",
    "Battery life is awful, the screen is fine and I love the keyboard.",
    " ".join([CHECK_TEXTS[2]] * 6),
)
ASPECT_TOLERANCE = 1e-3
# onnxruntime dynamic quantisation settings (measured on SST-2 dev, bench/bench_onnx.py).
INT8_SETTINGS: dict[str, Any] = {
    "method": "dynamic", "weight_type": "QInt8", "per_channel": True, "reduce_range": False,
    "pre_process": True,
    "op_types": ["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
    "excluded": "pooling and heads (every MatMul/Gemm outside the encoder)",
}


class SentiGraph(nn.Module):
    """Encoder + pooling + heads, the torch twin of ``MultiHeadClassifier.v1``.

    Outputs ``(logits, pooled, pool_logw)``; with ``hidden_states`` also the wordpiece states
    (for ``senti_aspects``); with ``params=None`` (no senti_textcat) only those states.
    """

    def __init__(self, encoder: nn.Module, pooling: str | None,
                 params: dict[str, np.ndarray] | None, eager_attention: bool = False,
                 hidden_states: bool = False, normalize: bool = False):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        self.normalize = normalize  # unit-length features (MultiHeadClassifier normalize)
        # output_attentions=True makes HF encoders take the eager (matmul + softmax) attention
        # path instead of SDPA: the pattern the fuser knows; the attentions are pruned.
        self.eager_attention = eager_attention
        self.heads = params is not None
        self.hidden_states = hidden_states or params is None
        params = params or {}
        tensor = {k: torch.from_numpy(np.asarray(v, dtype="float32")) for k, v in params.items()}
        self.query = nn.Parameter(tensor["Q"]) if "Q" in tensor else None
        self.hidden: nn.Linear | None = None
        if "hidden_W" in tensor:
            self.hidden = _linear(tensor["hidden_W"], tensor["hidden_b"])
        self.output = _linear(tensor["output_W"], tensor["output_b"]) if self.heads else None

    @property
    def output_names(self) -> list[str]:
        """Names of the graph outputs, in ``forward``'s order."""
        names = ["logits", "pooled", "pool_logw"] if self.heads else []
        return names + (["hidden"] if self.hidden_states else [])

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        if self.eager_attention:
            kwargs["output_attentions"] = True
        hidden = self.encoder(**kwargs).last_hidden_state
        if self.output is None:
            return hidden
        mask = attention_mask.to(hidden.dtype)
        if self.pooling == "mean":
            count = mask.sum(dim=1)
            pooled = (hidden * mask.unsqueeze(-1)).sum(dim=1) / count.clamp(min=1.0).unsqueeze(-1)
            logw = torch.log(count.clamp(min=1.0))
        elif self.pooling == "cls":
            pooled = hidden[:, 0]
            logw = torch.zeros_like(mask[:, 0])
        else:
            scores = torch.matmul(hidden, self.query)
            scores = scores.masked_fill(mask == 0, -1e9)
            logw = torch.logsumexp(scores, dim=1)
            weights = torch.softmax(scores, dim=1)
            pooled = (hidden * weights.unsqueeze(-1)).sum(dim=1)
        # ``pooled`` stays the raw pool: the runner re-pools a long doc's windows from it
        features = nn.functional.normalize(pooled, dim=-1) if self.normalize else pooled
        if self.hidden is not None:
            features = torch.relu(self.hidden(features))
        if self.hidden_states:
            return self.output(features), pooled, logw, hidden
        return self.output(features), pooled, logw


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    layer = nn.Linear(weight.shape[1], weight.shape[0])
    with torch.no_grad():
        layer.weight.copy_(weight)
        layer.bias.copy_(bias)
    return layer


# --- reading the spaCy pipeline -------------------------------------------------------------
def find_transformer(nlp: Language):
    """The spacy-transformers ``transformer`` component."""
    from spacy_transformers import Transformer  # senti_transformer subclasses it

    for _, pipe in nlp.pipeline:
        if isinstance(pipe, Transformer) and hasattr(pipe.model, "transformer"):
            return pipe
    raise ExportError(
        "ONNX export needs a transformer pipeline: a spacy-transformers `transformer` "
        "component shared by senti_textcat through spacy_senti.WordpieceListener.v1, as "
        "configs/sentiment.cfg, emotion.cfg, absa.cfg and multitask.cfg build. This pipeline "
        f"(components: {nlp.pipe_names}) has none; a spaCy tok2vec pipeline "
        "(configs/cpu_fast.cfg) has no ONNX export. Retrain with one of those configs."
    )


def check_listener(textcat: SentiTextCategorizer) -> None:
    """Refuse token-level listeners, whose pooling the graph does not reproduce."""
    names = {layer.name for layer in textcat.model.walk()}
    if "trfs2wordpieces" not in names:
        raise ExportError(
            "ONNX export supports senti_textcat models whose tok2vec is "
            "spacy_senti.WordpieceListener.v1. This pipeline uses a token-level listener "
            "(wordpieces averaged per spaCy token), which the exported graph would not "
            "reproduce: retrain with [components.senti_textcat.model.tok2vec] "
            '@architectures = "spacy_senti.WordpieceListener.v1".'
        )


def span_settings(transformer_model) -> dict[str, Any]:
    """Window/stride of the transformer's span getter (strided or whole-doc spans)."""
    getter = transformer_model.attrs["get_spans"]
    keywords = getattr(getter, "keywords", {}) or {}
    if "window" in keywords and "stride" in keywords:
        return {"span_getter": "strided", "window": int(keywords["window"]),
                "stride": int(keywords["stride"])}
    if getattr(getter, "__name__", "") == "get_doc_spans":
        return {"span_getter": "doc", "window": None, "stride": None}
    raise ExportError(
        f"Unsupported span getter {getter!r}: export supports "
        "spacy-transformers.strided_spans.v1 and doc_spans.v1."
    )


def head_params(textcat: SentiTextCategorizer) -> dict[str, np.ndarray]:
    """Pooling query (attention), hidden ReLU and output Linear weights as numpy arrays."""
    model = textcat.model
    to_numpy = model.ops.to_numpy
    out = model.get_ref(OUTPUT_LAYER)
    params = {"output_W": to_numpy(out.get_param("W")), "output_b": to_numpy(out.get_param("b"))}
    pool = model.get_ref(POOLING_LAYER)
    for layer in pool.walk():
        if layer.name == "para-attn":
            key = layer.get_ref("key_transform")
            if key.name != "noop":
                raise ExportError("Attention pooling with a key transform is unsupported.")
            params["Q"] = to_numpy(layer.get_param("Q")).ravel()
    hidden = [
        layer for top in model.layers[3:-1] for layer in top.walk()
        if layer.has_param("W") and layer is not out
    ]
    if len(hidden) > 1:
        raise ExportError("Only one hidden layer between pooling and heads is supported.")
    if hidden:
        if hidden[0].name != "relu":
            raise ExportError(f"Unsupported hidden layer {hidden[0].name!r}.")
        params["hidden_W"] = to_numpy(hidden[0].get_param("W"))
        params["hidden_b"] = to_numpy(hidden[0].get_param("b"))
    return params


def single_aspects_component(nlp: Language) -> SentiAspects | None:
    """The pipeline's ``senti_aspects`` component, or None; more than one is refused."""
    found = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, SentiAspects)]
    if len(found) > 1:
        raise ExportError(
            "ONNX export carries one senti_aspects component; this pipeline has "
            f"{[p.name for p in found]}. Export a pipeline with one of them "
            "(nlp.remove_pipe the others first)."
        )
    return found[0] if found else None


def aspect_params(aspects: SentiAspects) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Tagger and polarity weights of ``senti_aspects`` and the manifest's ``aspects`` part.

    Refuses (``ExportError`` naming the part) what the runner would not reproduce: a token-row
    listener other than spacy-transformers' TransformerListener + reduce_mean, or layers
    other than Dropout / ReLU / Linear in the tagger and polarity stacks.
    """
    model = aspects.model
    what = f"senti_aspects component {aspects.name!r}"
    if not aspects.labels or not model.get_ref("polarity_output").has_param("W"):
        raise ExportError(f"The {what} is not trained (no polarity labels): train it first.")
    tok2vec = model.get_ref("tok2vec")
    names = [layer.name for layer in tok2vec.walk()]
    if "transformer-listener" not in names or "trfs2arrays" not in names:
        raise ExportError(
            f"The token rows of the {what} cannot be exported: its tok2vec "
            f"({tok2vec.name!r}) is not a spacy-transformers TransformerListener.v1 of the "
            "pipeline's transformer. Use the listener of configs/aspect_terms.cfg."
        )
    pooling = next(layer for layer in tok2vec.walk() if layer.name == "trfs2arrays").layers[0]
    if pooling.name != "reduce_mean":
        raise ExportError(
            f"The token rows of the {what} cannot be exported: its listener pools wordpieces "
            f"with {pooling.name!r}; the ONNX runner reproduces reduce_mean.v1 only (the "
            "default of configs/aspect_terms.cfg)."
        )
    to_numpy = model.ops.to_numpy
    params: dict[str, np.ndarray] = {}
    tagger = _param_layers(model.get_ref(TAGGER_LAYER), what, "tagger")
    if [layer.name for layer in tagger] != ["linear"]:
        raise ExportError(f"The tagger of the {what} cannot be exported: expected one Linear "
                          f"layer, found {[layer.name for layer in tagger]}.")
    params["tagger_W"] = to_numpy(tagger[0].get_param("W"))
    params["tagger_b"] = to_numpy(tagger[0].get_param("b"))
    polarity = _param_layers(model.get_ref(POLARITY_LAYER), what, "polarity head")
    kinds = [layer.name for layer in polarity]
    if kinds not in (["linear"], ["relu", "linear"]):
        raise ExportError(f"The polarity head of the {what} cannot be exported: expected "
                          f"[ReLU,] Linear, found {kinds}.")
    if kinds[0] == "relu":
        params["polarity_hidden_W"] = to_numpy(polarity[0].get_param("W"))
        params["polarity_hidden_b"] = to_numpy(polarity[0].get_param("b"))
    params["polarity_W"] = to_numpy(polarity[-1].get_param("W"))
    params["polarity_b"] = to_numpy(polarity[-1].get_param("b"))
    params = {k: np.asarray(v, dtype="float32") for k, v in params.items()}
    info = {
        "component": aspects.name,
        "spans_key": aspects.spans_key,
        "labels": list(aspects.labels),
        "tags": list(TAGS),
        "local_window": int(model.attrs["local_window"]),
        "token_rows": "wordpieces averaged per spaCy token (TransformerListener + reduce_mean)",
        "polarity_hidden_width": int(params["polarity_hidden_W"].shape[0])
        if "polarity_hidden_W" in params else 0,
        "weights": ASPECT_FILE,
    }
    return params, info


# Layers that hold no parameters and do nothing at inference.
_INFERENCE_NOOPS = {"dropout"}


def _param_layers(stack, what: str, part: str) -> list:
    """The layers with weights of a tagger / polarity stack, in order; refuses unknown ones."""
    layers = []
    for layer in stack.walk(order="dfs_pre"):
        if layer.layers:
            continue  # a combinator (chain): its leaves are checked
        if layer.name in ("linear", "relu"):
            layers.append(layer)
        elif layer.name not in _INFERENCE_NOOPS:
            raise ExportError(f"The {part} of the {what} cannot be exported: layer "
                              f"{layer.name!r} is not supported (Dropout, ReLU and Linear are).")
    return layers


def manifest(nlp: Language, textcat: SentiTextCategorizer | None, spans: dict[str, Any],
             tokenizer, input_names: list[str], opset: int,
             aspects: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``senti_onnx.json`` content (the export adds ``optimization`` and ``int8``).

    textcat: None for a pipeline with senti_aspects alone (no heads, no pooling);
    aspects: the ``aspects`` part (``aspect_params``), only when the pipeline has one.
    """
    outputs = {"logits": "pre-activation, heads side by side; activation in numpy",
               "pooled": "pooled vector per window", "pool_logw": "log pooling weight"}
    if textcat is None:
        outputs = {}
    if aspects is not None:
        outputs["hidden"] = "wordpiece states per window (senti_aspects token rows)"
    info = {
        "format_version": FORMAT_VERSION,
        "name": f"{nlp.meta.get('lang', 'xx')}_{nlp.meta.get('name', 'pipeline')}",
        "version": nlp.meta.get("version", "0.0.0"),
        "spacy_senti_version": __version__,
        "lang": nlp.lang,
        "component": textcat.name if textcat is not None else None,
        "heads": [{"name": h.name, **h.to_config()} for h in textcat.heads]
        if textcat is not None else [],
        "n_outputs": textcat.n_outputs if textcat is not None else 0,
        "pooling": textcat.model.attrs.get("pooling", "mean") if textcat is not None else None,
        "normalize": bool(textcat is not None and textcat.model.attrs.get("normalize", False)),
        **spans,
        "model_max_length": int(min(getattr(tokenizer, "model_max_length", 512), 100_000)),
        "input_names": input_names,
        "outputs": outputs,
        "opset": opset,
        "files": {"fp32": MODEL_FP32},
        "default": "fp32",
    }
    if aspects is not None:
        info["aspects"] = aspects
    return info


# --- export ------------------------------------------------------------------------------
def export_onnx(
    pipeline: str | Path | Language,
    out_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 17,
    component: str | None = None,
    optimize: bool = False,
) -> Path:
    """Write ``model.onnx`` (+ ``model.int8.onnx``), tokenizer files, head weights (+ the
    senti_aspects weights) and ``senti_onnx.json`` to ``out_dir``; returns ``out_dir``.

    quantize: None or ``"int8"`` (onnxruntime dynamic quantisation, QInt8 weights); the
    quantised model becomes the default one of the runner.
    optimize: fuse the fp32 graph with onnxruntime's transformer optimizer (before
    quantisation); if the fused graph's outputs differ from the unfused ones by more than
    ``OPTIMIZE_TOLERANCE`` the unfused graph is kept, with a warning.

    A ``senti_aspects`` component is exported too (see the module docstring); its fp32
    parity with the spaCy pipeline is checked (``ExportError`` and no manifest written when
    it fails), the int8 agreement recorded in the manifest.
    """
    if quantize not in (None, "int8"):
        raise ExportError(f"Unknown quantisation {quantize!r}: use 'int8' or nothing.")
    nlp = pipeline if isinstance(pipeline, Language) else load_pipeline(pipeline)
    aspects = single_aspects_component(nlp)
    try:
        textcat: SentiTextCategorizer | None = find_textcat(nlp, component)
    except InputError:
        if aspects is None or component is not None:
            raise
        textcat = None  # senti_aspects alone: the encoder's wordpiece states only
    trf_pipe = find_transformer(nlp)
    trf_model = trf_pipe.model
    if textcat is not None:
        check_listener(textcat)
    spans = span_settings(trf_model)
    tokenizer = trf_model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError("ONNX export needs a fast (Rust) Hugging Face tokenizer.")
    params = head_params(textcat) if textcat is not None else None
    aspect_weights, aspect_info = aspect_params(aspects) if aspects is not None else ({}, None)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    encoder = trf_model.transformer
    pooling = textcat.model.attrs.get("pooling", "mean") if textcat is not None else None
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        input_names.append("token_type_ids")
    info = manifest(nlp, textcat, spans, tokenizer, input_names, opset, aspect_info)
    with tempfile.TemporaryDirectory(prefix="senti_onnx_") as tmp:
        export = GraphExport(encoder, pooling, params, tokenizer, input_names, opset, Path(tmp),
                             hidden_states=aspects is not None,
                             normalize=info["normalize"])
        fp32, int8_src, info["optimization"], gelu = export.graphs(optimize, quantize == "int8")
        shutil.copyfile(fp32, out / MODEL_FP32)
        if quantize == "int8":
            info["int8"] = {**quantize_int8(int8_src, out / MODEL_INT8), **gelu}
            info["files"]["int8"] = MODEL_INT8
            info["default"] = "int8"
        elif (out / MODEL_INT8).exists():
            (out / MODEL_INT8).unlink()  # a stale int8 model of an earlier export

    tok_dir = out / TOKENIZER_DIR
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    tokenizer.save_pretrained(str(tok_dir))
    for name, weights in ((HEAD_FILE, params), (ASPECT_FILE, aspect_weights)):
        if weights:
            np.savez(out / name, **weights)
        elif (out / name).exists():
            (out / name).unlink()  # a stale file of an earlier export
    if aspects is not None:
        check_aspects(nlp, trf_pipe.name, aspects, out, info)
    (out / MANIFEST).write_text(json.dumps(info, indent=2), encoding="utf8")
    return out


def doc_tokens(doc) -> tuple[str, list[tuple[int, int]]]:
    """``(text, token character offsets)`` of a spaCy doc, as ``SentiOnnx.predict_docs``
    takes it."""
    return doc.text, [(t.idx, t.idx + len(t)) for t in doc]


def check_aspects(nlp: Language, transformer: str, aspects: SentiAspects, out: Path,
                  info: dict[str, Any]) -> None:
    """Compare the exported aspects with ``senti_aspects`` on the parity texts.

    fp32: term spans identical and tag / polarity probabilities within ``ASPECT_TOLERANCE``
    (polarities on the predicted terms and on probe spans: every token and the whole doc),
    else ``ExportError``. int8: the same measures go to ``info["int8"]["aspects"]``.
    Writes ``info["aspects"]["parity"]``; needs every file of the export but the manifest
    (written to ``out`` for the check and removed again if it fails).
    """
    texts = list(CHECK_TEXTS) + list(ASPECT_CHECK_TEXTS)
    with nlp.select_pipes(enable=[transformer]):
        docs = list(nlp.pipe(texts))
    expected = aspects.predict(docs)
    probes = [[(i, i + 1) for i in range(len(doc))] + ([(0, len(doc))] if len(doc) else [])
              for doc in docs]
    expected_probes = aspects.predict_polarities(docs, probes)
    manifest_path = out / MANIFEST
    manifest_path.write_text(json.dumps(info, indent=2), encoding="utf8")
    try:
        for variant in info["files"]:
            runner = SentiOnnx(out, variant=variant, threads=1)
            assert runner.aspects is not None
            _, rows = runner.predict_docs([doc_tokens(doc) for doc in docs])
            got = runner.aspects.predict(rows or [])
            got_probes = [runner.aspects.polarity_probs(r, p) for r, p in zip(rows or [], probes)]
            same = [a == b for a, b in zip(expected.spans, got.spans)]
            record = {
                "texts": len(texts),
                "span_agreement": float(np.mean(same)),
                "tag_max_abs": _max_abs(expected.tag_probs, got.tag_probs),
                "polarity_max_abs": max(
                    _max_abs(expected_probes, got_probes),
                    _max_abs([p for p, ok in zip(expected.polarity_probs, same) if ok],
                             [p for p, ok in zip(got.polarity_probs, same) if ok]),
                ),
            }
            if variant == "int8":
                info["int8"]["aspects"] = record
                continue
            record["tolerance"] = ASPECT_TOLERANCE
            if not (all(same) and record["tag_max_abs"] <= ASPECT_TOLERANCE
                    and record["polarity_max_abs"] <= ASPECT_TOLERANCE):
                wrong = [t[:60] for t, ok in zip(texts, same) if not ok]
                raise ExportError(
                    f"The ONNX export of the senti_aspects component {aspects.name!r} does not "
                    f"match the spaCy pipeline (fp32): term spans differ on {wrong or 'no'} "
                    f"texts, tag probabilities by {record['tag_max_abs']:.2e}, polarity "
                    f"probabilities by {record['polarity_max_abs']:.2e} (allowed "
                    f"{ASPECT_TOLERANCE:g}). No manifest was written to {out}."
                )
            info["aspects"]["parity"] = record
    except BaseException:
        manifest_path.unlink()
        raise


def _max_abs(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """Largest |a - b| over paired arrays (0.0 when all are empty; inf on a shape mismatch)."""
    worst = 0.0
    for x, y in zip(a, b, strict=True):
        if np.shape(x) != np.shape(y):
            return float("inf")
        if np.size(x):
            worst = max(worst, float(np.abs(np.asarray(x) - np.asarray(y)).max()))
    return worst


class GraphExport:
    """The torch export and its fused variants, written into a scratch folder."""

    def __init__(self, encoder: nn.Module, pooling: str | None,
                 params: dict[str, np.ndarray] | None, tokenizer, input_names: list[str],
                 opset: int, folder: Path, hidden_states: bool = False,
                 normalize: bool = False) -> None:
        self.encoder, self.pooling, self.params = encoder, pooling, params
        self.normalize = normalize
        self.tokenizer, self.input_names, self.opset = tokenizer, input_names, opset
        self.folder = folder
        self.hidden_states = hidden_states
        self.feeds = check_inputs(tokenizer, input_names)

    def export(self, name: str, eager_attention: bool = False) -> Path:
        path = self.folder / name
        torch_export(self.encoder, self.pooling, self.params, self.tokenizer, self.input_names,
                     path, self.opset, eager_attention=eager_attention,
                     hidden_states=self.hidden_states, normalize=self.normalize)
        return path

    def graphs(self, optimize: bool, int8: bool) -> tuple[Path, Path, dict, dict]:
        """(fp32 graph, graph to quantise, manifest ``optimization``, int8 GELU record).

        Unfused when ``optimize`` is False or the fused graph fails its checks (warning).
        """
        raw = self.export("raw.onnx")
        if not optimize:
            return raw, raw, {"optimized": False}, {"gelu": "exact"}
        reference = run_graph(raw, self.feeds)
        config = self.encoder.config
        fused = self.folder / "fused.onnx"
        record = optimize_graph(raw, fused, config, self.feeds, reference)
        if not record["optimized"] and record.pop("retry_eager", False):
            # an SDPA export the fuser missed: export the eager attention math and retry
            raw = self.export("raw_eager.onnx", eager_attention=True)
            record = optimize_graph(raw, fused, config, self.feeds, reference,
                                    attention="eager")
        record.pop("retry_eager", None)
        if not record["optimized"]:
            warnings.warn(
                f"ONNX graph optimisation skipped: {record['reason']} The unfused graph is "
                "exported (correct, slower); pass optimize=False / --no-optimize to silence "
                "this.", stacklevel=3,
            )
            return raw, raw, record, {"gelu": "exact"}
        if not (int8 and INT8_GELU_APPROXIMATION):
            return fused, fused, record, {"gelu": "exact"}
        fast = self.folder / "fast_gelu.onnx"
        approx = optimize_graph(raw, fast, config, self.feeds, reference,
                                attention=record["attention_export"], gelu_approximation=True)
        if not approx["optimized"]:
            return fused, fused, record, {"gelu": "exact", "fast_gelu_refused": approx["reason"]}
        return fused, fast, record, {"gelu": "FastGelu (tanh approximation)",
                                     "fast_gelu_max_abs": approx["parity_max_abs"]}


def torch_export(encoder: nn.Module, pooling: str | None, params: dict[str, np.ndarray] | None,
                 tokenizer, input_names: list[str], path: Path, opset: int,
                 eager_attention: bool = False, hidden_states: bool = False,
                 normalize: bool = False) -> None:
    """``torch.onnx.export`` of encoder + pooling + heads (+ the wordpiece states), batch and
    sequence axes dynamic."""
    was_training = encoder.training
    encoder.eval()
    graph = SentiGraph(encoder, pooling, params, eager_attention=eager_attention,
                       hidden_states=hidden_states, normalize=normalize).eval()
    sample = tokenizer(["a short example", "and a second one, a bit longer"],
                       padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes.update({"logits": {0: "batch"}, "pooled": {0: "batch"}, "pool_logw": {0: "batch"},
                 "hidden": {0: "batch", 1: "sequence"}})
    axes = {k: v for k, v in axes.items() if k in input_names or k in graph.output_names}
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*output_attentions.*")
            torch.onnx.export(
                graph, args, str(path), input_names=input_names,
                output_names=graph.output_names, dynamic_axes=axes,
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
    finally:
        encoder.train(was_training)


def check_inputs(tokenizer, input_names: list[str]) -> list[dict[str, np.ndarray]]:
    """Feeds for the parity checks: CHECK_TEXTS padded together, and one text alone."""
    feeds = []
    for texts in (list(CHECK_TEXTS), [CHECK_TEXTS[2]]):
        enc = tokenizer(texts, padding=True, return_tensors="np")
        feeds.append({name: np.asarray(enc[name], dtype="int64") for name in input_names})
    return feeds


def run_graph(path: Path, feeds: list[dict[str, np.ndarray]]) -> list[list[np.ndarray]]:
    """Outputs of an ONNX graph (onnxruntime, CPU, no runtime graph rewrites) per feed."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return [session.run(None, feed) for feed in feeds]


def max_difference(a: list[list[np.ndarray]], b: list[list[np.ndarray]]) -> float:
    """Largest |a - b| over every output of every feed."""
    return max(float(np.abs(x - y).max()) for xs, ys in zip(a, b) for x, y in zip(xs, ys))


def fuser_settings(config) -> dict[str, Any]:
    """model_type / num_heads / hidden_size for ``optimize_model`` from an HF config."""
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "n_heads", 0)
    hidden = getattr(config, "hidden_size", None) or getattr(config, "dim", 0)
    return {"model_type": "bert", "num_heads": int(heads or 0), "hidden_size": int(hidden or 0)}


def optimize_graph(src: Path, dst: Path, config, feeds: list[dict[str, np.ndarray]],
                   reference: list[list[np.ndarray]], *, attention: str | None = None,
                   gelu_approximation: bool = False) -> dict[str, Any]:
    """Fuse ``src`` into ``dst`` and check it; the manifest's ``optimization`` record.

    ``optimized`` is False (with a ``reason``) when the fuser fails, fuses no attention, or
    changes an output by more than ``OPTIMIZE_TOLERANCE`` (``GELU_TOLERANCE`` with
    ``gelu_approximation``: FastGelu, for the int8 graph) on ``feeds`` against ``reference``
    (the unfused graph's outputs).
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    settings = fuser_settings(config)
    options = FusionOptions(settings["model_type"])
    options.enable_gelu_approximation = gelu_approximation
    tolerance = GELU_TOLERANCE if gelu_approximation else OPTIMIZE_TOLERANCE
    attention = attention or getattr(config, "_attn_implementation", None) or "default"
    record: dict[str, Any] = {"optimized": False, "tool": "onnxruntime.transformers.optimizer",
                              **settings, "attention_export": attention}
    try:
        model = optimize_model(str(src), **settings, optimization_options=options)
        fused = {op: int(n) for op, n in model.get_fused_operator_statistics().items() if n}
        model.save_model_to_file(str(dst))
    except Exception as err:  # the fuser raises anything on graphs it does not know
        return {**record, "reason": f"the optimizer failed ({type(err).__name__}: {err})."}
    record["fused_ops"] = fused
    if not fused.get("Attention") and not fused.get("MultiHeadAttention"):
        return {**record, "retry_eager": attention != "eager",
                "reason": f"the optimizer fused no attention (fused: {fused or 'nothing'})."}
    diff = max_difference(reference, run_graph(dst, feeds))
    record["parity_max_abs"] = diff
    if not diff <= tolerance:  # also catches NaN
        return {**record, "reason": f"the fused graph differs from the unfused one by {diff:.2e} "
                f"(> {tolerance:g})."}
    record["optimized"] = True
    return record


def head_nodes(path: Path) -> list[str]:
    """Names of the MatMul/Gemm nodes outside the encoder: attention pooling and heads.

    A Gemm is listed twice, also as ``<name>_MatMul``: quantize_dynamic splits Gemm nodes
    into MatMul + Add under that name before it applies ``nodes_to_exclude``.
    """
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    names = []
    for node in graph.node:
        if node.op_type in ("MatMul", "Gemm") and not node.name.startswith(ENCODER_SCOPE):
            names.append(node.name)
            if node.op_type == "Gemm":
                names.append(f"{node.name}_MatMul")
    return names


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    """Run a block in ``path`` (``contextlib.chdir`` needs Python 3.11)."""
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def pre_process(src: Path, dst: Path) -> str:
    """onnxruntime's quantisation pre-processing (shape inference); returns what ran.

    Symbolic shape inference cannot finish on some unfused torch exports: onnx shape
    inference alone is used then. It runs inside ``dst``'s folder because a failed symbolic
    inference dumps ``sym_shape_infer_temp.onnx`` + a weights file into the working directory.
    """
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = src.resolve(), dst.resolve()
    with working_directory(dst.parent):
        try:
            # skip_optimization: the graph is already optimised (or meant to stay unfused)
            quant_pre_process(str(src), str(dst), skip_optimization=True)
            return "symbolic + onnx shape inference"
        except Exception:  # "Incomplete symbolic shape inference" and kin
            quant_pre_process(str(src), str(dst), skip_optimization=True,
                              skip_symbolic_shape=True)
            return "onnx shape inference"


def quantize_int8(src: Path, dst: Path, settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """onnxruntime dynamic quantisation of ``src`` into ``dst``; returns the settings used.

    Pre-processing (shape inference), int8 weights per output channel for the encoder's
    MatMul / Attention and the word embeddings, activations quantised on the fly; the pooling
    and heads stay fp32 (they are tiny and decide the output). ``settings`` overrides
    INT8_SETTINGS (measured on SST-2 dev with MiniLM-L6: per-channel -0.57 points against
    fp32, per-tensor -1.83, the 0.1 settings -1.03; the embeddings' int8 cost nothing).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    used = {**INT8_SETTINGS, **(settings or {})}
    with tempfile.TemporaryDirectory(prefix="senti_onnx_q_") as tmp:
        model, done = src, None
        if used["pre_process"]:
            model = Path(tmp) / "pre.onnx"
            done = pre_process(src, model)
        excluded = head_nodes(model) if used["excluded"] else []
        quantize_dynamic(
            str(model), str(dst), weight_type=getattr(QuantType, used["weight_type"]),
            per_channel=used["per_channel"], reduce_range=used["reduce_range"],
            op_types_to_quantize=used["op_types"], nodes_to_exclude=excluded,
            # tensors whose type shape inference missed (outputs of contrib ops) are fp32
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    quantized = {n.name for n in onnx.load(str(dst), load_external_data=False).graph.node
                 if n.op_type in ("MatMulInteger", "QAttention", "DynamicQuantizeMatMul")}
    leaked = sorted(q for q in quantized for e in excluded if q.startswith(f"{e}_"))
    if leaked:
        raise ExportError(f"int8 quantisation quantised nodes meant to stay fp32: {leaked}.")
    return {**used, "pre_process": done, "excluded_nodes": excluded}
