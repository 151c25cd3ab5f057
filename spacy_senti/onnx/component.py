"""spaCy factory ``senti_onnx``: an exported pipeline as a spaCy component.

``nlp = spacy.blank("en"); nlp.add_pipe("senti_onnx", config={"path": "model_onnx"})`` sets
the same ``doc.cats`` keys and ``doc._`` views as ``senti_textcat``. The transformer windows
are cut on the doc's spaCy tokens (``strided_spans``), so long docs match spaCy exactly.
``nlp.to_disk`` copies the exported folder into the pipeline, so ``spacy.load`` works.

An export with aspect terms (``senti_aspects``) also gets ``doc.spans[spans_key]``,
``span._.polarity_scores`` and ``doc._.aspect_terms``, written by ``senti_aspects``' own
``set_annotations`` from one encoder pass shared with the heads.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.pipeline import Pipe
from spacy.tokens import Doc
from spacy.util import minibatch

from ..errors import ConfigError
from ..extensions import register_aspect_term_extensions, register_head_extensions
from ..heads import Head
from .runner import SentiOnnx

_INHERITED_SESSIONS: list[SentiOnnx] = []


@Language.factory(
    "senti_onnx",
    assigns=["doc.cats", "doc.spans", "doc._.aspect_terms"],
    default_config={"path": None, "variant": None, "threads": None, "batch_size": 64},
)
def make_senti_onnx(nlp: Language, name: str, path: str | None, variant: str | None,
                    threads: int | None, batch_size: int) -> SentiOnnxTextCategorizer:
    """Annotate docs with an ONNX export of senti_textcat.

    path: folder written by ``spacy-senti export-onnx`` (None: loaded by ``from_disk``).
    variant: ``fp32`` or ``int8`` (default: the export's default).
    threads: onnxruntime intra-op threads; batch_size: docs per onnxruntime call.
    """
    return SentiOnnxTextCategorizer(name, path=path, variant=variant, threads=threads,
                              batch_size=batch_size)


class SentiOnnxTextCategorizer(Pipe):
    """Sets ``doc.cats`` and the typed ``doc._`` views from the ONNX runner (and, for an
    export with ``senti_aspects``, its term spans and ``doc._.aspect_terms``)."""

    def __init__(self, name: str = "senti_onnx", *, path: str | None = None,
                 variant: str | None = None, threads: int | None = None,
                 batch_size: int = 64) -> None:
        self.name = name
        self.variant = variant
        self.threads = threads
        self.batch_size = batch_size
        self.runner: SentiOnnx | None = None
        self._pid = os.getpid()
        if path is not None:
            self._load(Path(path))

    def _load(self, path: Path) -> None:
        self.runner = SentiOnnx(path, variant=self.variant, threads=self.threads,
                                batch_size=self.batch_size)
        self._pid = os.getpid()
        for head in self.runner.heads:
            register_head_extensions(head)
        if self.runner.aspects is not None:
            register_aspect_term_extensions()

    @property
    def heads(self) -> list[Head]:
        """The exported heads (as ``senti_textcat.heads``); empty before a model is loaded."""
        return list(self.runner.heads) if self.runner is not None else []

    @property
    def has_aspect_terms(self) -> bool:
        """Whether the loaded export carries ``senti_aspects`` (then ``doc._.aspect_terms``
        and ``doc.spans`` are set; the factory's ``assigns`` lists them for any export)."""
        return self.runner is not None and self.runner.aspects is not None

    def _require(self) -> SentiOnnx:
        if self.runner is None:
            raise ConfigError(
                f"{self.name} has no ONNX model: set its config `path` to a folder written by "
                "`spacy-senti export-onnx`, e.g. nlp.add_pipe('senti_onnx', "
                "config={'path': 'model_onnx'})."
            )
        if self._pid != os.getpid():
            # A forked child (nlp.pipe(n_process=...)): a session's thread pool does not
            # survive fork, so each process opens its own. The inherited one is kept, never
            # freed here: destroying it joins the parent's threads (a crash, onnxruntime#31961).
            _INHERITED_SESSIONS.append(self.runner)
            self._load(self.runner.path)
        return self.runner

    def __call__(self, doc: Doc) -> Doc:
        self.set_annotations([doc], self.predict([doc]))
        return doc

    def pipe(self, stream: Iterable[Doc], *, batch_size: int = 128) -> Iterator[Doc]:
        for docs in minibatch(stream, size=batch_size):
            self.set_annotations(docs, self.predict(docs))
            yield from docs

    def predict(self, docs: Iterable[Doc]) -> OnnxPrediction:
        """Head probabilities (n_docs, n_outputs; rows of empty docs are 0) and, for an
        export with aspects, the ``senti_aspects`` prediction, from one encoder pass."""
        runner = self._require()
        probs, rows = runner.predict_docs(
            [(doc.text, [(t.idx, t.idx + len(t)) for t in doc]) for doc in docs]
        )
        aspects = runner.aspects.predict(rows) if runner.aspects is not None and rows else None
        return OnnxPrediction(probs, aspects)

    def set_annotations(self, docs: Iterable[Doc], prediction: OnnxPrediction) -> None:
        """Same keys and views as ``senti_textcat.set_annotations`` (and
        ``senti_aspects.set_annotations`` for an export with aspects)."""
        runner = self._require()
        docs = list(docs)
        if prediction.aspects is not None:
            from ..components.aspects import set_aspect_annotations

            aspects = runner.aspects
            set_aspect_annotations(docs, prediction.aspects, aspects.labels,
                                   aspects.info["spans_key"])
        for doc, row in zip(docs, prediction.probs):
            if not len(doc):
                continue
            start = 0
            for head in runner.heads:
                values = row[start:start + head.n_outputs]
                start += head.n_outputs
                for key, p in zip(head.keys(), values):
                    doc.cats[key] = float(p)
                head.set_extensions(doc, head.decode(values))

    def to_disk(self, path, *, exclude=tuple()) -> None:
        runner = self._require()
        path = Path(path)
        if path.resolve() != runner.path.resolve():
            if path.exists():
                shutil.rmtree(path)
            shutil.copytree(runner.path, path)

    def from_disk(self, path, *, exclude=tuple()) -> SentiOnnxTextCategorizer:
        self._load(Path(path))
        return self


@dataclass
class OnnxPrediction:
    """What ``senti_onnx.predict`` returns: head probabilities (n_docs, n_outputs) and the
    ``senti_aspects`` ``AspectPrediction`` (None for an export without aspects)."""

    probs: np.ndarray
    aspects: Any = None


# The 0.1 name of the component class.
SentiOnnxComponent = SentiOnnxTextCategorizer
