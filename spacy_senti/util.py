"""Helpers that library code and commands share: load a pipeline, read DocBins, find the
classifier in a pipeline, and the one reader of tabular text files (JSONL / CSV / TSV / TXT /
Parquet).

Nothing here prints or exits: errors are :class:`~spacy_senti.errors.InputError` /
:class:`~spacy_senti.errors.ConfigError` with a message that says how to fix them.
"""

from __future__ import annotations

import codecs
import csv
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from .errors import ConfigError, InputError

if TYPE_CHECKING:
    from .components.aspects import SentiAspects
    from .components.textcat import SentiTextCategorizer


def check_exists(path: str | Path, what: str) -> Path:
    """``path`` expanded; InputError naming ``what`` when it does not exist."""
    found = Path(path).expanduser()
    if not found.exists():
        raise InputError(f"{what} {str(path)!r} not found.")
    return found


ONNX_COMMANDS = "`spacy-senti score` and `spacy-senti serve`"


def onnx_export_info(model: str | Path) -> dict[str, Any] | None:
    """The manifest of an ONNX export folder (``spacy-senti export-onnx``), else None."""
    from .onnx.runner import MANIFEST

    manifest = Path(model).expanduser() / MANIFEST
    if not manifest.is_file():
        return None
    try:
        info = json.loads(manifest.read_text(encoding="utf8"))
    except (OSError, ValueError) as err:
        raise InputError(f"{manifest} cannot be read ({err}): export the pipeline again with "
                         "`spacy-senti export-onnx`.") from None
    if not isinstance(info, dict) or "files" not in info or "heads" not in info:
        raise InputError(f"{manifest} is not a spacy-senti ONNX manifest: export the pipeline "
                         "again with `spacy-senti export-onnx`.")
    return info


def onnx_variant(info: dict[str, Any], variant: str | None, what: str = "PIPELINE") -> str:
    """The model variant an export will run (``variant``, or the export's default)."""
    chosen = variant or info.get("default", "fp32")
    if chosen not in info["files"]:
        raise InputError(
            f"{what} has no {chosen!r} ONNX model (exported: {sorted(info['files'])}). Choose "
            "one of those, or export again with `spacy-senti export-onnx ... --quantize int8`."
        )
    return chosen


def load_pipeline(model: str | Path, gpu_id: int = -1, what: str = "PIPELINE", *,
                  allow_onnx: bool = False, variant: str | None = None,
                  threads: int | None = None) -> Language:
    """``spacy.load`` a pipeline directory or installed package (on GPU ``gpu_id`` if >= 0).

    what: how error messages name ``model`` (the command's argument, e.g. ``MODEL``).
    allow_onnx: also accept a folder written by ``spacy-senti export-onnx``, returned as
        ``spacy.blank(lang)`` + ``senti_onnx`` (same ``doc.cats`` and ``doc._`` views); without
        it such a folder is refused with a message (the command needs the spaCy pipeline).
    variant, threads: the export's model (``fp32`` / ``int8``; default: the export's default)
        and onnxruntime intra-op threads; only for an ONNX export.
    """
    import spacy

    path = Path(model).expanduser()
    info = onnx_export_info(path) if path.is_dir() else None
    if info is not None:
        if not allow_onnx:
            raise InputError(
                f"{what} {str(model)!r} is an ONNX export (senti_onnx.json), which only "
                f"{ONNX_COMMANDS} take. This command needs the spaCy pipeline the export was "
                "made from: the folder `spacy train` wrote (e.g. training/model-best) or an "
                "installed pipeline package."
            )
        if gpu_id >= 0:
            raise InputError(f"{what} {str(model)!r} is an ONNX export, which runs on the CPU "
                             "(onnxruntime): drop --gpu.")
        return onnx_pipeline(path, info, variant=onnx_variant(info, variant, what),
                             threads=threads)
    if variant is not None:
        raise InputError(f"An ONNX variant ({variant!r}) was given, but {what} {str(model)!r} "
                         "is not an ONNX export (no senti_onnx.json in it).")
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except Exception as err:  # thinc raises ValueError/ImportError depending on the setup
            raise InputError(f"Cannot use GPU {gpu_id}: {err}") from None
    if path.exists():
        if not (path / "config.cfg").exists():
            raise InputError(
                f"{what} {str(model)!r} is not a spaCy pipeline directory (no config.cfg in "
                "it). Pass the folder `spacy train` wrote (e.g. training/model-best)"
                + (", an installed pipeline package or a folder written by `spacy-senti "
                   "export-onnx`." if allow_onnx else " or an installed pipeline package.")
            )
        return spacy.load(path)
    if spacy.util.is_package(str(model)):
        return spacy.load(str(model))
    raise InputError(
        f"{what} {str(model)!r} not found: no such directory and no installed pipeline "
        "package of that name."
    )


