"""ONNX Runtime export and inference for ``senti_textcat`` and ``senti_aspects`` pipelines.

* :func:`spacy_senti.onnx.export.export_onnx` (needs torch): one graph with the fine-tuned
  encoder, the pooling and every head (and the wordpiece states for ``senti_aspects``, whose
  tagger and polarity weights run in numpy: :mod:`spacy_senti.onnx.aspects`); optional
  dynamic int8 quantisation.
* :class:`SentiOnnx` (this module; onnxruntime + tokenizers + numpy, no torch, no spaCy;
  an export with aspect terms imports spaCy and thinc for them): ``SentiOnnx(path).predict(texts)``.
* the spaCy factory ``senti_onnx`` in :mod:`spacy_senti.onnx.component`.
"""

from .runner import MANIFEST, SentiOnnx

__all__ = ["MANIFEST", "SentiOnnx"]
