"""Convert labelled text (CSV/TSV/JSONL/lines, GoEmotions, TweetEval, SemEval-2014 XML) to
spaCy ``DocBin`` files whose ``doc.cats`` follow :mod:`spacy_senti.heads`.

Every doc gets the full key set of its head with 0.0/1.0 values (grouped heads: for each
group ``absent`` + polarities), so it is unambiguously annotated for that head. Nothing is
dropped silently: every input row ends up either in an output split or in a skip counter
with its reason and location, and ``rows in == docs out + skipped``.

SemEval-2014 aspect TERMS (``--level terms|both``) become ``doc.spans[spans_key]`` (label =
polarity); every converted sentence gets the key, an empty group when it has no terms, which
marks it as annotated. Terms are counted the same way: ``terms in == terms out + skipped``.
"""

from __future__ import annotations

import difflib
import itertools
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from ..errors import ConfigError, InputError
from ..extensions import ASPECTS_SPANS_KEY
from ..heads import ABSENT, HEAD_KINDS, SEP, Head
from .clean import CleanConfig, clean_text
from .readers import READERS, RawTerm, ReaderOptions, Record, open_source, split_multi
from .split import DuplicateReport, dedupe, find_duplicates, stratified_sample, stratified_split

if TYPE_CHECKING:
    from spacy.tokenizer import Tokenizer
    from spacy.tokens import Doc, Span

FORMATS = tuple(READERS)
DEFAULT_HEAD = {"goemotions": ("emotion", "multilabel"), "semeval14": ("aspect", "grouped")}
GROUP_ALIASES = {"anecdotes/miscellaneous": "anecdotes"}
SPLIT_ALIASES = {"train": "train", "dev": "dev", "val": "dev", "valid": "dev",
                 "validation": "dev", "test": "test"}
SPLIT_NAMES = ("train", "dev", "test")
EXTENSIONS = {"csv": (".csv",), "tsv": (".tsv",), "goemotions": (".tsv",),
              "jsonl": (".jsonl", ".json"), "lines": (".txt",), "tweeteval": ("_text.txt",),
              "semeval14": (".xml",)}

EMPTY_TEXT = "empty text"
EMPTY_LABEL = "empty label"
UNKNOWN_LABEL = "unknown label"
MALFORMED = "malformed row"
SEVERAL_LABELS = "several labels for an exclusive head"
CONFLICTING_ASPECT = "conflicting polarities for one aspect"
NOT_SAMPLED = "not sampled (--sample)"
DUPLICATE = "duplicate (--dedupe)"
DATA_PROBLEMS = (EMPTY_TEXT, EMPTY_LABEL, UNKNOWN_LABEL, MALFORMED, SEVERAL_LABELS,
                 CONFLICTING_ASPECT)
MAX_LOCATIONS = 10

LEVELS = ("categories", "terms", "both")
# why an aspect term is skipped (its sentence may still be converted)
TERM_NULL = "implicit target (NULL)"
TERM_MALFORMED = "malformed aspectTerm"
TERM_BAD_OFFSETS = "offsets outside the text"
TERM_LOST = "term lost by cleaning"
TERM_UNALIGNED = "no token boundary, even expanded"
TERM_DUPLICATE = "duplicate span in sentence"
TERM_SENTENCE = "sentence skipped"
TERM_PROBLEMS = (TERM_MALFORMED, TERM_BAD_OFFSETS)  # --strict fails on these
# kept terms, with a note
TERM_EXPANDED = "term misaligned, expanded to tokens"
TERM_TEXT_DIFFERS = "offset text differs from term (offsets kept)"


def polarity_reason(polarity: str) -> str:
    """The skip reason of a term whose polarity ``--labels`` (or ``--label-map``) leaves out."""
    return f"polarity {polarity!r} not in --labels"


def sentence_reason(reason: str) -> str:
    """The skip reason of the terms of a sentence skipped for ``reason``."""
    return f"{TERM_SENTENCE} ({reason})"