def onnx_pipeline(path: str | Path, info: dict[str, Any] | None = None, *,
                  variant: str | None = None, threads: int | None = None) -> Language:
    """``spacy.blank(lang)`` + ``senti_onnx`` over the export folder ``path``."""
    import spacy

    path = Path(path).expanduser()
    info = info if info is not None else onnx_export_info(path)
    if info is None:
        raise InputError(f"{path} is not an ONNX export (no senti_onnx.json in it).")
    nlp = spacy.blank(info.get("lang") or "en")
    nlp.add_pipe("senti_onnx", config={"path": str(path.resolve()), "variant": variant,
                                       "threads": threads})
    nlp.meta["name"] = str(info.get("name", "onnx")).split("_", 1)[-1]
    nlp.meta["version"] = str(info.get("version", "0.0.0"))
    return nlp


def docbin_files(path: str | Path, what: str = "DATA") -> list[Path]:
    """The ``.spacy`` file at ``path``, or every ``.spacy`` file under a directory."""
    path = check_exists(path, what)
    files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
    if not files:
        raise InputError(f"{what} directory {str(path)!r} holds no .spacy files.")
    return files


def read_docs(path: str | Path, vocab: Vocab | Language | None = None,
              what: str = "DATA") -> list[Doc]:
    """Docs of a ``.spacy`` DocBin, or of every ``.spacy`` file under a directory."""
    if isinstance(vocab, Language):
        vocab = vocab.vocab
    vocab = vocab if vocab is not None else Vocab()
    docs: list[Doc] = []
    for file in docbin_files(path, what):
        try:
            docs.extend(DocBin().from_disk(file).get_docs(vocab))
        except Exception as err:  # msgpack/zlib errors for files of another format
            raise InputError(
                f"{what} {str(file)!r} is not a spaCy DocBin ({type(err).__name__}). Convert "
                "CSV/JSONL data with `spacy-senti convert` first."
            ) from None
    return docs


def find_aspects(nlp: Language) -> SentiAspects | None:
    """The first ``senti_aspects`` component of ``nlp`` (aspect terms), or None."""
    from .components.aspects import SentiAspects

    return next((pipe for _, pipe in nlp.pipeline if isinstance(pipe, SentiAspects)), None)


def aspect_term_components(nlp: Language) -> list[str]:
    """Names of the components that set ``doc._.aspect_terms``.

    A component counts when its factory declares ``assigns=["doc._.aspect_terms"]``
    (``senti_aspects``) unless the instance says ``has_aspect_terms = False``, or when the
    instance says ``has_aspect_terms = True`` (a component whose output depends on what it
    loaded, e.g. an ONNX export with or without terms).
    """
    names = []
    for name, pipe in nlp.pipeline:
        declared = "doc._.aspect_terms" in nlp.get_pipe_meta(name).assigns
        if getattr(pipe, "has_aspect_terms", declared):
            names.append(name)
    return names


def find_textcat(nlp: Language, name: str | None = None,
                 head: str | None = None) -> SentiTextCategorizer:
    """The ``senti_textcat`` component of ``nlp``.

    name: the component's name; by default the first ``senti_textcat`` (or ``senti_onnx``
        component, which has the same heads) in the pipeline.
    head: require a head of this name on the component.
    """
    candidates = [(n, p) for n, p in nlp.pipeline if _has_heads(p)]
    if name is not None:
        if name not in nlp.pipe_names:
            raise InputError(
                f"The pipeline has no component {name!r} (components: {nlp.pipe_names}). Pass "
                "the right name with --component."
            )
        candidates = [(n, p) for n, p in candidates if n == name]
        if not candidates:
            raise InputError(f"Component {name!r} is not a senti_textcat component.")
    if not candidates:
        raise InputError(
            f"The pipeline has no senti_textcat component (components: {nlp.pipe_names})."
        )
    if head is not None:
        for _, pipe in candidates:
            if any(h.name == head for h in head_specs(pipe)):
                return pipe
        names = [h.name for _, pipe in candidates for h in head_specs(pipe)]
        raise ConfigError(f"No senti_textcat head {head!r} in the pipeline (heads: {names}).")
    return candidates[0][1]


