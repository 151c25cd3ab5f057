"""The PyTorch forward pass of ``senti_textcat``, rebuilt for attribution.

``senti_textcat`` runs in Thinc: the ``transformer`` component encodes each doc's windows,
``spacy_senti.WordpieceListener.v1`` hands every wordpiece row (``[CLS]`` and ``[SEP]``
included, padding removed) to the pooling, one Linear layer holds every head's logits and
each head's ``activate`` turns them into ``doc.cats``. Gradients with respect to the input
embeddings need the whole chain in torch, so it is rebuilt from the parts the ONNX export
already converts (``onnx.export.SentiGraph``: the Hugging Face encoder of the pipeline, not a
copy, + the same pooling + the Thinc output layer as a ``torch.nn.Linear``):

* the input is the doc's own wordpieces, ``doc._.trf_data.wordpieces`` (one row per window of
  the transformer's span getter; long docs keep all their strided windows);
* windows are pooled one by one and merged with their weights (mean: number of wordpieces,
  attention: log-sum-exp of the scores, cls: the first window), which equals pooling the
  concatenated rows as the listener does;
* the word embeddings of the encoder (``get_input_embeddings()``) are replaced by the tensor
  being explained through a forward hook that only acts in the calling thread, so the
  pipeline itself never sees it.

The rebuilt probabilities equal ``doc.cats`` (tested to 1e-5).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from spacy.language import Language
from spacy.tokens import Doc
from thinc.api import get_current_ops

from ..components.textcat import SentiTextCategorizer
from ..errors import ConfigError, ExportError
from ..heads import ABSENT, SEP, Head
from ..onnx.export import SentiGraph, check_listener, find_transformer, head_params
from ..util import find_textcat


class _NumpyLike(torch.Tensor):
    """A tensor whose ``max(axis=..., keepdims=...)`` behaves like numpy's, so each head's
    ``activate(xp, logits)`` (written for numpy/cupy) runs on torch with autograd."""

    def max(self, *args, axis=None, keepdims=False, **kwargs):  # type: ignore[override]
        if axis is not None:
            return torch.amax(self, dim=axis, keepdim=keepdims)
        return super().max(*args, **kwargs)


def activate(heads: list[Head], logits: torch.Tensor) -> torch.Tensor:
    """Every head's ``activate`` on torch logits (n, n_outputs): the probabilities."""
    out, start = [], 0
    for head in heads:
        block = logits[:, start:start + head.n_outputs].as_subclass(_NumpyLike)
        out.append(head.activate(torch, block).as_subclass(torch.Tensor))
        start += head.n_outputs
    return torch.cat(out, dim=1)


@dataclass
class DocInputs:
    """One doc's wordpieces as the pipeline encoded them, and their spaCy alignment."""

    input_ids: torch.Tensor  # (windows, width), padding beyond the longest window removed
    attention_mask: torch.Tensor
    token_type_ids: torch.Tensor | None
    padded_width: int  # row width of the flattened index space of ``align``
    align_data: np.ndarray  # flat wordpiece indices, token after token
    align_lengths: np.ndarray  # wordpieces per spaCy token
    content: torch.Tensor  # (windows, width) bool: wordpieces aligned to a spaCy token

    @property
    def n_windows(self) -> int:
        return int(self.input_ids.shape[0])

    def token_scores(self, wordpiece_scores: np.ndarray) -> list[float]:
        """Sum wordpiece scores (windows, width) onto spaCy tokens.

        Special tokens and padding align to no token and are dropped; a wordpiece shared by
        several tokens is split equally among them; a token seen in two overlapping windows
        gets the scores of both (both reach the pooled vector).
        """
        n_windows, width = wordpiece_scores.shape
        flat = np.zeros((n_windows, self.padded_width), dtype="float64")
        flat[:, :width] = wordpiece_scores
        flat = flat.ravel()
        share = np.bincount(self.align_data, minlength=flat.size).astype("float64")
        out, start = [], 0
        for n in self.align_lengths:
            idx = self.align_data[start:start + n]
            start += n
            out.append(float((flat[idx] / share[idx]).sum()) if n else 0.0)
        return out


