"""spacy-senti: sentiment, emotion and aspect heads for spaCy over one transformer pass.

Components register through entry points (``spacy_factories``), so ``spacy.load`` and
``nlp.add_pipe("senti_textcat")`` need no import of this package.
"""

from .errors import SentiError

__version__ = "0.1.0"

__all__ = ["SentiError", "__version__"]
