"""Every user-facing error of spacy-senti: one family under :class:`SentiError`.

``SentiError`` subclasses ``ValueError`` (bad configuration or input), so code that caught
``ValueError`` keeps working. The command line catches ``SentiError`` in one place
(``spacy_senti.cli._util``) and prints ``Error: <message>`` with exit code 1, never a
traceback. Messages say what is wrong and how to fix it.
"""

from __future__ import annotations


class SentiError(ValueError):
    """Base class of spacy-senti's user-facing errors."""


class ConfigError(SentiError):
    """A component configuration, head setting or label that does not fit together."""


class InputError(SentiError):
    """A file, pipeline or data set given by the user cannot be used as it is."""


class BackboneNotFound(SentiError):
    """The transformer backbone named in a config is neither installed nor reachable."""


class ExportError(SentiError):
    """A pipeline (or a part of it) that cannot be exported to ONNX."""


# Names used by spacy-senti 0.1, kept so user code that caught them keeps working.
SentiConfigError = ConfigError
DataFormatError = InputError
EvaluationInputError = InputError
LoopInputError = InputError
OnnxExportError = ExportError

__all__ = [
    "BackboneNotFound",
    "ConfigError",
    "DataFormatError",
    "EvaluationInputError",
    "ExportError",
    "InputError",
    "LoopInputError",
    "OnnxExportError",
    "SentiConfigError",
    "SentiError",
]
