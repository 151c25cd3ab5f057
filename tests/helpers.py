"""Builders used by several test modules."""

from __future__ import annotations

import random
from pathlib import Path

import spacy
from conftest import CONFIGS
from spacy.language import Language
from spacy.training import Example
from thinc.api import Config


def load_config(name: str, backbone: Path, **overrides) -> Config:
    """A config from configs/ with the backbone pointed at a test model."""
    config = Config().from_disk(CONFIGS / f"{name}.cfg")
    flat = {"paths.backbone": str(backbone), **overrides}
    return config.merge(_nest(flat))


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def nlp_from_config(config: Config) -> Language:
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def make_examples(nlp: Language, rows: list[tuple[str, dict[str, float]]]) -> list[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in rows]


def train(nlp: Language, examples: list[Example], n_iter: int = 60, lr: float = 0.005,
          seed: int = 0) -> list[float]:
    """Overfit a pipeline on a few examples; returns the loss per iteration."""
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(seed)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    optimizer = Adam(lr)
    history = []
    rng = random.Random(seed)
    for _ in range(n_iter):
        batch = list(examples)
        rng.shuffle(batch)
        losses: dict[str, float] = {}
        nlp.update(batch, sgd=optimizer, losses=losses)
        history.append(losses["senti_textcat"])
    return history
