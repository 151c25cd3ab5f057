"""Format readers: each turns one input file into :class:`Record` objects with raw labels.

Readers do no label validation: they report where every row came from, mark rows they
cannot parse (``Record.problem``) and leave label mapping, cleaning and skipping to
:mod:`spacy_senti.data.convert`. A file that cannot be read at all (wrong encoding, missing
column, missing label file) raises :class:`InputError` with a message that says how to
fix it. Tabular lines (CSV / TSV / JSONL / TXT) come from the shared reader,
:func:`spacy_senti.util.read_rows`; only SemEval XML is parsed here.
"""

from __future__ import annotations

import xml.sax
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..util import Row, pick_column, read_columns, read_rows

LABEL_COLUMNS = ("label", "labels", "sentiment", "emotion", "emotions", "category")


@dataclass(frozen=True)
class RawTerm:
    """One SemEval ``<aspectTerm term polarity from to>`` as written (attributes unvalidated,
    None when missing); ``from``/``to`` are character offsets into the sentence text."""

    term: str | None
    polarity: str | None
    start: str | None
    end: str | None
    where: str = ""


@dataclass
class Record:
    """One raw row of an input file.

    labels: raw label strings (exclusive / multilabel heads); None when the label cell is
        missing or empty, ``[]`` for an explicitly empty list (a multi-label row with no label).
    aspects: raw ``(group, polarity)`` pairs (grouped heads); None when missing.
    terms: raw SemEval ``<aspectTerm>`` elements of the row (None for other formats).
    where: location for reports, e.g. ``"train.tsv:12"``.
    problem: set when the row could not be parsed (e.g. ``"malformed row: ..."``).
    """

    text: str
    labels: list[str] | None = None
    aspects: list[tuple[str, str]] | None = None
    terms: list[RawTerm] | None = None
    where: str = ""
    id: str | None = None
    problem: str | None = None

    @property
    def line(self) -> int:
        """The 1-based line number in ``where`` (0 when unknown)."""
        tail = self.where.rsplit(":", 1)[-1]
        return int(tail) if tail.isdigit() else 0


@dataclass
class ReaderOptions:
    """How to read a file (see ``spacy-senti convert --help``)."""

    format: str
    text_col: str | None = None
    label_col: str | None = None
    sep: str | None = None
    multi_sep: str = ","
    encoding: str = "utf-8"
    quoting: str = "auto"
    header: bool = True
    label_file: Path | None = None
    grouped: bool = False
    level: str = "categories"

    @property
    def reads_categories(self) -> bool:
        """SemEval: ``--level categories`` or ``both`` (aspectCategory elements are needed)."""
        return self.level in ("categories", "both")

    @property
    def reads_terms(self) -> bool:
        """SemEval: ``--level terms`` or ``both`` (aspectTerm spans are converted)."""
        return self.level in ("terms", "both")


@dataclass
class Source:
    """The records of one file, plus the label vocabulary the format declares (if any).

    label_map: raw label -> name declared by the format (GoEmotions / TweetEval ids).
    labels: the full label set the format declares, in its order.
    """

    path: Path
    records: Iterator[Record]
    label_map: dict[str, str] | None = None
    labels: list[str] | None = None


# --- rows of the shared reader (spacy_senti.util) -----------------------------------------
ENCODING_HINT = ("Pass the file's encoding, e.g. --encoding latin-1 (ISO-8859-1, as in "
                 "Financial PhraseBank) or --encoding cp1252.")


def _rows(path: Path, fmt: str, encoding: str, **options: Any) -> Iterator[Row]:
    """The rows of a tabular file, blank lines included (they count as rows with an empty
    text). A line with bytes that are not valid ``encoding`` stops the conversion with a hint.
    The file is checked at once, its rows read lazily."""
    rows = read_rows(path, fmt, encoding=encoding, keep_blank=True, **options)
    return (_decoded(path, row) for row in rows)


def _decoded(path: Path, row: Row) -> Row:
    if row.bad_bytes:
        raise InputError(f"{path}: line {row.line} is {row.error}. {ENCODING_HINT}")
    return row


def _where(path: Path, row: Row) -> str:
    return f"{path.name}:{row.line}"


def _malformed(path: Path, row: Row, why: str) -> Record:
    return Record("", where=_where(path, row), problem=f"malformed row: {why}")


