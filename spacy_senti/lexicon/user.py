"""User and domain lexicons: ``term<TAB>valence`` and ``term<TAB>emotion[<TAB>score]`` files."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from ..errors import ConfigError, InputError

DATA_PACKAGE = "spacy_senti.lexicon"


def normalize_term(term: str) -> str:
    """Lower-case, typographic apostrophes to ASCII, single spaces."""
    return " ".join(term.replace("\u2019", "'").lower().split())


def _rows(text: str, source: str) -> Iterable[tuple[int, list[str]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip("\r\n")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        yield number, [field.strip() for field in line.split("\t")]


def parse_valence_tsv(text: str, source: str = "<string>") -> dict[str, float]:
    """``{term: valence}`` from ``term<TAB>valence`` lines (``#`` comments, blank lines skipped)."""
    entries: dict[str, float] = {}
    for number, fields in _rows(text, source):
        if len(fields) < 2 or not fields[0]:
            raise InputError(f"{source}:{number}: expected 'term<TAB>valence', got {fields!r}")
        try:
            entries[normalize_term(fields[0])] = float(fields[1])
        except ValueError as err:
            raise InputError(f"{source}:{number}: valence {fields[1]!r} is not a number") from err
    return entries


def read_valence_tsv(path: str | Path) -> dict[str, float]:
    """Read one user lexicon file."""
    path = Path(path)
    return parse_valence_tsv(path.read_text(encoding="utf-8"), str(path))


def read_valence_tsvs(paths: Iterable[str | Path]) -> dict[str, float]:
    """Read several user lexicon files; later files override earlier ones."""
    entries: dict[str, float] = {}
    for path in paths:
        entries.update(read_valence_tsv(path))
    return entries


def available_domains() -> list[str]:
    """Names of the domain lexicons shipped under ``spacy_senti/lexicons/data``."""
    data = resources.files(DATA_PACKAGE).joinpath("data")
    return sorted(p.name[:-4] for p in data.iterdir() if p.name.endswith(".tsv"))


def domain_lexicon(name: str) -> dict[str, float]:
    """The shipped domain additions ``name`` (e.g. ``"finance"``)."""
    if name not in available_domains():
        raise ConfigError(f"unknown lexicon domain {name!r}; available: {available_domains()}")
    resource = resources.files(DATA_PACKAGE).joinpath("data", f"{name}.tsv")
    return parse_valence_tsv(resource.read_text(encoding="utf-8"), f"domain:{name}")


def read_emotion_tsv(path: str | Path) -> dict[str, dict[str, float]]:
    """``{term: {emotion: score}}`` from ``term<TAB>emotion[<TAB>score]`` lines.

    The score defaults to 1.0; rows with score 0 are dropped (so files in the common
    ``word<TAB>emotion<TAB>0/1`` association format can be used as they are).
    """
    path = Path(path)
    entries: dict[str, dict[str, float]] = {}
    for number, fields in _rows(path.read_text(encoding="utf-8"), str(path)):
        if len(fields) < 2 or not fields[0] or not fields[1]:
            raise InputError(f"{path}:{number}: expected 'term<TAB>emotion[<TAB>score]'")
        try:
            score = float(fields[2]) if len(fields) > 2 and fields[2] else 1.0
        except ValueError as err:
            raise InputError(f"{path}:{number}: score {fields[2]!r} is not a number") from err
        if score:
            entries.setdefault(normalize_term(fields[0]), {})[fields[1]] = score
    return entries
