"""One training step over a whole pipeline, in the order ``spacy train`` takes it.

``nlp.update(examples, sgd=optimizer)`` calls each component's ``finish_update`` right after
its own ``update``: a shared ``transformer`` comes first, so its weights move before its
listeners (``senti_textcat``, ``senti_aspects``) have sent back this batch's gradient. Every
step then applies the previous batch's transformer gradient, and a single step none at all
(explosion/spaCy#12136, fixed in spaCy v4). spaCy's own loop updates with ``sgd=False`` and
then finishes every component; :func:`train_step` does the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from spacy.language import Language
from spacy.training import Example
from thinc.api import Optimizer


def train_step(nlp: Language, examples: Sequence[Example], optimizer: Optimizer, *,
               drop: float = 0.0, losses: dict[str, float] | None = None,
               exclude: Iterable[str] = ()) -> dict[str, float]:
    """Backpropagate ``examples`` through every component, then apply ``optimizer`` to each
    trainable one (as ``spacy.training.loop.train_while_improving``); returns the losses."""
    exclude = set(exclude)
    losses = nlp.update(examples, sgd=False, drop=drop, losses=losses, exclude=exclude)
    for name, proc in nlp.pipeline:
        if (name not in exclude and getattr(proc, "is_trainable", False)
                and getattr(proc, "model", None) not in (True, False, None)):
            proc.finish_update(optimizer)
    return losses
