"""The ``spacy-senti`` command line (Typer), as in spaCy's ``spacy/cli``.

``_util`` defines the app, the error printer and the table helpers; each command module
registers its command(s) on that app with ``@app.command(...)`` when it is imported here.
Nothing outside ``spacy_senti.cli`` imports from it.
"""

from __future__ import annotations

# Importing a command module registers its command(s) on ``app``.
from . import (  # noqa: F401
    backbone,
    convert,
    cv,
    distill,
    drift,
    evaluate,
    explain,
    export_onnx,
    fewshot,
    fit_hybrid,
    score,
    select,
    serve,
    tune_thresholds,
)
from ._util import app

__all__ = ["app"]