@dataclass
class ConvertOptions(ReaderOptions):
    """What to read (the reader's options) and how to annotate it (``spacy-senti convert``)."""

    head: str | None = None
    kind: str | None = None
    label_map: dict[str, str] | None = None
    labels: list[str] | None = None
    groups: list[str] | None = None
    clean: CleanConfig = field(default_factory=CleanConfig)
    strict: bool = False
    limit: int | None = None
    spans_key: str = ASPECTS_SPANS_KEY
    lang: str = "en"

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InputError(
                f"Unknown --format {self.format!r}; use one of {', '.join(FORMATS)}."
            )
        if self.level not in LEVELS:
            raise InputError(f"--level {self.level!r}: use one of {', '.join(LEVELS)}.")
        if self.level != "categories" and self.format != "semeval14":
            raise InputError(
                f"--level {self.level} converts SemEval-2014 <aspectTerm> spans: use it with "
                "--format semeval14 (other formats have no term offsets)."
            )
        if self.level == "terms" and self.groups:
            raise InputError("--groups selects aspect categories; --level terms has none "
                             "(use --level both to convert categories and terms).")
        if self.reads_terms and not self.spans_key.strip():
            raise InputError("--spans-key must be a non-empty name.")
        head, kind = DEFAULT_HEAD.get(self.format, ("sentiment", "exclusive"))
        self.head = self.head or head
        self.kind = self.kind or kind
        if self.kind not in HEAD_KINDS:
            raise InputError(f"--kind must be one of {', '.join(HEAD_KINDS)}.")
        if SEP in self.head or not self.head:
            raise InputError(f"--head {self.head!r}: use a non-empty name without '/'.")

    @property
    def head_class(self) -> type[Head]:
        """The head class of ``--kind`` (the one place the option's string is read)."""
        return HEAD_KINDS[self.kind or ""]

    def reader_options(self) -> ReaderOptions:
        """The reading part of these options."""
        shared = {f.name: getattr(self, f.name) for f in fields(ReaderOptions)}
        return ReaderOptions(**{**shared, "grouped": self.head_class.has_groups})


