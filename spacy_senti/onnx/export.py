"""Export a trained ``senti_textcat`` pipeline to one self-contained ONNX graph.

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
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from spacy.language import Language
from torch import nn

from .. import __version__
from ..components.textcat import SentiTextCategorizer
from ..errors import ExportError
from ..models.classifier import OUTPUT_LAYER, POOLING_LAYER
from ..util import find_textcat, load_pipeline
from .runner import HEAD_FILE, MANIFEST, MODEL_FP32, MODEL_INT8, TOKENIZER_DIR

FORMAT_VERSION = 1




class SentiGraph(nn.Module):
    """Encoder + pooling + heads, the torch twin of ``MultiHeadClassifier.v1``."""

    def __init__(self, encoder: nn.Module, pooling: str, params: dict[str, np.ndarray]):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        tensor = {k: torch.from_numpy(np.asarray(v, dtype="float32")) for k, v in params.items()}
        self.query = nn.Parameter(tensor["Q"]) if "Q" in tensor else None
        self.hidden: nn.Linear | None = None
        if "hidden_W" in tensor:
            self.hidden = _linear(tensor["hidden_W"], tensor["hidden_b"])
        self.output = _linear(tensor["output_W"], tensor["output_b"])

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            kwargs["token_type_ids"] = token_type_ids
        hidden = self.encoder(**kwargs).last_hidden_state
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
        features = pooled
        if self.hidden is not None:
            features = torch.relu(self.hidden(features))
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
    for _, pipe in nlp.pipeline:
        if type(pipe).__name__ == "Transformer" and hasattr(pipe.model, "transformer"):
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


def manifest(nlp: Language, textcat: SentiTextCategorizer, spans: dict[str, Any],
             tokenizer, input_names: list[str], opset: int) -> dict[str, Any]:
    """The ``senti_onnx.json`` content."""
    return {
        "format_version": FORMAT_VERSION,
        "name": f"{nlp.meta.get('lang', 'xx')}_{nlp.meta.get('name', 'pipeline')}",
        "version": nlp.meta.get("version", "0.0.0"),
        "spacy_senti_version": __version__,
        "lang": nlp.lang,
        "component": textcat.name,
        "heads": [{"name": h.name, **h.to_config()} for h in textcat.heads],
        "n_outputs": textcat.n_outputs,
        "pooling": textcat.model.attrs.get("pooling", "mean"),
        **spans,
        "model_max_length": int(min(getattr(tokenizer, "model_max_length", 512), 100_000)),
        "input_names": input_names,
        "outputs": {"logits": "pre-activation, heads side by side; activation in numpy",
                    "pooled": "pooled vector per window", "pool_logw": "log pooling weight"},
        "opset": opset,
        "files": {"fp32": MODEL_FP32},
        "default": "fp32",
    }


# --- export ------------------------------------------------------------------------------
def export_onnx(
    pipeline: str | Path | Language,
    out_dir: str | Path,
    *,
    quantize: str | None = None,
    opset: int = 17,
    component: str | None = None,
) -> Path:
    """Write ``model.onnx`` (+ ``model.int8.onnx``), tokenizer files, head weights and
    ``senti_onnx.json`` to ``out_dir``; returns ``out_dir``.

    quantize: None or ``"int8"`` (onnxruntime dynamic quantisation, QInt8 weights); the
    quantised model becomes the default one of the runner.
    """
    if quantize not in (None, "int8"):
        raise ExportError(f"Unknown quantisation {quantize!r}: use 'int8' or nothing.")
    nlp = pipeline if isinstance(pipeline, Language) else load_pipeline(pipeline)
    textcat = find_textcat(nlp, component)
    trf_model = find_transformer(nlp).model
    check_listener(textcat)
    spans = span_settings(trf_model)
    tokenizer = trf_model.tokenizer
    if not getattr(tokenizer, "is_fast", False):
        raise ExportError("ONNX export needs a fast (Rust) Hugging Face tokenizer.")
    params = head_params(textcat)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)

    encoder = trf_model.transformer
    was_training = encoder.training
    encoder.eval()
    graph = SentiGraph(encoder, textcat.model.attrs.get("pooling", "mean"), params).eval()
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        input_names.append("token_type_ids")
    sample = tokenizer(["a short example", "and a second one, a bit longer"],
                       padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes.update({"logits": {0: "batch"}, "pooled": {0: "batch"}, "pool_logw": {0: "batch"}})
    try:
        with torch.inference_mode():
            torch.onnx.export(
                graph, args, str(out / MODEL_FP32), input_names=input_names,
                output_names=["logits", "pooled", "pool_logw"], dynamic_axes=axes,
                opset_version=opset, do_constant_folding=True, dynamo=False,
            )
    finally:
        encoder.train(was_training)

    tok_dir = out / TOKENIZER_DIR
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    tokenizer.save_pretrained(str(tok_dir))
    np.savez(out / HEAD_FILE, **params)
    info = manifest(nlp, textcat, spans, tokenizer, input_names, opset)
    if quantize == "int8":
        quantize_int8(out / MODEL_FP32, out / MODEL_INT8)
        info["files"]["int8"] = MODEL_INT8
        info["default"] = "int8"
    (out / MANIFEST).write_text(json.dumps(info, indent=2), encoding="utf8")
    return out


def quantize_int8(src: Path, dst: Path) -> Path:
    """onnxruntime dynamic quantisation: int8 weights (QInt8), activations quantised on the fly."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8)
    return dst
