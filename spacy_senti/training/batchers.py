"""Length-bucketed training batches: ``spacy_senti.batch_by_length.v1``.

``spacy train`` shuffles the training examples each epoch and ``spacy.batch_by_sequence.v1``
cuts them into batches of N docs in that random order, so each batch is padded to its longest
doc. SST-2's training set is mostly short phrases with a long tail of full sentences: on a
4,000-doc sample a random batch of 32 holds 33% real wordpieces, the rest is padding the
encoder runs over anyway.

``batch_by_length`` is the analogue of Hugging Face's ``group_by_length``
(``LengthGroupedSampler``): take a window of ``buffer`` batches' worth of the (already
shuffled) examples, sort it by length, cut batches of exactly ``size`` docs and yield them in
random order. A batch then spans docs of nearly the same length (94% real wordpieces on that
sample when sorting by wordpieces, 76% by spaCy tokens) while every step still sees ``size``
docs, so learning-rate schedules and losses averaged per batch mean what they meant.

spaCy's ``spacy.batch_by_padded.v1`` also sorts a buffer by length, but caps
``docs x longest doc`` instead of the number of docs: a batch of one- or two-token phrases
holds ten times more docs than a batch of sentences, so the batch size (and the gradient's
noise, the per-step schedules, the share of the epoch a step covers) swings with length.
``spacy_senti.wordpiece_length.v1`` gives the length in the backbone's wordpieces (what the
encoder pads), counted once per text with the backbone's tokenizer.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import minibatch, registry

from ..errors import ConfigError, InputError

ItemT = TypeVar("ItemT")
BatcherT = Callable[[Iterable[ItemT]], Iterator[list[ItemT]]]


@registry.batchers("spacy_senti.batch_by_length.v1")
def configure_batch_by_length(
    size: int, buffer: int = 50, get_length: Callable[[Any], int] | None = None
) -> BatcherT:
    """A batcher of ``size`` docs per batch, docs of similar length together.

    size: docs per batch (the last batch of an epoch may be smaller).
    buffer: batches per sorting window (Hugging Face's ``group_by_length`` uses 50): larger
        windows pad less but order the epoch less randomly.
    get_length: length of one item; default ``len`` (spaCy tokens of an Example or Doc).
        ``spacy_senti.wordpiece_length.v1`` counts the backbone's wordpieces instead.
    """
    for name, value in (("size", size), ("buffer", buffer)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(
                f"spacy_senti.batch_by_length.v1: {name} must be a positive integer, not "
                f"{value!r} ([training.batcher] {name})."
            )
    length = get_length if get_length is not None else len

    def batcher(items: Iterable[ItemT]) -> Iterator[list[ItemT]]:
        return batch_by_length(items, size, buffer=buffer, get_length=length)

    return batcher


def batch_by_length(
    items: Iterable[ItemT],
    size: int,
    *,
    buffer: int = 50,
    get_length: Callable[[ItemT], int] = len,
    rng: random.Random | None = None,
) -> Iterator[list[ItemT]]:
    """Batches of ``size`` items, each from one length-sorted window of ``size * buffer``.

    Within a window the items are sorted by ``get_length`` (stable: equal lengths keep the
    incoming order), cut into consecutive batches of ``size``, and the batches shuffled with
    ``rng`` (default: the ``random`` module, which ``spacy train`` seeds from
    ``[training] seed``). Every item is yielded exactly once; only the last window's last
    batch may hold fewer than ``size``.
    """
    shuffle = (rng or random).shuffle
    for window in minibatch(items, size=size * buffer):
        lengths = [get_length(item) for item in window]
        order = sorted(range(len(window)), key=lengths.__getitem__)
        batches = [[window[i] for i in order[j : j + size]] for j in range(0, len(order), size)]
        shuffle(batches)
        yield from batches


@registry.misc("spacy_senti.wordpiece_length.v1")
def configure_wordpiece_length(name: str) -> Callable[[Any], int]:
    """Length of an Example, Doc or text in wordpieces of backbone ``name`` (special tokens
    included), for ``spacy_senti.batch_by_length.v1``. The tokenizer is loaded on first use
    (``spacy_senti.backbone.resolve_backbone``); each distinct text is tokenized once."""
    return WordpieceLength(name)


class WordpieceLength:
    """``len`` in the wordpieces of a backbone's tokenizer, cached per text."""

    def __init__(self, name: str, max_cached: int = 1_000_000) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigError(
                "spacy_senti.wordpiece_length.v1: name must name a backbone (as "
                f"paths.backbone does), not {name!r}."
            )
        self.name = name
        self.max_cached = max_cached
        self.cache: dict[str, int] = {}
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The backbone's fast tokenizer, loaded once."""
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from ..backbone import resolve_backbone

            self._tokenizer = AutoTokenizer.from_pretrained(
                resolve_backbone(self.name), use_fast=True
            )
        return self._tokenizer

    def __call__(self, item: Example | Doc | str) -> int:
        if isinstance(item, Example):
            text = item.predicted.text
        elif isinstance(item, Doc):
            text = item.text
        elif isinstance(item, str):
            text = item
        else:
            raise InputError(
                "spacy_senti.wordpiece_length.v1 measures an Example, a Doc or a str, not "
                f"{type(item).__name__}."
            )
        count = self.cache.get(text)
        if count is None:
            if len(self.cache) >= self.max_cached:
                self.cache.clear()
            ids = self.tokenizer(text, return_attention_mask=False,
                                 return_token_type_ids=False, verbose=False)["input_ids"]
            count = self.cache[text] = len(ids)
        return count