def head_specs(pipe: Any) -> list:
    """The heads of a ``senti_textcat`` or ``senti_onnx`` component."""
    heads = getattr(pipe, "heads", None)
    if heads is None and getattr(pipe, "runner", None) is not None:
        heads = pipe.runner.heads
    return list(heads or [])


def _has_heads(pipe: Any) -> bool:
    from .components.textcat import SentiTextCategorizer

    return isinstance(pipe, SentiTextCategorizer) or bool(head_specs(pipe))


# =========================================================================================
# The one reader of tabular text files: JSONL, CSV, TSV, TXT (one text per line), Parquet.
#
# Used by `convert` (data/readers.py), `score` (batch/io.py) and `drift` / `select`
# (monitor/inputs.py). Rows stream one at a time. A row that cannot be read comes back with an
# error (and whatever values could be read), so each caller decides: skip it, write it as an
# error row, or raise. Only a file that cannot be read at all raises InputError here.
# =========================================================================================
FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "tsv", ".txt": "txt",
    ".parquet": "parquet", ".pq": "parquet",
}
TEXT_COLUMNS = ("text", "sentence", "content", "tweet", "review", "body")
QUOTING = {"minimal": csv.QUOTE_MINIMAL, "none": csv.QUOTE_NONE}
# Text files are decoded with errors="surrogateescape": a byte that is not valid in the
# encoding becomes U+DC80..U+DCFF, so the row holding it is reported instead of ending the read.
_ESCAPED_BYTE = re.compile("[\udc80-\udcff]")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")  # "\ud83d" in a JSON line


@dataclass
class Row:
    """One row of a file.

    line: 1-based line where the row starts (for Parquet: the row number).
    values: column -> value (strings for CSV / TSV / TXT); empty for a blank line and for a
        line that could not be parsed at all.
    error: why the row is malformed (e.g. ``"invalid JSON: ..."``); None for a good row.
    bad_bytes: the error is bytes that are not valid in the file's encoding; such characters
        are replaced by U+FFFD in ``values``.
    """

    line: int
    values: dict[str, Any]
    error: str | None = None
    bad_bytes: bool = False


def detect_format(path: str | Path, formats: dict[str, str] = FORMATS) -> str:
    """The format of ``path`` from its suffix (``formats``: suffix -> format)."""
    fmt = formats.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"Cannot tell the format of {path}: use one of the suffixes "
            f"{', '.join(sorted(s for s in formats if s))}."
        )
    return fmt


def read_rows(path: str | Path, fmt: str | None = None, *, encoding: str = "utf-8",
              header: bool = True, quoting: str = "auto", keep_blank: bool = False,
              skip: int = 0) -> Iterator[Row]:
    """The rows of a JSONL / CSV / TSV / TXT / Parquet file, streamed one at a time.

    fmt: ``jsonl``, ``csv``, ``tsv``, ``txt`` or ``parquet``; by default from the suffix.
    encoding: of a text file; ``utf-8`` also drops a byte-order mark.
    header: CSV / TSV: the first line names the columns, and a row with another number of
        fields is an error row; without a header the columns are ``"0"``, ``"1"``, ...
    quoting: CSV / TSV: ``minimal`` (fields may be quoted), ``none`` (quotes are text) or
        ``auto``: none for TSV (GLUE-style files hold bare quotes), minimal for CSV.
    keep_blank: yield blank lines as rows without values (by default they are not rows).
    skip: leave out the first ``skip`` rows (to resume), without parsing them where possible.

    The file, format, encoding and quoting are checked at once; rows are read lazily.
    """
    path, fmt = _checked(path, fmt)
    if fmt == "parquet":
        return _parquet_rows(open_parquet(path), skip)
    _codec(encoding)
    if fmt in ("txt", "jsonl"):
        return _line_rows(path, fmt, encoding, keep_blank, skip)
    return _csv_rows(path, encoding, _dialect(fmt, quoting), header, keep_blank, skip)