class TermSpan(NamedTuple):
    """An aligned aspect term: character offsets into the cleaned text (on token
    boundaries of the ``--lang`` tokenizer) and its polarity."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class LabelledText:
    """A converted row: cleaned text and its labels (grouped: ``"group/polarity"``).

    terms: the aspect term spans (``--level terms|both``; ``()`` = annotated, none); None
        when terms are not converted.
    """

    text: str
    labels: tuple[str, ...]
    where: str
    terms: tuple[TermSpan, ...] | None = None


@dataclass
class TermStats:
    """Aspect terms of one input: read, skipped by reason, kept with a note, written."""

    n_in: int = 0
    n_out: int = 0
    skipped: Counter = field(default_factory=Counter)
    notes: Counter = field(default_factory=Counter)
    locations: dict[str, list[str]] = field(default_factory=dict)

    def _place(self, reason: str, where: str, detail: str) -> None:
        places = self.locations.setdefault(reason, [])
        if len(places) < MAX_LOCATIONS:
            places.append(f"{where} {detail}".strip())

    def skip(self, reason: str, where: str, detail: str = "", n: int = 1) -> None:
        self.skipped[reason] += n
        self._place(reason, where, detail)

    def note(self, what: str, where: str, detail: str = "") -> None:
        self.notes[what] += 1
        self._place(what, where, detail)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def n_problems(self) -> int:
        return sum(self.skipped[r] for r in TERM_PROBLEMS)


@dataclass
class InputStats:
    """Rows read from one input file and the rows skipped, by reason, with locations."""

    name: str
    path: Path
    n_in: int = 0
    skipped: Counter = field(default_factory=Counter)
    locations: dict[str, list[str]] = field(default_factory=dict)
    terms: TermStats | None = None

    def skip(self, reason: str, where: str, detail: str = "", n_terms: int = 0) -> None:
        """Skip a row; ``n_terms`` of its aspect terms are skipped with it."""
        self.skipped[reason] += 1
        places = self.locations.setdefault(reason, [])
        if len(places) < MAX_LOCATIONS:
            places.append(f"{where} {detail}".strip())
        if self.terms is not None and n_terms:
            self.terms.skip(sentence_reason(reason), where, n=n_terms)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    @property
    def n_problems(self) -> int:
        return sum(self.skipped[r] for r in DATA_PROBLEMS)


@dataclass
class ConversionResult:
    """Converted splits, the head they annotate, and every count the report prints.

    head: None with ``--level terms`` (no ``doc.cats``). term_labels: the term polarities
    (``--level terms|both``), written as span labels under ``spans_key``.
    """

    head: Head | None
    splits: dict[str, list[LabelledText]]
    inputs: list[InputStats]
    duplicates: DuplicateReport
    clean: CleanConfig = field(default_factory=CleanConfig)
    labels_from: str = "the data"
    outputs: dict[str, Path] = field(default_factory=dict)
    term_labels: list[str] | None = None
    spans_key: str = ASPECTS_SPANS_KEY
    lang: str = "en"

    @property
    def n_in(self) -> int:
        return sum(s.n_in for s in self.inputs)

    @property
    def n_out(self) -> int:
        return sum(len(docs) for docs in self.splits.values())

    @property
    def n_skipped(self) -> int:
        return sum(s.n_skipped for s in self.inputs)

    def label_counts(self, split: str) -> Counter:
        """Docs per label (grouped: per ``group/polarity``) in one output split."""
        return Counter(lab for ex in self.splits[split] for lab in ex.labels)

    @property
    def has_terms(self) -> bool:
        """Whether aspect terms were converted (``--level terms|both``)."""
        return self.term_labels is not None

    def term_counts(self, split: str) -> Counter:
        """Aspect terms per polarity in one output split."""
        return Counter(t.label for ex in self.splits[split] for t in ex.terms or ())

    def docs_with_terms(self, split: str) -> int:
        """Docs of one output split that have at least one aspect term."""
        return sum(1 for ex in self.splits[split] if ex.terms)


# --- labels -------------------------------------------------------------------------------
def parse_label_map(spec: str | None) -> dict[str, str] | None:
    """``"0=negative,1=positive"`` -> ``{"0": "negative", "1": "positive"}``."""
    if not spec:
        return None
    mapping = {}
    for item in split_multi(spec, ","):
        if "=" not in item:
            raise InputError(f"--label-map item {item!r} is not 'raw=name'.")
        raw, name = item.split("=", 1)
        mapping[raw.strip()] = name.strip()
    return mapping


def key_safe(name: str) -> str:
    """A label usable inside a ``doc.cats`` key: trimmed, no '/' (replaced by '_')."""
    return " ".join(name.split()).replace(SEP, "_")


def group_name(raw: str) -> str:
    """Normalised aspect group: ``anecdotes/miscellaneous`` -> ``anecdotes``, no '/' or spaces."""
    name = " ".join(raw.split())
    name = GROUP_ALIASES.get(name.lower(), name)
    return re.sub(r"[\s/]+", "_", name).strip("_")


class _Labeller:
    """Maps raw labels to head labels, or gives the reason a row must be skipped."""

    def __init__(self, opts: ConvertOptions, declared_map: dict[str, str] | None) -> None:
        self.opts = opts
        self.declared_map = declared_map
        self.user_map = opts.label_map
        self.allowed: set[str] | None = None
        if opts.labels:
            self.allowed = {key_safe(lab) for lab in opts.labels}
        elif opts.label_map and not opts.head_class.has_groups:
            self.allowed = {key_safe(v) for v in opts.label_map.values()}
        elif declared_map is not None and not opts.head_class.has_groups:
            self.allowed = {key_safe(v) for v in declared_map.values()}
        self.allowed_groups = {group_name(g) for g in opts.groups} if opts.groups else None

    def _map(self, raw: str) -> str | None:
        label = raw.strip()
        if self.declared_map is not None:
            if label not in self.declared_map:
                return None
            label = self.declared_map[label]
        if self.user_map is not None:
            if label not in self.user_map:
                return None
            label = self.user_map[label]
        label = key_safe(label)
        if not label or (self.allowed is not None and label not in self.allowed):
            return None
        return label

    def __call__(self, rec: Record) -> tuple[tuple[str, ...], str, str]:
        """(labels, skip reason or "", detail for the report)."""
        if self.opts.head_class.has_groups:
            return self._aspects(rec)
        if rec.labels is None:
            return (), EMPTY_LABEL, ""
        raw = rec.labels
        if not self.opts.head_class.single_label:
            raw = [piece for item in raw for piece in split_multi(item, self.opts.multi_sep)]
        elif len(raw) != 1:
            return (), (EMPTY_LABEL if not raw else SEVERAL_LABELS), repr(raw)
        labels: list[str] = []
        for item in raw:
            label = self._map(item)
            if label is None:
                return (), UNKNOWN_LABEL, repr(item)
            if label not in labels:
                labels.append(label)
        return tuple(labels), "", ""

    def polarity(self, raw: str) -> str | None:
        """An aspect term's polarity as a span label; None when --labels/--label-map drop it."""
        return self._map(raw.lower())

    def _aspects(self, rec: Record) -> tuple[tuple[str, ...], str, str]:
        if rec.aspects is None:
            return (), EMPTY_LABEL, ""
        chosen: dict[str, str] = {}
        for raw_group, raw_pol in rec.aspects:
            if raw_pol.strip().lower() == ABSENT:  # an explicit "not mentioned"
                continue
            group = group_name(raw_group)
            polarity = self._map(raw_pol.lower())
            if not group or polarity is None or (
                self.allowed_groups is not None and group not in self.allowed_groups
            ):
                return (), UNKNOWN_LABEL, repr(f"{raw_group}:{raw_pol}")
            if chosen.setdefault(group, polarity) != polarity:
                return (), CONFLICTING_ASPECT, repr(group)
        return tuple(f"{g}{SEP}{p}" for g, p in chosen.items()), "", ""


