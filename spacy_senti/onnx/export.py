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
from ..components.textcat import SentiTextCategorizer
from ..errors import ExportError
from ..models.classifier import OUTPUT_LAYER, POOLING_LAYER
from ..util import find_textcat, load_pipeline
from .runner import HEAD_FILE, MANIFEST, MODEL_FP32, MODEL_INT8, TOKENIZER_DIR

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
# onnxruntime dynamic quantisation settings (measured on SST-2 dev, bench/bench_onnx.py).
INT8_SETTINGS: dict[str, Any] = {
    "method": "dynamic", "weight_type": "QInt8", "per_channel": True, "reduce_range": False,
    "pre_process": True,
    "op_types": ["MatMul", "Attention", "EmbedLayerNormalization", "Gather"],
    "excluded": "pooling and heads (every MatMul/Gemm outside the encoder)",
}


class SentiGraph(nn.Module):
    """Encoder + pooling + heads, the torch twin of ``MultiHeadClassifier.v1``."""

    def __init__(self, encoder: nn.Module, pooling: str, params: dict[str, np.ndarray],
                 eager_attention: bool = False):
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling
        # output_attentions=True makes HF encoders take the eager (matmul + softmax) attention
        # path instead of SDPA: the pattern the fuser knows; the attentions are pruned.
        self.eager_attention = eager_attention
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
        if self.eager_attention:
            kwargs["output_attentions"] = True
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


def manifest(nlp: Language, textcat: SentiTextCategorizer, spans: dict[str, Any],
             tokenizer, input_names: list[str], opset: int) -> dict[str, Any]:
    """The ``senti_onnx.json`` content (the export adds ``optimization`` and ``int8``)."""
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
    optimize: bool = False,
) -> Path:
    """Write ``model.onnx`` (+ ``model.int8.onnx``), tokenizer files, head weights and
    ``senti_onnx.json`` to ``out_dir``; returns ``out_dir``.

    quantize: None or ``"int8"`` (onnxruntime dynamic quantisation, QInt8 weights); the
    quantised model becomes the default one of the runner.
    optimize: fuse the fp32 graph with onnxruntime's transformer optimizer (before
    quantisation); if the fused graph's outputs differ from the unfused ones by more than
    ``OPTIMIZE_TOLERANCE`` the unfused graph is kept, with a warning.
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
    pooling = textcat.model.attrs.get("pooling", "mean")
    input_names = ["input_ids", "attention_mask"]
    if "token_type_ids" in tokenizer.model_input_names:
        input_names.append("token_type_ids")
    info = manifest(nlp, textcat, spans, tokenizer, input_names, opset)
    with tempfile.TemporaryDirectory(prefix="senti_onnx_") as tmp:
        export = GraphExport(encoder, pooling, params, tokenizer, input_names, opset, Path(tmp))
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
    np.savez(out / HEAD_FILE, **params)
    (out / MANIFEST).write_text(json.dumps(info, indent=2), encoding="utf8")
    return out


class GraphExport:
    """The torch export and its fused variants, written into a scratch folder."""

    def __init__(self, encoder: nn.Module, pooling: str, params: dict[str, np.ndarray],
                 tokenizer, input_names: list[str], opset: int, folder: Path) -> None:
        self.encoder, self.pooling, self.params = encoder, pooling, params
        self.tokenizer, self.input_names, self.opset = tokenizer, input_names, opset
        self.folder = folder
        self.feeds = check_inputs(tokenizer, input_names)

    def export(self, name: str, eager_attention: bool = False) -> Path:
        path = self.folder / name
        torch_export(self.encoder, self.pooling, self.params, self.tokenizer, self.input_names,
                     path, self.opset, eager_attention=eager_attention)
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


def torch_export(encoder: nn.Module, pooling: str, params: dict[str, np.ndarray], tokenizer,
                 input_names: list[str], path: Path, opset: int,
                 eager_attention: bool = False) -> None:
    """``torch.onnx.export`` of encoder + pooling + heads, batch and sequence axes dynamic."""
    was_training = encoder.training
    encoder.eval()
    graph = SentiGraph(encoder, pooling, params, eager_attention=eager_attention).eval()
    sample = tokenizer(["a short example", "and a second one, a bit longer"],
                       padding=True, return_tensors="pt")
    args = tuple(sample[name] for name in input_names)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes.update({"logits": {0: "batch"}, "pooled": {0: "batch"}, "pool_logw": {0: "batch"}})
    try:
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*output_attentions.*")
            torch.onnx.export(
                graph, args, str(path), input_names=input_names,
                output_names=["logits", "pooled", "pool_logw"], dynamic_axes=axes,
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
