"""Reading the input of ``spacy-senti score`` in batches, and resumable writers (JSONL,
Parquet).

Rows come from the shared reader (:func:`spacy_senti.util.read_rows`): nothing loads the
whole file, and the first ``skip`` rows (for ``--resume``) are skipped cheaply.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..util import detect_format, open_parquet, read_columns, read_rows

INPUT_FORMATS = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
    ".csv": "csv", ".tsv": "tsv",
    ".parquet": "parquet", ".pq": "parquet",
}
OUTPUT_FORMATS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}
QUOTING = "minimal"  # TSV fields may be quoted, as csv.writer and Ray's reader do it


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


class InputReader:
    """One JSONL, CSV/TSV or Parquet input: its columns at once, then its rows in batches.

    Blank lines are not rows; a line that cannot be read (invalid JSON, not an object, a CSV
    row with more or fewer fields than the header, bytes that are not UTF-8) is a row with an
    error, written to the output with null predictions.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.format = detect_format(self.path, INPUT_FORMATS)
        self.columns = read_columns(self.path, self.format, quoting=QUOTING)
        parquet = open_parquet(self.path) if self.format == "parquet" else None
        self.total_rows: int | None = parquet.metadata.num_rows if parquet else None
        self.arrow_schema = parquet.schema_arrow if parquet else None

    def every_column(self) -> list[str]:
        """Every column of the file: for JSONL the keys of all objects (any row may add one),
        which costs one extra parse of the file; otherwise :attr:`columns`."""
        if self.format != "jsonl":
            return list(self.columns)
        return read_columns(self.path, self.format, quoting=QUOTING, sample=None)

    def batches(self, batch_size: int, skip: int = 0) -> Iterator[RecordBatch]:
        rows = read_rows(self.path, self.format, quoting=QUOTING, skip=skip)
        while chunk := list(islice(rows, batch_size)):
            yield RecordBatch([r.values for r in chunk], [r.error for r in chunk])


def open_reader(path: Path | str) -> InputReader:
    """A streaming reader for ``path``; :class:`InputError` names the file on failure."""
    return InputReader(path)


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