# --- labels -------------------------------------------------------------------------------
def split_multi(value: str, sep: str) -> list[str]:
    """``"joy, love"`` -> ``["joy", "love"]`` (empty pieces dropped)."""
    return [part.strip() for part in value.split(sep) if part.strip()]


def parse_aspect_items(value: str, sep: str) -> list[tuple[str, str]]:
    """``"food:positive,service:negative"`` -> pairs; a piece without ':' raises ValueError."""
    pairs = []
    for item in split_multi(value, sep):
        if ":" not in item:
            raise ValueError(f"aspect {item!r} is not 'group:polarity'")
        group, polarity = item.rsplit(":", 1)
        pairs.append((group.strip(), polarity.strip()))
    return pairs


def _labelled(rec: Record, raw: str, opts: ReaderOptions) -> Record:
    """Fill a record's labels (or aspects) from a raw label cell (empty cell: None)."""
    if not raw.strip():
        return rec
    if opts.grouped:
        try:
            rec.aspects = parse_aspect_items(raw, opts.multi_sep)
        except ValueError as err:
            rec.problem = f"malformed row: {err}"
    else:
        rec.labels = [raw.strip()]
    return rec


# --- delimited text (csv / tsv) -------------------------------------------------------------
def read_delimited(path: Path, opts: ReaderOptions, fmt: str) -> Source:
    """CSV/TSV with a header (column names) or without (0-based indexes)."""
    options = {"header": opts.header, "quoting": opts.quoting}
    columns = read_columns(path, fmt, encoding=opts.encoding, **options)
    text = pick_column(columns, opts.text_col or (None if opts.header else "0"), path,
                       option="--text-col")
    label = pick_column(columns, opts.label_col or (None if opts.header else "1"), path,
                        candidates=LABEL_COLUMNS, what="label", option="--label-col")
    rows = _rows(path, fmt, opts.encoding, **options)

    def records() -> Iterator[Record]:
        for row in rows:
            if row.error:
                yield _malformed(path, row, row.error)
            elif not row.values:
                yield Record("", where=_where(path, row))
            elif text not in row.values or label not in row.values:  # no header: too short
                yield _malformed(path, row,
                                 f"row has {len(row.values)} fields, expected {len(columns)}")
            else:
                rec = Record(row.values[text], where=_where(path, row))
                yield _labelled(rec, row.values[label], opts)

    return Source(path, records())


# --- lines: text<SEP>label ------------------------------------------------------------------
def read_lines(path: Path, opts: ReaderOptions) -> Source:
    """One ``text<SEP>label`` per line, split on the last separator (CARER, PhraseBank)."""
    if not opts.sep:
        raise InputError(
            "--format lines needs --sep, e.g. --sep ';' (CARER) or --sep '@' "
            "(Financial PhraseBank)."
        )
    sep = opts.sep.encode().decode("unicode_escape")  # allow --sep '\t'
    rows = _rows(path, "txt", opts.encoding)

    def records() -> Iterator[Record]:
        for row in rows:
            line, where = row.values.get("text", ""), _where(path, row)
            if not line.strip():
                yield Record("", where=where)
            elif sep not in line:
                yield Record(line, where=where, problem=f"malformed row: no {sep!r}")
            else:
                text, label = line.rsplit(sep, 1)
                yield _labelled(Record(text, where=where), label, opts)

    return Source(path, records())


