"""``SentiOnnx``: run an exported pipeline with onnxruntime, tokenizers and numpy only.

No torch and no spaCy are imported (spaCy's thinc imports torch when it is installed), so a
service can run on a slim image. Pooling parity with ``senti_textcat`` + WordpieceListener:

* each doc is cut into the transformer's windows (``strided_spans``: 128 spaCy tokens, stride
  96); every window is encoded separately and the per-window pooled vectors are merged with
  their weights (mean: #wordpieces, attention: log-sum-exp of the scores, cls: first window),
  which equals pooling the concatenated rows as spaCy does;
* docs of one window (up to 96-128 tokens, i.e. nearly every sentence and review) go straight
  through the graph's ``logits``. The spaCy component ``senti_onnx`` passes its own token
  windows, so it is exact for long docs too; standalone, the runner counts tokens with a
  regex close to spaCy's English tokenizer, so long docs near window borders may be cut a
  few tokens differently from spaCy.

Aspect terms (an export of a pipeline with ``senti_aspects``): the graph also returns the
wordpiece states (``hidden``) and :meth:`SentiOnnx.predict_docs`, given each doc's token
character offsets (``senti_onnx`` passes its spaCy tokens), averages them per token as
spacy-transformers does and runs the tagger and polarity stack in numpy
(:mod:`spacy_senti.onnx.aspects`, which imports spaCy and thinc: only exports with aspects).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import InputError
from ..heads import Head, heads_from_config

if TYPE_CHECKING:
    from .aspects import AspectHead

Offsets = Sequence[tuple[int, int]]

MANIFEST = "senti_onnx.json"
MODEL_FP32 = "model.onnx"
MODEL_INT8 = "model.int8.onnx"
TOKENIZER_DIR = "tokenizer"
HEAD_FILE = "heads.npz"
ASPECT_FILE = "aspects.npz"
TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def strided_windows(n_tokens: int, window: int | None, stride: int | None) -> list[tuple[int, int]]:
    """Token windows of spacy-transformers' ``get_strided_spans`` for a doc of n tokens."""
    if window is None or stride is None:
        return [(0, n_tokens)]
    spans: list[tuple[int, int]] = []
    start = 0
    for _ in range(n_tokens // stride):
        spans.append((start, min(start + window, n_tokens)))
        if start + window >= n_tokens:
            break
        start += stride
    else:
        if start < n_tokens:
            spans.append((start, n_tokens))
    return spans


def activate(heads: Sequence[Head], logits: np.ndarray) -> np.ndarray:
    """Each head's ``activate`` in numpy (float32), like ``senti_textcat._activate``."""
    out = np.empty_like(logits, dtype="float32")
    start = 0
    for head in heads:
        sl = slice(start, start + head.n_outputs)
        start += head.n_outputs
        out[:, sl] = head.activate(np, logits[:, sl].astype("float32"))
    return out


def session_options(threads: int | None, spinning: bool) -> Any:
    """onnxruntime settings: all graph optimisations, one op at a time (sequential, one
    inter-op thread: a BERT graph is a chain), ``threads`` intra-op threads, spin-waiting
    on or off."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    flag = "1" if spinning else "0"
    options.add_session_config_entry("session.intra_op.allow_spinning", flag)
    options.add_session_config_entry("session.inter_op.allow_spinning", flag)
    return options


class SentiOnnx:
    """An exported pipeline: ``SentiOnnx(path).predict(["great film"])``.

    path: a folder written by ``spacy-senti export-onnx``.
    variant: ``"fp32"`` or ``"int8"``; default: the exported default (int8 when quantised).
    threads: onnxruntime intra-op threads (default: onnxruntime's choice, the physical cores).
    batch_size: windows per onnxruntime call (windows are sorted by length first).
    spinning: let idle onnxruntime threads spin-wait for work. Off by default: on CPUs
    shared with other work (several service workers, other jobs) spinning threads steal
    the cores (measured 1.35x faster without, int8, 2 threads, load 8 on 2 cores); a quiet,
    dedicated machine may gain a little with it on (``bench/bench_onnx.py`` has a row).
    """

    def __init__(self, path: str | os.PathLike, *, variant: str | None = None,
                 threads: int | None = None, batch_size: int = 64,
                 spinning: bool = False) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = Path(path)
        manifest_path = self.path / MANIFEST
        if not manifest_path.exists():
            raise InputError(f"{manifest_path} not found: export a pipeline with "
                             "`spacy-senti export-onnx PIPELINE OUT_DIR` first.")
        self.info: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf8"))
        self.variant = variant or self.info["default"]
        if self.variant not in self.info["files"]:
            raise InputError(f"No {self.variant!r} model in {self.path}; exported: "
                             f"{sorted(self.info['files'])}. Pick one with --variant, or export "
                             "again with `spacy-senti export-onnx ... --quantize int8`.")
        self.heads: list[Head] = heads_from_config(
            {h["name"]: {k: v for k, v in h.items() if k != "name"} for h in self.info["heads"]}
        ) if self.info["heads"] else []  # an export of senti_aspects alone has no heads
        self.batch_size = batch_size
        self.tokenizer = Tokenizer.from_file(str(self.path / TOKENIZER_DIR / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.max_length = int(self.info["model_max_length"])
        self.pad_id = self._pad_id()
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}.")
        self.spinning = spinning
        model_file = str(self.path / self.info["files"][self.variant])
        self.session = ort.InferenceSession(model_file, session_options(threads, spinning),
                                            providers=["CPUExecutionProvider"])
        self.input_names = list(self.info["input_names"])
        self.head_weights: dict[str, np.ndarray] = {}
        if (self.path / HEAD_FILE).exists():
            weights = np.load(self.path / HEAD_FILE)
            self.head_weights = {k: weights[k] for k in weights.files}
        self.output_names = [out.name for out in self.session.get_outputs()]
        self.aspects: AspectHead | None = None
        if self.info.get("aspects"):
            from .aspects import AspectHead

            weights = np.load(self.path / self.info["aspects"].get("weights", ASPECT_FILE))
            self.aspects = AspectHead(self.info["aspects"], {k: weights[k] for k in weights.files})

    def _pad_id(self) -> int:
        config_path = self.path / TOKENIZER_DIR / "tokenizer_config.json"
        pad = "[PAD]"
        if config_path.exists():
            pad = json.loads(config_path.read_text(encoding="utf8")).get("pad_token") or pad
        if isinstance(pad, dict):
            pad = pad.get("content", "[PAD]")
        found = self.tokenizer.token_to_id(pad)
        return int(found) if found is not None else 0

    # --- public API ------------------------------------------------------------------------
    @property
    def labels(self) -> list[str]:
        """Every ``doc.cats`` key, in output order."""
        return [key for head in self.heads for key in head.keys()]

    def predict(self, texts: Iterable[str]) -> list[dict[str, Any]]:
        """Per text: ``{"cats": {key: prob}, "heads": {head: Head.decode(...)}}``.

        An empty string gets empty ``cats`` and ``heads`` (senti_textcat skips empty docs).
        """
        texts = list(texts)
        probs = self.predict_probs(texts)
        return [self.decode(row) if text else {"cats": {}, "heads": {}}
                for text, row in zip(texts, probs)]

    def decode(self, row: np.ndarray) -> dict[str, Any]:
        """cats + decoded heads of one probability row."""
        cats, heads, start = {}, {}, 0
        for head in self.heads:
            values = row[start:start + head.n_outputs]
            start += head.n_outputs
            cats.update({k: float(p) for k, p in zip(head.keys(), values)})
            heads[head.name] = head.decode(values)
        return {"cats": cats, "heads": heads}

    def predict_probs(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities (n_texts, n_outputs); rows of empty texts are 0."""
        return self.predict_windows([self.text_windows(t) for t in texts])

    def text_windows(self, text: str) -> list[str]:
        """The window texts of one doc (spaCy tokens approximated by a regex)."""
        window, stride = self.info.get("window"), self.info.get("stride")
        if not text:
            return []
        if window is None:
            return [text]
        tokens = [m.span() for m in TOKEN_RE.finditer(text)]
        if len(tokens) <= window:
            return [text]
        return [text[tokens[a][0]:tokens[b - 1][1]]
                for a, b in strided_windows(len(tokens), window, stride)]

    def predict_windows(self, docs: Sequence[Sequence[str]]) -> np.ndarray:
        """Probabilities for docs given as lists of window texts (empty list: zero row)."""
        return self._heads_probs(docs, self._run([t for windows in docs for t in windows]))

    def predict_docs(self, docs: Sequence[tuple[str, Offsets]]
                     ) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Head probabilities and, for an export with aspects, token rows, from one encoder
        pass over docs given as ``(text, token character offsets)`` (``senti_onnx`` passes
        its spaCy tokens: windows are cut on them exactly as spacy-transformers does).

        Returns ``(probs (n_docs, n_outputs), rows)``; ``rows`` is one ``(n_tokens, width)``
        array per doc (the ``senti_aspects`` listener's token rows), None without aspects.
        """
        window, stride = self.info.get("window"), self.info.get("stride")
        cuts = [strided_windows(len(tokens), window, stride) if tokens else []
                for _, tokens in docs]
        texts = [[text[tokens[a][0]:tokens[b - 1][1]] for a, b in doc_cuts]
                 for (text, tokens), doc_cuts in zip(docs, cuts)]
        outputs = self._run([t for windows in texts for t in windows],
                            hidden=self.aspects is not None)
        probs = self._heads_probs(texts, outputs)
        if self.aspects is None:
            return probs, None
        from .aspects import WindowStates, token_rows

        rows, k = [], 0
        for (_, tokens), doc_cuts in zip(docs, cuts):
            states = []
            for a, b in doc_cuts:
                base = tokens[a][0]
                states.append(WindowStates(
                    a, [(s - base, e - base) for s, e in tokens[a:b]],
                    outputs["hidden"][k], outputs["offsets"][k],
                ))
                k += 1
            rows.append(token_rows(len(tokens), states, self.aspects.width))
        return probs, rows

    def _heads_probs(self, docs: Sequence[Sequence[str]], outputs: dict[str, Any]
                     ) -> np.ndarray:
        """Activated head outputs per doc from the per-window graph outputs."""
        n_out = int(self.info["n_outputs"])
        probs = np.zeros((len(docs), n_out), dtype="float32")
        owner = np.asarray([i for i, windows in enumerate(docs) for _ in windows], dtype=int)
        if not len(owner) or not self.heads:
            return probs
        logits, pooled, logw = outputs["logits"], outputs["pooled"], outputs["pool_logw"]
        doc_logits = np.zeros((len(docs), n_out), dtype="float32")
        for i in np.unique(owner):
            rows = np.flatnonzero(owner == i)
            if len(rows) == 1:
                doc_logits[i] = logits[rows[0]]
            else:
                doc_logits[i] = self._merge(pooled[rows], logw[rows])
        keep = np.unique(owner)
        probs[keep] = activate(self.heads, doc_logits[keep])
        return probs

    # --- internals ---------------------------------------------------------------------------
    def _merge(self, pooled: np.ndarray, logw: np.ndarray) -> np.ndarray:
        """Pool several windows of one doc, then apply the heads in numpy."""
        if self.info["pooling"] == "cls":
            vector = pooled[0]
        else:
            w = np.exp(logw - logw.max())
            vector = (w[:, None] * pooled).sum(axis=0) / w.sum()
        if self.info.get("normalize", False):
            vector = vector / max(float(np.linalg.norm(vector)), 1e-12)
        hw = self.head_weights
        if "hidden_W" in hw:
            vector = np.maximum(hw["hidden_W"] @ vector + hw["hidden_b"], 0.0)
        return hw["output_W"] @ vector + hw["output_b"]

    def _run(self, texts: list[str], hidden: bool = False) -> dict[str, Any]:
        """Encode window texts in length-sorted batches; outputs in input order.

        Returns the graph outputs by name, one row per text (``logits``, ``pooled``,
        ``pool_logw`` stacked); with ``hidden`` also ``hidden`` (each window's wordpiece
        states, padding dropped) and ``offsets`` (their character offsets).
        """
        names = [n for n in self.output_names if n != "hidden" or hidden]
        if not texts or not names:  # nothing asked (senti_aspects alone, no heads)
            return {}
        encodings = self.tokenizer.encode_batch(texts)
        ids = [enc.ids[: self.max_length] for enc in encodings]
        types = [enc.type_ids[: self.max_length] for enc in encodings]
        order = np.argsort([len(x) for x in ids], kind="stable")
        outs: dict[str, list[Any]] = {name: [None] * len(texts) for name in names}
        for start in range(0, len(order), self.batch_size):
            batch = order[start:start + self.batch_size]
            width = max(len(ids[j]) for j in batch)
            input_ids = np.full((len(batch), width), self.pad_id, dtype="int64")
            mask = np.zeros((len(batch), width), dtype="int64")
            type_ids = np.zeros((len(batch), width), dtype="int64")
            for r, j in enumerate(batch):
                n = len(ids[j])
                input_ids[r, :n] = ids[j]
                mask[r, :n] = 1
                type_ids[r, :n] = types[j]
            feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": type_ids}
            values = self.session.run(names, {name: feed[name] for name in self.input_names})
            for name, value in zip(names, values):
                for r, j in enumerate(batch):
                    outs[name][j] = value[r, :len(ids[j])] if name == "hidden" else value[r]
        result: dict[str, Any] = {name: rows if name == "hidden" else np.stack(rows)
                                  for name, rows in outs.items()}
        if hidden:
            result["offsets"] = [np.asarray(enc.offsets[: self.max_length], dtype="int64")
                                 for enc in encodings]
        return result
