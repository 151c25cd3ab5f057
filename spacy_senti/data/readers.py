"""Format readers: each turns one input file into :class:`Record` objects with raw labels.

Readers do no label validation: they report where every row came from, mark rows they
cannot parse (``Record.problem``) and leave label mapping, cleaning and skipping to
:mod:`spacy_senti.data.convert`. A file that cannot be read at all (wrong encoding, missing
column, missing label file) raises :class:`DataFormatError` with a message that says how to
fix it.
"""

from __future__ import annotations

import csv
import json
import sys
import xml.sax
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

TEXT_COLUMNS = ("text", "sentence", "review", "content", "tweet")
LABEL_COLUMNS = ("label", "labels", "sentiment", "emotion", "emotions", "category")

csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class DataFormatError(ValueError):
    """An input file that cannot be converted as asked (the message says why and how)."""


@dataclass
class Record:
    """One raw row of an input file.

    labels: raw label strings (exclusive / multilabel heads); None when the label cell is
        missing or empty, ``[]`` for an explicitly empty list (a multi-label row with no label).
    aspects: raw ``(group, polarity)`` pairs (grouped heads); None when missing.
    where: location for reports, e.g. ``"train.tsv:12"``.
    problem: set when the row could not be parsed (e.g. ``"malformed row: ..."``).
    """

    text: str
    labels: list[str] | None = None
    aspects: list[tuple[str, str]] | None = None
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


# --- encoding -----------------------------------------------------------------------------
def _python_encoding(encoding: str) -> str:
    """utf-8 also accepts (and drops) a byte-order mark."""
    return "utf-8-sig" if encoding.lower().replace("_", "-") in ("utf-8", "utf8") else encoding


