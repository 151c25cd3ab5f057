"""ONNX Runtime export and inference for ``senti_textcat`` pipelines.

* :func:`spacy_senti.onnx.export.export_onnx` (needs torch): one graph with the fine-tuned
  encoder, the pooling and every head; optional dynamic int8 quantisation.
* :class:`SentiOnnx` (this module; onnxruntime + tokenizers + numpy, no torch, no spaCy):
  ``SentiOnnx(path).predict(texts)``.
* the spaCy factory ``senti_onnx`` in :mod:`spacy_senti.onnx.component`.
"""

from .runner import MANIFEST, SentiOnnx

__all__ = ["MANIFEST", "SentiOnnx"]
