"""Streaming readers (JSONL, CSV/TSV, Parquet) and resumable writers (JSONL, Parquet).

Readers never load the whole file: they yield :class:`RecordBatch` es of at most
``batch_size`` rows, and can skip the first ``skip`` rows (for ``--resume``) cheaply.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

INPUT_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "csv",
    ".parquet": "parquet", ".pq": "parquet",
}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}


class InputError(ValueError):
    """An input that cannot be read, or that lacks what the command needs."""


@dataclass
class RecordBatch:
    """Rows of the input (dicts, input column order) and per-row read errors."""

    rows: list[dict[str, Any]]
    errors: list[str | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.errors:
            self.errors = [None] * len(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def detect_format(path: Path, formats: dict[str, str] = INPUT_FORMATS) -> str:
    """The format of ``path`` from its suffix."""
    fmt = formats.get(Path(path).suffix.lower())
    if fmt is None:
        raise InputError(
            f"Cannot tell the format of {path}: use one of the suffixes "
            f"{', '.join(sorted(formats))}."
        )
    return fmt


def _chunks(rows: Iterator[tuple[dict, str | None]], size: int) -> Iterator[RecordBatch]:
    while True:
        chunk = list(islice(rows, size))
        if not chunk:
            return
        yield RecordBatch([r for r, _ in chunk], [e for _, e in chunk])


class JsonlReader:
    """One JSON object per line; blank lines are not rows; bad lines become error rows."""

    format = "jsonl"
    total_rows: int | None = None
    arrow_schema = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.columns: list[str] = []
        for row, error in islice(self._rows(), 100):
            if error is None:
                self.columns.extend(k for k in row if k not in self.columns)

    def _rows(self, skip: int = 0) -> Iterator[tuple[dict[str, Any], str | None]]:
        with open(self.path, encoding="utf-8") as f:
            n = 0
            for line in f:
                if not line.strip():
                    continue
                n += 1
                if n <= skip:
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    yield {}, f"invalid JSON: {e.msg}"
                    continue
                if not isinstance(row, dict):
                    yield {}, f"line is not a JSON object ({type(row).__name__})"
                    continue
                yield row, None

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[RecordBatch]:
        return _chunks(self._rows(skip), batch_size)


class CsvReader:
    """CSV (``,``) or TSV (``\\t``) with a header row; values are strings."""

    format = "csv"
    total_rows: int | None = None
    arrow_schema = None

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.delimiter = "\t" if self.path.suffix.lower() == ".tsv" else ","
        with self._open() as f:
            header = next(csv.reader(f, delimiter=self.delimiter), None)
        if not header:
            raise InputError(f"{self.path} has no header row (the first line names columns).")
        self.columns = header

    def _open(self):
        return open(self.path, encoding="utf-8-sig", newline="")

    def _rows(self, skip: int = 0) -> Iterator[tuple[dict[str, Any], str | None]]:
        with self._open() as f:
            reader = csv.DictReader(f, delimiter=self.delimiter)
            for row in islice(reader, skip, None):
                extra = row.pop(None, None)
                error = None
                if extra is not None:
                    error = (f"row has {len(self.columns) + len(extra)} fields, the header "
                             f"has {len(self.columns)}")
                yield row, error

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[RecordBatch]:
        return _chunks(self._rows(skip), batch_size)


class ParquetReader:
    """Parquet via pyarrow, read record batch by record batch."""

    format = "parquet"

    def __init__(self, path: Path) -> None:
        import pyarrow.parquet as pq

        self.path = Path(path)
        self.file = pq.ParquetFile(self.path)
        self.arrow_schema = self.file.schema_arrow
        self.columns = list(self.arrow_schema.names)
        self.total_rows = self.file.metadata.num_rows

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[RecordBatch]:
        meta = self.file.metadata
        first, offset = 0, 0  # skip whole row groups without reading them
        while first < meta.num_row_groups and offset + meta.row_group(first).num_rows <= skip:
            offset += meta.row_group(first).num_rows
            first += 1
        groups = list(range(first, meta.num_row_groups))
        to_drop = skip - offset
        if not groups:
            return
        for batch in self.file.iter_batches(batch_size=batch_size, row_groups=groups):
            if to_drop >= batch.num_rows:
                to_drop -= batch.num_rows
                continue
            if to_drop:
                batch, to_drop = batch.slice(to_drop), 0
            yield RecordBatch(batch.to_pylist())


Reader = JsonlReader | CsvReader | ParquetReader
READERS = {"jsonl": JsonlReader, "csv": CsvReader, "parquet": ParquetReader}


def open_reader(path: Path | str) -> Reader:
    """A streaming reader for ``path``; :class:`InputError` names the file on failure."""
    path = Path(path)
    fmt = detect_format(path)
    if not path.exists():
        raise InputError(f"Input file not found: {path}")
    if path.is_dir():
        raise InputError(f"Input {path} is a directory; give one JSONL, CSV or Parquet file.")
    try:
        return READERS[fmt](path)
    except InputError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as e:
        raise InputError(f"Cannot read {path} as {fmt}: {e}") from e


def check_text_column(reader: Reader, text_column: str) -> None:
    """Fail early, listing the available columns, when the text column is missing."""
    if text_column not in reader.columns:
        raise InputError(
            f"{reader.path} has no column {text_column!r}. Available columns: "
            f"{', '.join(map(repr, reader.columns)) or '(none found)'}. "
            "Choose one with --text-column."
        )


# --- writers ------------------------------------------------------------------------------
def _fsync(f) -> None:
    f.flush()
    os.fsync(f.fileno())


class JsonlWriter:
    """Appends rows as JSON lines; each batch is flushed and fsynced before it counts."""

    def __init__(self, path: Path, resume_at: int | None = None, to_table=None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_at is None:
            self.file = open(self.path, "wb")
        else:
            size = self.path.stat().st_size if self.path.exists() else -1
            if size < resume_at:
                raise InputError(
                    f"{self.path} is shorter than its checkpoint says ({size} < {resume_at} "
                    "bytes): it was changed or removed. Rerun with --no-resume."
                )
            self.file = open(self.path, "r+b")
            self.file.truncate(resume_at)  # drop a partly written tail
            self.file.seek(resume_at)

    def write_batch(self, rows: list[dict[str, Any]], index: int) -> int:
        """Write one batch; returns the byte offset after it (for the checkpoint)."""
        data = "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows)
        self.file.write(data.encode("utf-8"))
        _fsync(self.file)
        return self.file.tell()

    def close(self) -> None:
        self.file.close()

    def finish(self) -> None:
        self.close()


class ParquetWriter:
    """Writes each batch to ``OUTPUT.parts/part-NNNNNN.parquet`` (atomically), and joins the
    parts into OUTPUT at the end, one row group per part (constant memory)."""

    def __init__(self, path: Path, resume_at: int | None = None, to_table=None) -> None:
        self.path = Path(path)
        self.to_table = to_table
        self.parts = self.path.with_name(self.path.name + ".parts")
        if resume_at is None and self.parts.exists():
            shutil.rmtree(self.parts)
        self.parts.mkdir(parents=True, exist_ok=True)
        keep = resume_at or 0
        for part in self.parts.iterdir():  # parts after the checkpoint, and partial files
            if not part.name.endswith(".parquet") or _part_index(part) >= keep:
                part.unlink()
        found = len(list(self.parts.glob("part-*.parquet")))
        if found != keep:
            raise InputError(
                f"{self.parts} holds {found} part files, its checkpoint says {keep}: it was "
                "changed. Rerun with --no-resume."
            )

    def write_batch(self, rows: list[dict[str, Any]], index: int) -> int:
        """Write one batch as a part file; returns the number of parts written."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = self.to_table(rows) if self.to_table else pa.Table.from_pylist(rows)
        final = self.parts / f"part-{index:06d}.parquet"
        tmp = final.with_suffix(".tmp")
        pq.write_table(table, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        return index + 1

    def close(self) -> None:
        pass

    def finish(self) -> None:
        """Join the parts into the output file and remove them."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        parts = sorted(self.parts.glob("part-*.parquet"), key=_part_index)
        schemas = [pq.read_schema(p) for p in parts]
        if not schemas:
            schemas = [pa.schema([])]
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        tmp = self.path.with_name(self.path.name + ".tmp")
        with pq.ParquetWriter(tmp, schema) as writer:
            for part in parts:
                table = pq.read_table(part)
                try:
                    table = table.cast(schema)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                    raise InputError(
                        f"Column types differ between batches ({e}); write JSONL output "
                        "instead, or make the input's column types consistent."
                    ) from e
                writer.write_table(table)
        os.replace(tmp, self.path)
        shutil.rmtree(self.parts)


def _part_index(part: Path) -> int:
    try:
        return int(part.name.split("-")[1].split(".")[0])
    except (IndexError, ValueError):
        return -1


def open_writer(
    path: Path, resume_at: int | None = None, to_table: Callable[[list[dict]], Any] | None = None
) -> JsonlWriter | ParquetWriter:
    """A writer for OUTPUT by its suffix. resume_at: the checkpointed byte offset (JSONL) or
    part count (Parquet); to_table: rows -> pyarrow Table (Parquet only)."""
    fmt = detect_format(path, OUTPUT_FORMATS)
    return (JsonlWriter if fmt == "jsonl" else ParquetWriter)(path, resume_at, to_table)