class ExplainModel:
    """``senti_textcat`` of ``nlp`` as one differentiable torch function per doc.

    nlp: a pipeline with a spacy-transformers ``transformer`` and a ``senti_textcat`` that
        listens through ``spacy_senti.WordpieceListener.v1``.
    component: the senti_textcat component's name (default: the first one).
    """

    def __init__(self, nlp: Language, component: str | None = None) -> None:
        textcat = find_textcat(nlp, component)
        if not isinstance(textcat, SentiTextCategorizer):
            raise ConfigError(
                f"Component {textcat.name!r} is a {type(textcat).__name__}, which holds no "
                "PyTorch model to explain (an ONNX component runs in onnxruntime). Explain the "
                "spaCy pipeline it was exported from."
            )
        try:
            transformer = find_transformer(nlp)
            check_listener(textcat)
        except ExportError:
            raise ConfigError(
                "Explanations need a transformer pipeline: a spacy-transformers `transformer` "
                "component read by senti_textcat through spacy_senti.WordpieceListener.v1 "
                "(configs/sentiment.cfg, emotion.cfg, absa.cfg, multitask.cfg). This pipeline "
                f"(components: {nlp.pipe_names}) has no such transformer; a tok2vec pipeline "
                "(configs/cpu_fast.cfg) has no input embeddings to attribute. Retrain with one "
                "of those configs, or use senti_lexicon's token valences (token._.valence)."
            ) from None
        self.nlp = nlp
        self.textcat = textcat
        self.transformer = transformer
        self.heads: list[Head] = list(textcat.heads)
        self.keys: list[str] = list(textcat.labels)
        self.encoder: torch.nn.Module = transformer.model.transformer
        self.tokenizer = transformer.model.tokenizer
        self.pooling: str = textcat.model.attrs.get("pooling", "mean")
        self.device = next(self.encoder.parameters()).device
        self.graph = SentiGraph(self.encoder, self.pooling, head_params(textcat),
                                normalize=textcat.model.attrs.get("normalize", False))
        self.graph.to(self.device)
        self.pad_id = _pad_id(self.tokenizer)

    # --- targets ---------------------------------------------------------------------------
    def head(self, name: str | None) -> Head:
        """The head ``name`` (default: the component's first head)."""
        if name is None:
            return self.heads[0]
        for head in self.heads:
            if head.name == name:
                return head
        raise ConfigError(
            f"{self.textcat.name} has no head {name!r}; its heads: "
            f"{[h.name for h in self.heads]}. Pass one of them (--head / head=)."
        )

    def target_key(self, head: Head, label: str | None, probs: np.ndarray | None) -> str:
        """The ``doc.cats`` key to explain: ``label`` of ``head`` (``"positive"``,
        ``"food/negative"`` or the full key), else the head's most probable key
        (``absent`` keys of grouped heads left out)."""
        keys = head.keys()
        if label is None:
            if probs is None:
                raise ValueError("probs are needed to pick the predicted label")
            candidates = [k for k in keys if k.rsplit(SEP, 1)[-1] != ABSENT] or keys
            return max(candidates, key=lambda k: probs[self.keys.index(k)])
        for key in (label, f"{head.name}{SEP}{label}"):
            if key in keys:
                return key
        shown = [k.split(SEP, 1)[1] for k in keys]
        raise ConfigError(
            f"Head {head.name!r} has no label {label!r}; its labels: {shown}. Pass one of them "
            "(--label / label=), or none to explain the predicted label."
        )

    # --- inputs ----------------------------------------------------------------------------
    def inputs(self, doc: Doc) -> DocInputs:
        """The doc's wordpieces (``doc._.trf_data``; encoded again when missing)."""
        trf = doc._.trf_data if Doc.has_extension("trf_data") else None
        if trf is None or trf.wordpieces.input_ids.size == 0:
            self.transformer.set_annotations([doc], self.transformer.predict([doc]))
            trf = doc._.trf_data
        to_numpy = get_current_ops().to_numpy
        wp = trf.wordpieces
        ids = np.asarray(to_numpy(wp.input_ids))
        n_windows, padded = ids.shape
        width = max(int(n) for n in wp.lengths)
        mask = np.asarray(to_numpy(wp.attention_mask))[:, :width]
        align_data = np.asarray(to_numpy(trf.align.dataXd), dtype="int64").ravel()
        align_lengths = np.asarray(to_numpy(trf.align.lengths), dtype="int64")
        content = np.zeros(n_windows * padded, dtype=bool)
        content[align_data] = True
        content = content.reshape(n_windows, padded)[:, :width]
        types = None
        if wp.token_type_ids is not None:
            types = torch.as_tensor(np.asarray(to_numpy(wp.token_type_ids))[:, :width],
                                    dtype=torch.long, device=self.device)
        return DocInputs(
            input_ids=torch.as_tensor(ids[:, :width], dtype=torch.long, device=self.device),
            attention_mask=torch.as_tensor(mask, dtype=torch.long, device=self.device),
            token_type_ids=types,
            padded_width=padded,
            align_data=align_data,
            align_lengths=align_lengths,
            content=torch.as_tensor(content, device=self.device),
        )

    def embed(self, inputs: DocInputs, ids: torch.Tensor | None = None) -> torch.Tensor:
        """Word embeddings (1, windows, width, hidden) of ``ids`` (default: the doc's)."""
        layer = self.encoder.get_input_embeddings()
        with torch.no_grad():
            return layer(inputs.input_ids if ids is None else ids).unsqueeze(0).detach()

    def baseline(self, inputs: DocInputs) -> torch.Tensor:
        """The integrated-gradients baseline: every wordpiece aligned to a spaCy token
        replaced by the padding token; ``[CLS]``, ``[SEP]`` and padding kept as they are."""
        ids = inputs.input_ids.masked_fill(inputs.content, self.pad_id)
        return self.embed(inputs, ids)

    # --- forward ---------------------------------------------------------------------------
    @contextmanager
    def eval_mode(self) -> Iterator[None]:
        """Dropout off (as in prediction); the encoder's training flag restored after."""
        was_training = self.encoder.training
        self.graph.eval()
        try:
            with torch.inference_mode(False), torch.enable_grad():
                yield
        finally:
            self.encoder.train(was_training)

    @contextmanager
    def _embeddings(self, values: torch.Tensor) -> Iterator[None]:
        owner = threading.get_ident()

        def hook(module, args, output):
            return values if threading.get_ident() == owner else None

        handle = self.encoder.get_input_embeddings().register_forward_hook(hook)
        try:
            yield
        finally:
            handle.remove()

    def probs(self, inputs: DocInputs, embeds: torch.Tensor) -> torch.Tensor:
        """Probabilities (batch, n_outputs) of ``embeds`` (batch, windows, width, hidden):
        each batch row is one variant of the doc (e.g. one integrated-gradients step)."""
        batch = embeds.shape[0]
        n_windows, width = inputs.input_ids.shape
        repeat = (batch, 1)
        types = inputs.token_type_ids.repeat(*repeat) if inputs.token_type_ids is not None \
            else None
        with self._embeddings(embeds.reshape(batch * n_windows, width, -1)):
            logits, pooled, logw = self.graph(inputs.input_ids.repeat(*repeat),
                                              inputs.attention_mask.repeat(*repeat), types)
        if n_windows > 1:
            logits = self._merge(pooled.reshape(batch, n_windows, -1),
                                 logw.reshape(batch, n_windows))
        return activate(self.heads, logits)

    def _merge(self, pooled: torch.Tensor, logw: torch.Tensor) -> torch.Tensor:
        """Pool the windows of each batch row, then apply the heads (as the runner does)."""
        if self.pooling == "cls":
            vector = pooled[:, 0]
        else:
            weights = torch.softmax(logw, dim=1)
            vector = (weights.unsqueeze(-1) * pooled).sum(dim=1)
        if self.graph.hidden is not None:
            vector = torch.relu(self.graph.hidden(vector))
        return self.graph.output(vector)

    def predict(self, doc: Doc) -> np.ndarray:
        """The rebuilt forward's probabilities of one doc (n_outputs,), in ``self.keys``
        order: equal to ``doc.cats``."""
        inputs = self.inputs(doc)
        with self.eval_mode(), torch.no_grad():
            return self.probs(inputs, self.embed(inputs))[0].cpu().numpy().astype("float64")

    def last_attention(self, inputs: DocInputs) -> torch.Tensor:
        """Attention received by each wordpiece in the encoder's last layer (windows,
        width): averaged over heads and over the query positions the pooling reads (every
        wordpiece for mean / attention pooling, ``[CLS]`` for cls pooling)."""
        with self.eval_mode(), torch.no_grad(), _quiet_transformers():
            out = self.encoder(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                               **({"token_type_ids": inputs.token_type_ids}
                                  if inputs.token_type_ids is not None else {}),
                               output_attentions=True)
        if not getattr(out, "attentions", None):
            raise ConfigError(
                f"The encoder {type(self.encoder).__name__} returns no attention weights; "
                "use method 'grad' or 'ig'."
            )
        attn = out.attentions[-1].mean(dim=1)  # (windows, query, key)
        mask = inputs.attention_mask.to(attn.dtype)
        if self.pooling == "cls":
            received = attn[:, 0]
        else:
            received = (attn * mask.unsqueeze(-1)).sum(dim=1) / mask.sum(1, keepdim=True)
        return received * mask


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' notice that SDPA attention falls back to the eager one when
    attention weights are asked for (the fallback is what we want)."""
    logger = logging.getLogger("transformers")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _pad_id(tokenizer) -> int:
    pad = getattr(tokenizer, "pad_token_id", None)
    if pad is None:
        pad = getattr(tokenizer, "unk_token_id", None)
    return int(pad or 0)