# --- JSONL ----------------------------------------------------------------------------------
def _json_labels(value: Any, rec: Record, opts: ReaderOptions) -> None:
    """Labels from a JSON value: scalar, list (multi-label) or mapping/pairs (aspects)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return
    if opts.grouped:
        rec.aspects = []
        if isinstance(value, dict):
            rec.aspects = [(str(g), str(p)) for g, p in value.items()]
        elif isinstance(value, list):
            for item in value:
                if isinstance(item, dict):
                    group = item.get("category", item.get("aspect", item.get("group")))
                    rec.aspects.append((str(group), str(item.get("polarity"))))
                elif isinstance(item, (list, tuple)) and len(item) == 2:
                    rec.aspects.append((str(item[0]), str(item[1])))
                else:
                    rec.problem = f"malformed row: aspect {item!r} is not [group, polarity]"
        elif isinstance(value, str):
            try:
                rec.aspects = parse_aspect_items(value, opts.multi_sep)
            except ValueError as err:
                rec.problem = f"malformed row: {err}"
        else:
            rec.problem = f"malformed row: aspects {value!r} are not a mapping or list"
    elif isinstance(value, list):
        rec.labels = [str(v).strip() for v in value if str(v).strip()]
    elif isinstance(value, dict):
        rec.problem = "malformed row: a mapping of labels needs --kind grouped"
    else:
        rec.labels = [str(value).strip()]


def read_jsonl(path: Path, opts: ReaderOptions) -> Source:
    """One JSON object per line; text/label keys as for CSV (default ``text``/``label``)."""
    columns = read_columns(path, "jsonl", encoding=opts.encoding)
    text = pick_column(columns, opts.text_col, path, option="--text-col")
    label = pick_column(columns, opts.label_col, path, candidates=LABEL_COLUMNS, what="label",
                        option="--label-col")
    rows = _rows(path, "jsonl", opts.encoding)

    def records() -> Iterator[Record]:
        for row in rows:
            if row.error:
                yield _malformed(path, row, row.error)
            elif not row.values:
                yield Record("", where=_where(path, row))
            elif text not in row.values or label not in row.values:
                yield _malformed(path, row, f"missing key {text!r} or {label!r}")
            else:
                value = row.values[text]
                rec = Record("" if value is None else str(value), where=_where(path, row))
                _json_labels(row.values[label], rec, opts)
                yield rec

    return Source(path, records())


# --- GoEmotions -----------------------------------------------------------------------------
def read_label_names(path: Path, encoding: str = "utf-8") -> list[str]:
    """One label name per line (GoEmotions ``emotions.txt``)."""
    return [row.values["text"].strip() for row in _rows(path, "txt", encoding) if row.values]


def read_goemotions(path: Path, opts: ReaderOptions) -> Source:
    """GoEmotions TSV: text, comma-separated label ids, comment id; names from emotions.txt."""
    label_file = opts.label_file or path.with_name("emotions.txt")
    if not label_file.exists():
        raise InputError(
            f"GoEmotions label names not found: {label_file} does not exist. Pass "
            "--label-file path/to/emotions.txt (one emotion name per line, id = line number)."
        )
    names = read_label_names(label_file, opts.encoding)
    rows = _rows(path, "tsv", opts.encoding, header=False, quoting="minimal")

    def records() -> Iterator[Record]:
        for row in rows:
            if not row.values:
                yield Record("", where=_where(path, row))
            elif len(row.values) != 3:
                yield _malformed(path, row, f"row has {len(row.values)} fields, expected 3")
            else:
                text, ids, comment = row.values.values()
                yield Record(text, labels=split_multi(ids, ",") or None,
                             where=_where(path, row), id=comment)

    label_map = {str(i): name for i, name in enumerate(names)}
    return Source(path, records(), label_map, names)


# --- TweetEval ------------------------------------------------------------------------------
def tweeteval_files(path: Path) -> tuple[Path, Path, str]:
    """(text file, labels file, split) for a ``<split>_text.txt`` or ``<split>_labels.txt``."""
    name = path.name
    for suffix in ("_text.txt", "_labels.txt"):
        if name.endswith(suffix):
            split = name[: -len(suffix)]
            return (path.with_name(f"{split}_text.txt"), path.with_name(f"{split}_labels.txt"),
                    split)
    raise InputError(
        f"{path}: a TweetEval input is a '<split>_text.txt' file (with '<split>_labels.txt' "
        "and 'mapping.txt' beside it) or a folder holding them."
    )


def read_tweeteval(path: Path, opts: ReaderOptions) -> Source:
    """TweetEval: ``<split>_text.txt`` + ``<split>_labels.txt`` paired by line, mapping.txt."""
    text_path, label_path, _split = tweeteval_files(path)
    mapping_path = opts.label_file or path.with_name("mapping.txt")
    for needed in (text_path, label_path, mapping_path):
        if not needed.exists():
            raise InputError(f"TweetEval input incomplete: {needed} does not exist.")
    label_map: dict[str, str] = {}
    for row in _rows(mapping_path, "txt", opts.encoding):
        if row.values:
            key, _, name = row.values["text"].partition("\t")
            label_map[key.strip()] = name.strip()
    texts = [row.values.get("text", "") for row in _rows(text_path, "txt", opts.encoding)]
    labels = [row.values.get("text", "") for row in _rows(label_path, "txt", opts.encoding)]
    if len(texts) != len(labels):
        raise InputError(
            f"{text_path.name} has {len(texts)} lines but {label_path.name} has {len(labels)}; "
            "they must pair line by line."
        )

    def records() -> Iterator[Record]:
        for number, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
            yield _labelled(Record(text, where=f"{text_path.name}:{number}"), label, opts)

    return Source(text_path, records(), label_map, list(label_map.values()))


# --- SemEval-2014 Task 4 XML ----------------------------------------------------------------
class _SemEvalHandler(xml.sax.ContentHandler):
    """Collects sentence text, aspectCategory (category, polarity) pairs and aspectTerm
    elements, with line numbers. A malformed aspectCategory marks the sentence only when
    categories are read (``categories``)."""

    def __init__(self, name: str, categories: bool = True) -> None:
        super().__init__()
        self.name = name
        self.categories = categories
        self.records: list[Record] = []
        self.n_categories = 0
        self.n_terms = 0
        self._text: list[str] | None = None
        self._current: Record | None = None

    def _line(self) -> int:
        return self._locator.getLineNumber() if self._locator else 0

    def startElement(self, tag: str, attrs: Any) -> None:  # noqa: N802 - SAX API
        if tag == "sentence":
            self._current = Record(
                "", aspects=[], terms=[], where=f"{self.name}:{self._line()}", id=attrs.get("id")
            )
        elif self._current is None:
            return
        elif tag == "text":
            self._text = []
        elif tag == "aspectCategory":
            self.n_categories += 1
            category, polarity = attrs.get("category"), attrs.get("polarity")
            if category is None or polarity is None:
                if self.categories:
                    self._current.problem = (
                        "malformed row: aspectCategory without category/polarity"
                    )
            elif self._current.aspects is not None:
                self._current.aspects.append((category, polarity))
        elif tag == "aspectTerm" and self._current.terms is not None:
            self.n_terms += 1
            self._current.terms.append(RawTerm(
                attrs.get("term"), attrs.get("polarity"), attrs.get("from"), attrs.get("to"),
                f"{self.name}:{self._line()}",
            ))

    def characters(self, content: str) -> None:
        if self._text is not None:
            self._text.append(content)

    def endElement(self, tag: str) -> None:  # noqa: N802 - SAX API
        if tag == "text" and self._current is not None and self._text is not None:
            self._current.text = "".join(self._text)
            self._text = None
        elif tag == "sentence" and self._current is not None:
            self.records.append(self._current)
            self._current = None


def read_semeval14(path: Path, opts: ReaderOptions) -> Source:
    """SemEval-2014 Task 4 XML: one record per ``<sentence>`` with its aspectCategories
    (``aspects``) and aspectTerms (``terms``). ``opts.level`` categories / both needs
    aspectCategory elements (restaurants); terms reads laptops files too."""
    if not path.exists():
        raise InputError(f"Input file not found: {path}")
    handler = _SemEvalHandler(path.name, categories=opts.reads_categories)
    try:
        xml.sax.parse(str(path), handler)
    except xml.sax.SAXParseException as err:
        raise InputError(
            f"{path}: line {err.getLineNumber()}: not well-formed XML ({err.getMessage()})."
        ) from None
    if opts.reads_categories and handler.records and handler.n_categories == 0:
        raise InputError(
            f"{path}: no <aspectCategory> elements. SemEval-2014 laptops files annotate aspect "
            f"terms only; --level {opts.level} reads aspect categories (restaurants). Pass "
            "--level terms to convert the aspect terms to doc.spans."
        )
    return Source(path, iter(handler.records))


READERS: dict[str, Callable[[Path, ReaderOptions], Source]] = {
    "csv": lambda p, o: read_delimited(p, o, "csv"),
    "tsv": lambda p, o: read_delimited(p, o, "tsv"),
    "jsonl": read_jsonl,
    "lines": read_lines,
    "goemotions": read_goemotions,
    "tweeteval": read_tweeteval,
    "semeval14": read_semeval14,
}


def open_source(path: Path, opts: ReaderOptions) -> Source:
    """The :class:`Source` of one input file in format ``opts.format``."""
    try:
        reader = READERS[opts.format]
    except KeyError:
        raise InputError(
            f"Unknown --format {opts.format!r}; use one of {', '.join(READERS)}."
        ) from None
    return reader(Path(path), opts)