def decode_error(path: Path, encoding: str) -> DataFormatError:
    """A DataFormatError naming the first line of ``path`` that is not valid ``encoding``."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                raw.decode(_python_encoding(encoding))
            except UnicodeDecodeError as err:
                byte = raw[err.start : err.start + 1].hex()
                return DataFormatError(
                    f"{path}: line {number} is not valid {encoding} (byte 0x{byte} at column "
                    f"{err.start + 1}). Pass the file's encoding, e.g. --encoding latin-1 "
                    f"(ISO-8859-1, as in Financial PhraseBank) or --encoding cp1252."
                )
    return DataFormatError(f"{path}: cannot be decoded as {encoding}; try --encoding latin-1.")


def _guarded(path: Path, encoding: str, rows: Iterator[Record]) -> Iterator[Record]:
    """Re-raise a UnicodeDecodeError met while reading as a DataFormatError with a line."""
    try:
        yield from rows
    except UnicodeDecodeError:
        raise decode_error(path, encoding) from None


def _open(path: Path, encoding: str, newline: str = "") -> TextIO:
    """Open for reading; ``newline=""`` for the csv module, ``"\\n"`` to split on LF only."""
    if not path.exists():
        raise DataFormatError(f"Input file {path} does not exist.")
    return open(path, encoding=_python_encoding(encoding), newline=newline)


def _read_lines(path: Path, encoding: str) -> list[str]:
    """All lines of a file split on LF only (tweets may hold U+2028 and lone CRs)."""
    with _open(path, encoding, newline="\n") as f:
        try:
            text = f.read()
        except UnicodeDecodeError:
            raise decode_error(path, encoding) from None
    lines = [line.rstrip("\r") for line in text.split("\n")]
    return lines[:-1] if lines and lines[-1] == "" else lines


# --- columns ------------------------------------------------------------------------------
def resolve_column(
    wanted: str | None, columns: list[str], candidates: tuple[str, ...], what: str, path: Path
) -> int:
    """Index of column ``wanted`` (a name or a 0-based index), or of the first candidate."""
    available = ", ".join(repr(c) for c in columns)
    if wanted is None:
        lowered = [c.strip().lower() for c in columns]
        for cand in candidates:
            if cand in lowered:
                return lowered.index(cand)
        raise DataFormatError(
            f"{path}: no {what} column found (looked for {', '.join(candidates)}). "
            f"Available columns: {available}. Choose one with --{what}-col."
        )
    if wanted in columns:
        return columns.index(wanted)
    if wanted.strip().lstrip("-").isdigit():
        index = int(wanted)
        if 0 <= index < len(columns):
            return index
    raise DataFormatError(
        f"{path}: --{what}-col {wanted!r} is not a column. Available columns: {available} "
        f"(or a 0-based index below {len(columns)})."
    )


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
def _quoting(opts: ReaderOptions, delimiter: str) -> int:
    mode = opts.quoting
    if mode == "auto":  # GLUE-style TSVs have bare quotes; CSVs are written with quoting
        mode = "none" if delimiter == "\t" else "minimal"
    if mode not in ("none", "minimal"):
        raise DataFormatError(f"--quoting must be auto, minimal or none, not {opts.quoting!r}.")
    return csv.QUOTE_NONE if mode == "none" else csv.QUOTE_MINIMAL


def read_delimited(path: Path, opts: ReaderOptions, delimiter: str) -> Source:
    """CSV/TSV with a header (column names) or without (0-based indexes)."""
    quoting = _quoting(opts, delimiter)
    f = _open(path, opts.encoding)
    reader = csv.reader(f, delimiter=delimiter, quoting=quoting, doublequote=True)
    first_line = 1
    try:
        header = next(reader) if opts.header else None
    except StopIteration:
        f.close()
        raise DataFormatError(f"{path} is empty.") from None
    except UnicodeDecodeError:
        f.close()
        raise decode_error(path, opts.encoding) from None
    if header is not None:
        columns = header
        first_line = reader.line_num + 1
    else:
        columns = [str(i) for i in range(_peek_width(path, opts, delimiter, quoting))]
    text_i = resolve_column(opts.text_col or (None if header else "0"), columns,
                            TEXT_COLUMNS, "text", path)
    label_i = resolve_column(opts.label_col or (None if header else "1"), columns,
                             LABEL_COLUMNS, "label", path)

    def rows() -> Iterator[Record]:
        with f:
            start = first_line
            for row in reader:
                where = f"{path.name}:{start}"
                start = reader.line_num + 1
                if not row or (len(row) == 1 and not row[0].strip()):
                    yield Record("", where=where)
                    continue
                if (header is not None and len(row) != len(header)) or len(row) <= max(
                    text_i, label_i
                ):
                    yield Record(
                        row[text_i] if text_i < len(row) else "",
                        where=where,
                        problem=f"malformed row: {len(row)} fields, expected {len(columns)}",
                    )
                    continue
                yield _labelled(Record(row[text_i], where=where), row[label_i], opts)

    return Source(path, _guarded(path, opts.encoding, rows()))


def _peek_width(path: Path, opts: ReaderOptions, delimiter: str, quoting: int) -> int:
    """Number of fields in the first row of a file without header."""
    with _open(path, opts.encoding) as f:
        try:
            first = next(csv.reader(f, delimiter=delimiter, quoting=quoting), [])
        except UnicodeDecodeError:
            raise decode_error(path, opts.encoding) from None
    return max(len(first), 2)


# --- lines: text<SEP>label ------------------------------------------------------------------
def read_lines(path: Path, opts: ReaderOptions) -> Source:
    """One ``text<SEP>label`` per line, split on the last separator (CARER, PhraseBank)."""
    if not opts.sep:
        raise DataFormatError(
            "--format lines needs --sep, e.g. --sep ';' (CARER) or --sep '@' "
            "(Financial PhraseBank)."
        )
    sep = opts.sep.encode().decode("unicode_escape")  # allow --sep '\t'
    f = _open(path, opts.encoding, newline="\n")

    def rows() -> Iterator[Record]:
        with f:
            for number, line in enumerate(f, start=1):
                where = f"{path.name}:{number}"
                line = line.rstrip("\r\n")
                if not line.strip():
                    yield Record("", where=where)
                elif sep not in line:
                    yield Record(line, where=where, problem=f"malformed row: no {sep!r}")
                else:
                    text, label = line.rsplit(sep, 1)
                    yield _labelled(Record(text, where=where), label, opts)

    return Source(path, _guarded(path, opts.encoding, rows()))


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
    f = _open(path, opts.encoding, newline="\n")
    keys: dict[str, str] = {}

    def rows() -> Iterator[Record]:
        with f:
            for number, line in enumerate(f, start=1):
                where = f"{path.name}:{number}"
                if not line.strip():
                    yield Record("", where=where)
                    continue
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    yield Record("", where=where, problem=f"malformed row: invalid JSON ({err})")
                    continue
                if not isinstance(obj, dict):
                    yield Record("", where=where, problem="malformed row: not a JSON object")
                    continue
                if not keys:  # resolve the keys on the first object, with a helpful error
                    names = list(obj)
                    keys["text"] = names[resolve_column(opts.text_col, names, TEXT_COLUMNS,
                                                        "text", path)]
                    keys["label"] = names[resolve_column(opts.label_col, names, LABEL_COLUMNS,
                                                         "label", path)]
                if keys["text"] not in obj or keys["label"] not in obj:
                    yield Record(
                        str(obj.get(keys["text"], "")),
                        where=where,
                        problem=f"malformed row: missing key {keys['text']!r} or {keys['label']!r}",
                    )
                    continue
                text = obj[keys["text"]]
                rec = Record("" if text is None else str(text), where=where)
                _json_labels(obj[keys["label"]], rec, opts)
                yield rec

    return Source(path, _guarded(path, opts.encoding, rows()))


# --- GoEmotions -----------------------------------------------------------------------------
def read_label_names(path: Path, encoding: str = "utf-8") -> list[str]:
    """One label name per line (GoEmotions ``emotions.txt``)."""
    with _open(path, encoding) as f:
        return [line.strip() for line in f if line.strip()]


def read_goemotions(path: Path, opts: ReaderOptions) -> Source:
    """GoEmotions TSV: text, comma-separated label ids, comment id; names from emotions.txt."""
    label_file = opts.label_file or path.with_name("emotions.txt")
    if not label_file.exists():
        raise DataFormatError(
            f"GoEmotions label names not found: {label_file} does not exist. Pass "
            "--label-file path/to/emotions.txt (one emotion name per line, id = line number)."
        )
    names = read_label_names(label_file, opts.encoding)
    f = _open(path, opts.encoding)
    reader = csv.reader(f, delimiter="\t", quoting=csv.QUOTE_MINIMAL, doublequote=True)

    def rows() -> Iterator[Record]:
        with f:
            start = 1
            for row in reader:
                where = f"{path.name}:{start}"
                start = reader.line_num + 1
                if not row:
                    yield Record("", where=where)
                elif len(row) != 3:
                    yield Record(row[0], where=where,
                                 problem=f"malformed row: {len(row)} fields, expected 3")
                else:
                    ids = split_multi(row[1], ",") or None
                    yield Record(row[0], labels=ids, where=where, id=row[2])

    label_map = {str(i): name for i, name in enumerate(names)}
    return Source(path, _guarded(path, opts.encoding, rows()), label_map, names)


# --- TweetEval ------------------------------------------------------------------------------
def tweeteval_files(path: Path) -> tuple[Path, Path, str]:
    """(text file, labels file, split) for a ``<split>_text.txt`` or ``<split>_labels.txt``."""
    name = path.name
    for suffix in ("_text.txt", "_labels.txt"):
        if name.endswith(suffix):
            split = name[: -len(suffix)]
            return (path.with_name(f"{split}_text.txt"), path.with_name(f"{split}_labels.txt"),
                    split)
    raise DataFormatError(
        f"{path}: a TweetEval input is a '<split>_text.txt' file (with '<split>_labels.txt' "
        "and 'mapping.txt' beside it) or a folder holding them."
    )


def read_tweeteval(path: Path, opts: ReaderOptions) -> Source:
    """TweetEval: ``<split>_text.txt`` + ``<split>_labels.txt`` paired by line, mapping.txt."""
    text_path, label_path, _split = tweeteval_files(path)
    mapping_path = opts.label_file or path.with_name("mapping.txt")
    for needed in (text_path, label_path, mapping_path):
        if not needed.exists():
            raise DataFormatError(f"TweetEval input incomplete: {needed} does not exist.")
    label_map: dict[str, str] = {}
    for line in _read_lines(mapping_path, opts.encoding):
        if line.strip():
            key, _, name = line.partition("\t")
            label_map[key.strip()] = name.strip()
    texts = _read_lines(text_path, opts.encoding)
    labels = _read_lines(label_path, opts.encoding)
    if len(texts) != len(labels):
        raise DataFormatError(
            f"{text_path.name} has {len(texts)} lines but {label_path.name} has {len(labels)}; "
            "they must pair line by line."
        )

    def rows() -> Iterator[Record]:
        for number, (text, label) in enumerate(zip(texts, labels, strict=True), start=1):
            yield _labelled(Record(text, where=f"{text_path.name}:{number}"), label, opts)

    return Source(text_path, rows(), label_map, list(label_map.values()))


# --- SemEval-2014 Task 4 XML ----------------------------------------------------------------
class _SemEvalHandler(xml.sax.ContentHandler):
    """Collects sentence text and aspectCategory (category, polarity) with line numbers."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.records: list[Record] = []
        self.n_categories = 0
        self._text: list[str] | None = None
        self._current: Record | None = None

    def startElement(self, tag: str, attrs: Any) -> None:  # noqa: N802 - SAX API
        if tag == "sentence":
            line = self._locator.getLineNumber() if self._locator else 0
            self._current = Record(
                "", aspects=[], where=f"{self.name}:{line}", id=attrs.get("id")
            )
        elif tag == "text" and self._current is not None:
            self._text = []
        elif tag == "aspectCategory" and self._current is not None:
            self.n_categories += 1
            category, polarity = attrs.get("category"), attrs.get("polarity")
            if category is None or polarity is None:
                self._current.problem = "malformed row: aspectCategory without category/polarity"
            elif self._current.aspects is not None:
                self._current.aspects.append((category, polarity))

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
    """SemEval-2014 Task 4 XML: one record per ``<sentence>``, aspects = aspectCategories."""
    if not path.exists():
        raise DataFormatError(f"Input file {path} does not exist.")
    handler = _SemEvalHandler(path.name)
    try:
        xml.sax.parse(str(path), handler)
    except xml.sax.SAXParseException as err:
        raise DataFormatError(
            f"{path}: line {err.getLineNumber()}: not well-formed XML ({err.getMessage()})."
        ) from None
    if handler.records and handler.n_categories == 0:
        raise DataFormatError(
            f"{path}: no <aspectCategory> elements. SemEval-2014 laptops files annotate aspect "
            "terms only; the semeval14 converter reads aspect categories (restaurants)."
        )
    return Source(path, iter(handler.records))


READERS: dict[str, Callable[[Path, ReaderOptions], Source]] = {
    "csv": lambda p, o: read_delimited(p, o, ","),
    "tsv": lambda p, o: read_delimited(p, o, "\t"),
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
        raise DataFormatError(
            f"Unknown --format {opts.format!r}; use one of {', '.join(READERS)}."
        ) from None
    return reader(Path(path), opts)