def read_columns(path: str | Path, fmt: str | None = None, *, encoding: str = "utf-8",
                 header: bool = True, quoting: str = "auto",
                 sample: int | None = 100) -> list[str]:
    """The columns of a file: the CSV / TSV header (without one: ``"0"``, ``"1"``, ... as many
    as the first row has fields), the keys of the first ``sample`` JSON objects (every object
    with ``sample=None``), ``["text"]`` for TXT, the names in the Parquet schema."""
    path, fmt = _checked(path, fmt)
    if fmt == "parquet":
        return list(open_parquet(path).schema_arrow.names)
    if fmt == "txt":
        _codec(encoding)
        return ["text"]
    if fmt == "jsonl":
        rows = islice(read_rows(path, fmt, encoding=encoding), sample)
        return list({key: None for row in rows for key in row.values})
    dialect = _dialect(fmt, quoting)
    with _open_text(path, encoding, newline="") as f:
        reader = csv.reader(f, **dialect)
        try:
            first = next(reader, [])
        except (csv.Error, UnicodeDecodeError) as err:
            raise _unreadable(path, encoding, 1, err) from None
    if not first:
        raise InputError(f"{path} is empty" + (": its first line must name the columns."
                                                if header else "."))
    bad = _bad_bytes(first, encoding)
    if header and bad:
        raise InputError(f"{path}: line 1 (the header) is {bad}. Is the file in another "
                         "encoding?")
    return first if header else [str(i) for i in range(len(first))]


def pick_column(columns: Sequence[str], wanted: str | None, path: str | Path, *,
                candidates: Sequence[str] = TEXT_COLUMNS, what: str = "text",
                option: str = "--text-column") -> str:
    """The column ``wanted`` (a name, or a 0-based index when no column has that name), or by
    default the first of ``candidates`` (compared without case). ``what`` and ``option`` name
    the column and the command-line option in the error."""
    available = ", ".join(repr(c) for c in columns) or "(none)"
    if wanted is None:
        lowered = [str(c).strip().lower() for c in columns]
        for cand in candidates:
            if cand in lowered:
                return columns[lowered.index(cand)]
        raise InputError(
            f"{path}: no {what} column found (looked for {', '.join(candidates)}). "
            f"Available columns: {available}. Choose one with {option}."
        )
    if wanted in columns:
        return wanted
    if wanted.strip().isdigit() and int(wanted) < len(columns):
        return columns[int(wanted)]
    raise InputError(
        f"{path}: no column {wanted!r} ({option} {wanted!r} is not a column name, nor a "
        f"0-based index below {len(columns)}). Available columns: {available}. "
        f"Choose one with {option}."
    )


def open_parquet(path: str | Path) -> Any:
    """A ``pyarrow.parquet.ParquetFile``; InputError without pyarrow or for another format."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("Reading Parquet needs pyarrow: pip install pyarrow.") from None
    try:
        return pq.ParquetFile(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise InputError(f"Cannot read {path} as parquet: {err}") from None


def _checked(path: str | Path, fmt: str | None) -> tuple[Path, str]:
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"Input file not found: {path}")
    if path.is_dir():
        raise InputError(f"Input {path} is a directory; give one file.")
    fmt = fmt or detect_format(path)
    if fmt not in FORMATS.values():
        raise InputError(f"Unknown format {fmt!r}; use one of {sorted(set(FORMATS.values()))}.")
    return path, fmt


def _codec(encoding: str) -> str:
    """Python's codec for ``encoding``; utf-8 becomes utf-8-sig (drops a byte-order mark)."""
    try:
        name = codecs.lookup(encoding).name
    except LookupError:
        raise InputError(
            f"Unknown encoding {encoding!r}; use e.g. utf-8, latin-1 or cp1252."
        ) from None
    return "utf-8-sig" if name == "utf-8" else name


def _open_text(path: Path, encoding: str, newline: str) -> Any:
    try:
        return open(path, encoding=_codec(encoding), errors="surrogateescape", newline=newline)
    except OSError as err:
        raise InputError(f"Cannot read {path}: {err.strerror}.") from None


def _unreadable(path: Path, encoding: str, line: int, err: Exception) -> InputError:
    """An error that stops reading midway (rare: surrogateescape keeps most bad bytes)."""
    if isinstance(err, UnicodeDecodeError):
        return InputError(f"{path}: line {line} is not valid {encoding} ({err.reason}). Is the "
                          "file in another encoding?")
    return InputError(f"{path}: line {line}: {err}.")


def _bad_bytes(texts: Sequence[str], encoding: str) -> str | None:
    """Where one line (or the fields of one row) holds bytes not valid in ``encoding``."""
    for i, text in enumerate(texts):
        found = _ESCAPED_BYTE.search(text)
        if found is not None:
            where = f"field {i + 1}, column" if len(texts) > 1 else "column"
            byte = ord(found.group()) - 0xDC00
            return f"not valid {encoding} (byte 0x{byte:02x} at {where} {found.start() + 1})"
    return None