# --- aspect terms -------------------------------------------------------------------------
def cleaned_offsets(raw: str, cleaned: str) -> Callable[[int, int], tuple[int, int]]:
    """Map ``(start, end)`` character offsets of ``raw`` onto ``cleaned`` (the text after
    cleaning) through difflib's matching blocks: kept characters move with the text, a
    removed or replaced run maps to the edges of its replacement."""
    if raw == cleaned:
        return lambda start, end: (start, end)
    starts = [len(cleaned)] * (len(raw) + 1)
    ends = [0] * (len(raw) + 1)
    matcher = difflib.SequenceMatcher(None, raw, cleaned, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        for k in range(i1, i2):
            equal = tag == "equal"
            starts[k] = j1 + k - i1 if equal else j1
            ends[k + 1] = j1 + k - i1 + 1 if equal else j2
    return lambda start, end: (starts[start], ends[end])


class _TermAligner:
    """Turns a sentence's raw ``<aspectTerm>`` elements into :class:`TermSpan` on the token
    boundaries of the cleaned text, counting every term kept, noted or skipped."""

    def __init__(self, labeller: _Labeller, lang: str) -> None:
        import spacy

        self.labeller = labeller
        self.tokenizer: Tokenizer = spacy.blank(lang).tokenizer

    def __call__(self, rec: Record, text: str, stats: TermStats) -> tuple[TermSpan, ...]:
        """The term spans of ``rec`` on ``text`` (``rec.text`` after cleaning)."""
        if not rec.terms:
            return ()
        to_clean = cleaned_offsets(rec.text, text)
        doc = self.tokenizer(text)
        spans: list[TermSpan] = []
        for term in rec.terms:
            offsets = self._offsets(term, rec.text, stats)
            if offsets is None:
                continue
            start, end, label = offsets
            start, end = to_clean(start, end)
            while start < end and text[start].isspace():
                start += 1
            while end > start and text[end - 1].isspace():
                end -= 1
            if start >= end:
                stats.skip(TERM_LOST, term.where, repr(term.term))
                continue
            span = doc.char_span(start, end)
            if span is None:
                span = doc.char_span(start, end, alignment_mode="expand")
                if span is None:
                    stats.skip(TERM_UNALIGNED, term.where, repr(text[start:end]))  # defensive
                    continue
                stats.note(TERM_EXPANDED, term.where, f"{text[start:end]!r} -> {span.text!r}")
            found = TermSpan(span.start_char, span.end_char, label)
            if found in spans:
                stats.skip(TERM_DUPLICATE, term.where, repr(span.text))
                continue
            spans.append(found)
        return tuple(sorted(spans))

    def _offsets(self, term: RawTerm, raw: str, stats: TermStats
                 ) -> tuple[int, int, str] | None:
        """(start, end, polarity label) of a usable term on the raw text, else None (the
        term is counted as skipped)."""
        where = term.where
        if term.term is not None and term.term.strip().upper() == "NULL":
            stats.skip(TERM_NULL, where)
            return None
        if term.term is None or term.polarity is None:
            stats.skip(TERM_MALFORMED, where, "aspectTerm without term/polarity")
            return None
        if not (term.start or "").strip() or not (term.end or "").strip():
            stats.skip(TERM_NULL, where, f"{term.term!r} has no from/to")
            return None
        try:
            start, end = int(term.start or ""), int(term.end or "")
        except ValueError:
            stats.skip(TERM_MALFORMED, where, f"from={term.start!r} to={term.end!r}")
            return None
        if start == end:
            stats.skip(TERM_NULL, where, f"{term.term!r} from = to = {start}")
            return None
        if start < 0 or start > end or end > len(raw):
            stats.skip(TERM_BAD_OFFSETS, where, f"{term.term!r} {start}:{end} of {len(raw)}")
            return None
        label = self.labeller.polarity(term.polarity)
        if label is None:
            stats.skip(polarity_reason(term.polarity.strip().lower()), where, repr(term.term))
            return None
        if raw[start:end] != term.term:
            stats.note(TERM_TEXT_DIFFERS, where, f"{raw[start:end]!r} vs {term.term!r}")
        return start, end, label


def label_source(opts: ConvertOptions, declared: list[str] | None) -> str:
    """Where the head's label set comes from (printed in the report)."""
    if opts.labels:
        return "--labels"
    if opts.label_map and not opts.head_class.has_groups:
        return "--label-map"
    if declared is not None and not opts.head_class.has_groups:
        return "the format's label file"
    return "the data (pass --labels to fix the set across separately converted files)"


def build_head(opts: ConvertOptions, splits: dict[str, list[LabelledText]],
               declared: list[str] | None) -> Head | None:
    """The head spec: labels from --labels, the label map, the format, or the data;
    None with ``--level terms`` (no doc.cats)."""
    if opts.level == "terms":
        return None
    seen = [lab for docs in splits.values() for ex in docs for lab in ex.labels]
    groups: list[str] = []
    if opts.head_class.has_groups:
        seen_pol = sorted({lab.split(SEP, 1)[1] for lab in seen})
        labels = [key_safe(x) for x in opts.labels] if opts.labels else seen_pol
        labels = [lab for lab in labels if lab != ABSENT]
        groups = ([group_name(g) for g in opts.groups] if opts.groups
                  else sorted({lab.split(SEP, 1)[0] for lab in seen}))
    elif opts.labels:
        labels = [key_safe(x) for x in opts.labels]
    elif opts.label_map:
        labels = list(dict.fromkeys(key_safe(v) for v in opts.label_map.values()))
    elif declared is not None:
        labels = list(dict.fromkeys(key_safe(v) for v in declared))
    else:
        labels = sorted(set(seen))
    cfg = {"kind": opts.kind, "labels": labels, "groups": groups}
    try:
        return Head.from_config(opts.head or "sentiment", cfg)
    except ConfigError as err:
        raise InputError(str(err)) from None


def term_labels(opts: ConvertOptions, splits: dict[str, list[LabelledText]]) -> list[str] | None:
    """The term polarities (span labels): --labels, else those seen; None without terms."""
    if not opts.reads_terms:
        return None
    if opts.labels:
        return [lab for lab in (key_safe(x) for x in opts.labels) if lab != ABSENT]
    return sorted({t.label for docs in splits.values() for ex in docs for t in ex.terms or ()})


def cats_for(example: LabelledText, head: Head) -> dict[str, float]:
    """The full key set of ``head`` with 0.0/1.0 values for one example."""
    return head.gold_cats(example.labels)


# --- inputs -------------------------------------------------------------------------------
def _split_of(path: Path, fmt: str) -> str | None:
    stem = path.name
    for ext in EXTENSIONS[fmt]:
        if stem.lower().endswith(ext):
            stem = stem[: -len(ext)]
    tokens = [t for t in stem.lower().replace("-", "_").replace(".", "_").split("_") if t]
    hits = {SPLIT_ALIASES[t] for t in tokens if t in SPLIT_ALIASES}
    return hits.pop() if len(hits) == 1 else None


def discover_inputs(path: Path, fmt: str) -> dict[str, Path]:
    """``{name: file}``: one file (named by its stem), or a folder's train/dev/test files."""
    path = Path(path)
    if path.is_file():
        name = path.name
        for ext in EXTENSIONS[fmt]:
            if name.lower().endswith(ext):
                name = name[: -len(ext)]
        return {name or path.stem: path}
    if not path.is_dir():
        raise InputError(f"Input {path} does not exist.")
    found: dict[str, list[Path]] = {}
    for child in sorted(path.iterdir()):
        if child.is_file() and child.name.lower().endswith(EXTENSIONS[fmt]):
            split = _split_of(child, fmt)
            if split:
                found.setdefault(split, []).append(child)
    ambiguous = {s: files for s, files in found.items() if len(files) > 1}
    if ambiguous:
        listing = "; ".join(f"{s}: {', '.join(f.name for f in fs)}" for s, fs in ambiguous.items())
        raise InputError(f"{path}: several files per split ({listing}); pass one file.")
    if not found:
        raise InputError(
            f"{path}: no train/dev(val)/test files with extension {'/'.join(EXTENSIONS[fmt])} "
            f"for --format {fmt}; pass a file instead."
        )
    return {s: found[s][0] for s in SPLIT_NAMES if s in found}


def _read_input(name: str, path: Path, opts: ConvertOptions, progress: bool
                ) -> tuple[InputStats, list[LabelledText], list[str] | None]:
    """Read, clean and validate one file."""
    source = open_source(path, opts.reader_options())
    labeller = _Labeller(opts, source.label_map)
    aligner = _TermAligner(labeller, opts.lang) if opts.reads_terms else None
    stats = InputStats(name, path, terms=TermStats() if aligner else None)
    examples: list[LabelledText] = []
    records: Iterable[Record] = source.records
    if opts.limit is not None:
        records = itertools.islice(records, opts.limit)
    for rec in _progress(records, f"reading {path.name}", progress):
        stats.n_in += 1
        n_terms = len(rec.terms or ())
        if stats.terms is not None:
            stats.terms.n_in += n_terms
        if rec.problem:
            reason = MALFORMED if rec.problem.startswith(MALFORMED) else rec.problem
            stats.skip(reason, rec.where, rec.problem[len(MALFORMED):].lstrip(": "), n_terms)
            continue
        text = clean_text(rec.text, opts.clean)
        if not text.strip():
            stats.skip(EMPTY_TEXT, rec.where, n_terms=n_terms)
            continue
        labels: tuple[str, ...] = ()
        if opts.reads_categories:
            labels, reason, detail = labeller(rec)
            if reason:
                stats.skip(reason, rec.where, detail, n_terms)
                continue
        terms = aligner(rec, text, stats.terms) if aligner and stats.terms else None
        examples.append(LabelledText(text, labels, rec.where, terms))
    if opts.strict and (stats.n_problems or (stats.terms and stats.terms.n_problems)):
        raise InputError(f"--strict: {path} has rows that cannot be converted:\n"
                              + "\n".join(_problem_lines(stats)))
    return stats, examples, source.labels


def _problem_lines(stats: InputStats) -> list[str]:
    lines = [
        f"  {reason}: {stats.skipped[reason]} (at {', '.join(stats.locations[reason])}"
        f"{', ...' if stats.skipped[reason] > MAX_LOCATIONS else ''})"
        for reason in DATA_PROBLEMS if stats.skipped[reason]
    ]
    terms = stats.terms
    if terms is not None:
        lines += [
            f"  {reason}: {terms.skipped[reason]} (at {', '.join(terms.locations[reason])}"
            f"{', ...' if terms.skipped[reason] > MAX_LOCATIONS else ''})"
            for reason in TERM_PROBLEMS if terms.skipped[reason]
        ]
    return lines


def _progress(items: Iterable, desc: str, enabled: bool) -> Iterator:
    from tqdm import tqdm

    return iter(tqdm(items, desc=desc, unit=" rows", disable=None if enabled else True,
                     leave=False))


def _stratify_key(ex: LabelledText, single_label: bool) -> object:
    """Stratify on the labels; with terms also on the sentence's set of term polarities
    (or "no terms"), so train and dev get alike shares of each."""
    if ex.terms is not None:
        marks = sorted({f"term{SEP}{t.label}" for t in ex.terms}) or [f"term{SEP}none"]
        return (*ex.labels, *marks)
    return ex.labels[0] if single_label and len(ex.labels) == 1 else ex.labels


def _dedupe_key(ex: LabelledText) -> object:
    """The annotation that duplicate texts are compared on (labels, and terms if any)."""
    return ex.labels if ex.terms is None else (ex.labels, ex.terms)


def _count_terms_out(splits: dict[str, list[LabelledText]], owner: dict[str, InputStats],
                     inputs: list[InputStats]) -> None:
    """Fill each input's ``terms.n_out`` and check ``terms in == terms out + skipped``."""
    for name, docs in splits.items():
        terms = owner[name].terms
        if terms is not None:
            terms.n_out += sum(len(ex.terms or ()) for ex in docs)
    for stats in inputs:
        terms = stats.terms
        if terms is not None and terms.n_in != terms.n_out + terms.n_skipped:
            raise AssertionError(
                f"{stats.path}: {terms.n_in} aspect terms in but {terms.n_out} out + "
                f"{terms.n_skipped} skipped: a term was lost without a reason (a bug)."
            )


# --- main entry ---------------------------------------------------------------------------
def convert(
    input_path: Path | str,
    opts: ConvertOptions,
    split: Sequence[float] | None = None,
    seed: int = 0,
    dedupe_splits: bool = False,
    sample: int | None = None,
    progress: bool = True,
) -> ConversionResult:
    """Read ``input_path`` (a file or a folder of train/dev/test files) into examples.

    split: fractions (train, dev[, test]) to split a single input, stratified.
    sample: keep a stratified random ``sample`` rows of each input (after validation).
    dedupe_splits: drop cross-split duplicates from later splits and repeats from train.
    """
    inputs = discover_inputs(Path(input_path), opts.format)
    if split and len(inputs) > 1:
        raise InputError(
            f"--split needs a single input file, but {input_path} already has splits "
            f"({', '.join(inputs)})."
        )
    stats_list: list[InputStats] = []
    splits: dict[str, list[LabelledText]] = {}
    owner: dict[str, InputStats] = {}
    declared: list[str] | None = None
    for name, path in inputs.items():
        stats, examples, labels = _read_input(name, path, opts, progress)
        declared = declared or labels
        if sample is not None:
            keys = [_stratify_key(ex, opts.head_class.single_label) for ex in examples]
            keep = set(stratified_sample(keys, sample, seed).tolist())
            for i, ex in enumerate(examples):
                if i not in keep:
                    stats.skip(NOT_SAMPLED, ex.where, n_terms=len(ex.terms or ()))
            examples = [ex for i, ex in enumerate(examples) if i in keep]
        stats_list.append(stats)
        if split:
            names = SPLIT_NAMES[: len(split)]
            keys = [_stratify_key(ex, opts.head_class.single_label) for ex in examples]
            parts = stratified_split(keys, split, seed)
            for part_name, idx in zip(names, parts, strict=True):
                splits[part_name] = [examples[i] for i in idx]
                owner[part_name] = stats
        else:
            splits[name] = examples
            owner[name] = stats
    items = {s: [(ex.text, _dedupe_key(ex)) for ex in docs] for s, docs in splits.items()}
    if dedupe_splits:
        keep_idx, report = dedupe(items)
        for s, docs in splits.items():
            kept = set(keep_idx[s])
            for i, ex in enumerate(docs):
                if i not in kept:
                    owner[s].skip(DUPLICATE, ex.where, n_terms=len(ex.terms or ()))
            splits[s] = [docs[i] for i in keep_idx[s]]
    else:
        report = find_duplicates(items)
    _count_terms_out(splits, owner, stats_list)
    head = build_head(opts, splits, declared)
    return ConversionResult(head, splits, stats_list, report, opts.clean,
                            label_source(opts, declared), term_labels=term_labels(opts, splits),
                            spans_key=opts.spans_key, lang=opts.lang)


def write_docbins(result: ConversionResult, output: Path | str, lang: str | None = None,
                  progress: bool = True) -> dict[str, Path]:
    """Write one ``.spacy`` file per split (``output`` is a folder, or a ``.spacy`` file
    when there is a single split); returns ``{split: path}``. Docs get ``doc.cats`` (unless
    ``--level terms``) and, with terms, ``doc.spans[result.spans_key]`` (empty when none).
    ``lang`` defaults to the language the terms were aligned with (``result.lang``)."""
    import spacy
    from spacy.tokens import DocBin

    output = Path(output)
    single = output.suffix == ".spacy"
    if single and len(result.splits) != 1:
        raise InputError(
            f"{output} is a single .spacy file but the conversion has {len(result.splits)} "
            f"splits ({', '.join(result.splits)}); give an output folder."
        )
    nlp = spacy.blank(lang or result.lang)
    paths: dict[str, Path] = {}
    for name, examples in result.splits.items():
        path = output if single else output / f"{name}.spacy"
        path.parent.mkdir(parents=True, exist_ok=True)
        docbin = DocBin(store_user_data=False)
        docs = nlp.tokenizer.pipe(ex.text for ex in examples)
        bar = _progress(examples, f"writing {path.name}", progress)
        for ex, doc in zip(bar, docs, strict=True):
            if result.head is not None:
                doc.cats = cats_for(ex, result.head)
            if ex.terms is not None:
                doc.spans[result.spans_key] = [_term_span(doc, t, ex.where) for t in ex.terms]
            docbin.add(doc)
        docbin.to_disk(path)
        paths[name] = path
    result.outputs = paths
    return paths


def _term_span(doc: Doc, term: TermSpan, where: str) -> Span:
    """The span of an aligned term (its offsets are on this tokenizer's token boundaries)."""
    span = doc.char_span(term.start, term.end, label=term.label)
    if span is None:
        raise InputError(
            f"{where}: aspect term {doc.text[term.start:term.end]!r} does not fall on token "
            "boundaries: write the docs with the language the terms were aligned with "
            "(ConvertOptions.lang)."
        )
    return span
