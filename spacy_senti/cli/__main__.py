"""``python -m spacy_senti.cli``: the same app as the ``spacy-senti`` console script."""

from . import app

app()
