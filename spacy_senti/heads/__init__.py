"""Head kinds of ``senti_textcat`` and the ``doc.cats`` key scheme.

A kind is a class; ``HEAD_KINDS`` maps the ``kind`` setting of a head to it. A new kind is a
new :class:`Head` subclass plus one entry here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..errors import ConfigError
from .base import ABSENT, LOSSES, SEP, Head, SoftmaxHead, head_class
from .exclusive import ExclusiveHead
from .grouped import GroupedHead
from .multilabel import MultilabelHead

HEAD_KINDS: dict[str, type[Head]] = {
    "exclusive": ExclusiveHead,
    "multilabel": MultilabelHead,
    "grouped": GroupedHead,
}
HeadSpec = Head  # the name of release 0.1: ``HeadSpec(name, kind, labels=...)``


def heads_from_config(heads: Mapping[str, Mapping[str, Any]]) -> list[Head]:
    """Validate the ``heads`` block of ``senti_textcat``; order is the config's."""
    if not heads:
        raise ConfigError(
            "senti_textcat needs at least one head, e.g. "
            "[components.senti_textcat.heads.sentiment] with kind = \"exclusive\"."
        )
    return [Head.from_config(name, cfg) for name, cfg in heads.items()]


def find_head(heads: Iterable[Head], key: str) -> Head | None:
    """The head a namespaced ``doc.cats`` key belongs to, or None."""
    prefix = key.split(SEP, 1)[0]
    for head in heads:
        if head.name == prefix:
            return head
    return None


__all__ = ["ABSENT", "HEAD_KINDS", "LOSSES", "SEP", "ExclusiveHead", "GroupedHead", "Head",
           "HeadSpec", "MultilabelHead", "SoftmaxHead", "find_head", "head_class",
           "heads_from_config"]