def _line_rows(path: Path, fmt: str, encoding: str, keep_blank: bool,
               skip: int) -> Iterator[Row]:
    """JSONL or TXT: one row per line, split on LF only (texts may hold U+2028 or a lone CR)."""
    parse = _json_row if fmt == "jsonl" else _text_row
    n = number = 0
    with _open_text(path, encoding, newline="\n") as f:
        try:
            for number, line in enumerate(f, start=1):
                line = line.rstrip("\r\n")
                blank = not line.strip()
                if blank and not keep_blank:
                    continue
                n += 1
                if n > skip:
                    yield Row(number, {}) if blank else parse(number, line, encoding)
        except UnicodeDecodeError as err:
            raise _unreadable(path, encoding, number + 1, err) from None


def _text_row(number: int, line: str, encoding: str) -> Row:
    bad = _bad_bytes([line], encoding)
    if bad:
        line = _ESCAPED_BYTE.sub("\ufffd", line)
    return Row(number, {"text": line}, bad, bool(bad))


def _json_row(number: int, line: str, encoding: str) -> Row:
    bad = _bad_bytes([line], encoding)
    values, error = _json_object(_ESCAPED_BYTE.sub("\ufffd", line) if bad else line)
    return Row(number, values, bad or error, bool(bad))


def _json_object(line: str) -> tuple[dict[str, Any], str | None]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as err:
        return {}, f"invalid JSON: {err.msg} (column {err.colno})"
    except RecursionError:
        return {}, "invalid JSON: nested too deeply"
    if not isinstance(value, dict):
        return {}, f"line is not a JSON object ({type(value).__name__})"
    if _SURROGATE_ESCAPE.search(line):  # a pair ("\ud83d\ude00") is fine, a lone one is not
        try:
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            return {}, "invalid JSON: a string holds a lone surrogate (\\ud800-\\udfff)"
    return value, None


def _dialect(fmt: str, quoting: str) -> dict[str, Any]:
    mode = ("none" if fmt == "tsv" else "minimal") if quoting == "auto" else quoting
    if mode not in QUOTING:
        raise InputError(f"--quoting must be auto, minimal or none, not {quoting!r}.")
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))  # long texts (the default is 128 KiB)
    return {"delimiter": "\t" if fmt == "tsv" else ",", "quoting": QUOTING[mode],
            "doublequote": True}


def _csv_rows(path: Path, encoding: str, dialect: dict[str, Any], header: bool,
              keep_blank: bool, skip: int) -> Iterator[Row]:
    """CSV / TSV rows; ``line`` is the physical line where a row starts (quoted fields may
    span lines)."""
    with _open_text(path, encoding, newline="") as f:
        reader = csv.reader(f, **dialect)
        try:
            columns = [_ESCAPED_BYTE.sub("\ufffd", c) for c in next(reader, [])] \
                if header else None
            start, n = reader.line_num + 1, 0
            for fields in reader:
                line, start = start, reader.line_num + 1
                blank = not fields or (len(fields) == 1 and not fields[0].strip())
                if blank and not keep_blank:
                    continue
                n += 1
                if n > skip:
                    yield Row(line, {}) if blank else _csv_row(line, fields, columns, encoding)
        except (csv.Error, UnicodeDecodeError) as err:
            raise _unreadable(path, encoding, reader.line_num + 1, err) from None


def _csv_row(line: int, fields: list[str], columns: list[str] | None, encoding: str) -> Row:
    bad = _bad_bytes(fields, encoding)
    if bad:
        fields = [_ESCAPED_BYTE.sub("\ufffd", v) for v in fields]
    if columns is None:
        return Row(line, {str(i): v for i, v in enumerate(fields)}, bad, bool(bad))
    error = None if len(fields) == len(columns) else \
        f"row has {len(fields)} fields, the header has {len(columns)}"
    return Row(line, dict(zip(columns, fields)), bad or error, bool(bad))


def _parquet_rows(file: Any, skip: int) -> Iterator[Row]:
    meta = file.metadata
    groups: list[int] = []
    number = 0
    for i in range(meta.num_row_groups):  # skip whole row groups without reading them
        size = meta.row_group(i).num_rows
        if not groups and number + size <= skip:
            number += size
        else:
            groups.append(i)
    if not groups:
        return
    for batch in file.iter_batches(batch_size=1024, row_groups=groups):
        for values in batch.to_pylist():
            number += 1
            if number > skip:
                yield Row(number, values)
