"""The local engine: stream the input through ``nlp.pipe`` (optionally ``n_process``
workers) and write the output batch by batch, with a checkpoint after each batch."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..util import onnx_export_info, onnx_variant, pick_column
from .checkpoint import Checkpoint, checkpoint_path, input_fingerprint
from .io import OUTPUT_FORMATS, InputError, InputReader, detect_format, open_reader, open_writer
from .rows import HeadColumns, row_error

MAX_ERROR_ROWS = 1000  # row numbers kept for the summary; the count is always exact


@dataclass
class ScoreSummary:
    """What a run did (``rows_in == rows_out`` always holds for a complete run)."""

    rows_in: int = 0
    rows_out: int = 0
    n_errors: int = 0
    error_rows: list[tuple[int, str]] = field(default_factory=list)
    resumed_from: int = 0
    seconds: float = 0.0
    output: str = ""
    complete: bool = False
    already_complete: bool = False

    @property
    def rows_per_second(self) -> float:
        scored = self.rows_out - self.resumed_from
        return scored / self.seconds if self.seconds else 0.0

    def lines(self, max_errors: int = 10) -> list[str]:
        """A short human-readable report."""
        if self.already_complete:
            return [f"{self.output} is already complete ({self.rows_out:,} rows); "
                    "rerun with --no-resume to score again."]
        lines = [
            f"rows in: {self.rows_in:,}  rows out: {self.rows_out:,}  "
            f"errors: {self.n_errors:,}  ({self.rows_per_second:,.1f} rows/s)",
        ]
        if self.resumed_from:
            lines.append(f"resumed after row {self.resumed_from:,}")
        if self.n_errors:
            shown = ", ".join(f"row {n}: {why}" for n, why in self.error_rows[:max_errors])
            more = f", ... ({self.n_errors - max_errors:,} more)" \
                if self.n_errors > max_errors else ""
            lines.append(f"rows written with an error and null predictions: {shown}{more}")
        lines.append(f"output: {self.output}")
        return lines


def export_variant(pipeline: str | Path, variant: str | None, gpu: bool = False) -> str | None:
    """The ONNX model variant that scoring ``pipeline`` runs: None for a spaCy pipeline, the
    checked ``variant`` (default: the export's own default) for an export folder."""
    info = onnx_export_info(pipeline) if Path(pipeline).expanduser().is_dir() else None
    if info is None:
        if variant is not None:
            raise InputError(f"--onnx-variant {variant} applies to an ONNX export (a folder "
                             "written by `spacy-senti export-onnx`); PIPELINE "
                             f"{str(pipeline)!r} is a spaCy pipeline.")
        return None
    if gpu:
        raise InputError(f"PIPELINE {str(pipeline)!r} is an ONNX export, which runs on the CPU "
                         "(onnxruntime): drop --gpu.")
    return onnx_variant(info, variant)


def run_settings(pipeline: str | Path, text_column: str, output: Path, prefix: str,
                 variant: str | None = None) -> dict:
    """The settings a checkpoint must match to be resumed (``variant``: of an ONNX export;
    absent for a spaCy pipeline, so checkpoints of earlier versions still resume)."""
    settings = {
        "pipeline": str(Path(pipeline).resolve()) if Path(pipeline).exists() else str(pipeline),
        "text_column": text_column,
        "output_format": detect_format(output, OUTPUT_FORMATS),
        "prefix": prefix,
    }
    if variant is not None:
        settings["onnx_variant"] = variant
    return settings


def score_local(
    pipeline: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    text_column: str = "text",
    batch_size: int = 256,
    n_process: int = 1,
    gpu: bool = False,
    resume: bool = True,
    prefix: str = "",
    progress: bool = True,
    threads: int | None = None,
    nlp: Any = None,
    on_batch: Callable[[Checkpoint], None] | None = None,
    overwrite: bool = False,
    onnx_variant: str | None = None,
) -> ScoreSummary:
    """Score INPUT into OUTPUT, resuming from OUTPUT's checkpoint unless ``resume`` is False.

    pipeline: a spaCy pipeline (directory or package) or an ONNX export folder (``spacy-senti
        export-onnx``), run as ``spacy.blank`` + ``senti_onnx``: same columns, on the CPU.
    threads: torch threads (ONNX: onnxruntime intra-op threads) per process (default: the
        library's; 1 when ``n_process`` > 1).
    nlp: an already loaded pipeline to use instead of loading ``pipeline``.
    on_batch: called with the checkpoint after each batch is written (tests, monitoring).
    overwrite: replace an OUTPUT that exists without a checkpoint (else InputError).
    onnx_variant: ``fp32`` or ``int8`` model of an ONNX export (default: the export's).
    """
    input_path, output = Path(input_path), Path(output)
    if gpu and n_process > 1:
        raise InputError("--gpu uses one process: drop --n-process (or use --engine ray).")
    variant = export_variant(pipeline, onnx_variant, gpu=gpu)
    check_output_path(input_path, output)
    reader = open_reader(input_path)
    text_column = pick_column(reader.columns, text_column, input_path)
    settings = run_settings(pipeline, text_column, output, prefix, variant)
    ckpt_file = checkpoint_path(output)
    if output.exists() and not ckpt_file.exists() and not overwrite:
        raise InputError(
            f"OUTPUT {str(output)!r} already exists and is not a scoring run of ours to resume "
            "(no checkpoint beside it). Choose another OUTPUT, or pass --overwrite to replace it."
        )
    ckpt = _resume_point(ckpt_file, input_path, settings, resume)
    summary = ScoreSummary(output=str(output), resumed_from=ckpt.rows_done,
                           n_errors=ckpt.n_errors,
                           error_rows=[tuple(e) for e in ckpt.error_rows])
    if ckpt.complete and output.exists():
        summary.rows_in = summary.rows_out = ckpt.rows_done
        summary.complete = summary.already_complete = True
        return summary
    if ckpt.complete:  # the output was removed since: score again
        ckpt = _resume_point(ckpt_file, input_path, settings, resume=False)
        summary = ScoreSummary(output=str(output))

    if nlp is None:
        from ..util import load_pipeline

        nlp = load_pipeline(pipeline, 0 if gpu else -1, allow_onnx=True, variant=variant,
                            threads=1 if n_process > 1 else threads)
    columns = HeadColumns.from_nlp(nlp, prefix=prefix)
    columns.check_collisions(reader.every_column())
    to_table = _arrow_encoder(reader, columns)
    if not ckpt.rows_done:  # starting over: an old checkpoint must not outlive the old output
        ckpt_file.unlink(missing_ok=True)
    writer = open_writer(output, ckpt.output_position if ckpt.rows_done else None, to_table)
    if variant is None and (n_process > 1 or threads):
        import torch

        # forked workers inherit the setting: n_process x 1 threads
        torch.set_num_threads(1 if n_process > 1 else threads)

    start = time.perf_counter()
    bar = _progress(progress, reader, ckpt.rows_done)
    try:
        for rows in _scored_batches(nlp, reader, text_column, batch_size, n_process,
                                    columns, ckpt.rows_done):
            index = ckpt.batches_done
            for offset, row in enumerate(rows):
                reason = row[columns.names[-1]]
                if reason is not None:
                    ckpt.n_errors += 1
                    if len(ckpt.error_rows) < MAX_ERROR_ROWS:
                        ckpt.error_rows.append([ckpt.rows_done + offset + 1, reason])
            ckpt.output_position = writer.write_batch(rows, index)
            ckpt.rows_done += len(rows)
            ckpt.batches_done += 1
            ckpt.save(ckpt_file)
            if bar is not None:
                bar.update(len(rows))
            if on_batch is not None:
                on_batch(ckpt)
        writer.finish()
        ckpt.complete = True
        ckpt.save(ckpt_file)
    finally:
        writer.close()
        if bar is not None:
            bar.close()
    summary.seconds = time.perf_counter() - start
    summary.rows_in = summary.rows_out = ckpt.rows_done
    summary.n_errors = ckpt.n_errors
    summary.error_rows = [tuple(e) for e in ckpt.error_rows]
    summary.complete = True
    return summary


def check_output_path(input_path: Path, output: Path) -> None:
    """Refuse an OUTPUT that is INPUT (the same path, a symlink or a hard link to it), or a
    file inside which INPUT would be overwritten; checked before anything is opened."""
    same = output.resolve() == input_path.resolve() or (
        output.exists() and input_path.exists() and os.path.samefile(output, input_path))
    if same:
        raise InputError(
            f"OUTPUT {str(output)!r} is the INPUT file {str(input_path)!r}"
            + ("" if output.resolve() == input_path.resolve() else " (a link to it)")
            + ": scoring would overwrite the input. Choose another OUTPUT path."
        )


def _resume_point(ckpt_file: Path, input_path: Path, settings: dict, resume: bool) -> Checkpoint:
    fingerprint = input_fingerprint(input_path)
    old = Checkpoint.load(ckpt_file) if resume else None
    if old is not None:
        why = old.mismatch(fingerprint, settings)
        if why:
            raise InputError(
                f"Cannot resume from {ckpt_file}: {why}. Rerun with --no-resume to start over."
            )
        return old
    return Checkpoint(input=fingerprint, settings=settings)


def _scored_batches(
    nlp: Any, reader: InputReader, text_column: str, batch_size: int, n_process: int,
    columns: HeadColumns, skip: int,
) -> Iterator[list[dict[str, Any]]]:
    """Output rows, in input order, grouped in batches of ``batch_size``.

    One ``nlp.pipe`` call over the whole stream (workers start once). Rows that cannot be
    scored go through the pipe as ``""`` so docs and rows stay one to one; ``pending``
    holds only the rows the pipe has read ahead.
    """
    pending: deque[tuple[dict[str, Any], str | None]] = deque()

    def texts() -> Iterator[str]:
        for batch in reader.batches(batch_size, skip=skip):
            for row, read_error in zip(batch.rows, batch.errors):
                text = row.get(text_column)
                reason = read_error or row_error(text)
                pending.append((row, reason))
                yield "" if reason else text

    out: list[dict[str, Any]] = []
    for doc in nlp.pipe(texts(), batch_size=batch_size, n_process=n_process):
        row, reason = pending.popleft()
        preds = columns.from_error(reason) if reason else columns.from_doc(doc)
        out.append({**row, **preds})
        if len(out) >= batch_size:
            yield out
            out = []
    if out:
        yield out


def _arrow_encoder(reader: InputReader, columns: HeadColumns) -> Callable[[list[dict]], Any]:
    """rows -> pyarrow Table with the input's schema (when known) plus prediction columns."""

    def to_table(rows: list[dict[str, Any]]) -> Any:
        import pyarrow as pa

        rows = [columns.encode_for_arrow(r) for r in rows]
        fields = list(reader.arrow_schema) if reader.arrow_schema is not None else None
        pred_fields = columns.arrow_fields()
        if fields is None:
            keys = dict.fromkeys(k for r in rows for k in r)
            pass_through = [k for k in keys if k not in columns.names]
            table = pa.Table.from_pylist([{k: r.get(k) for k in pass_through} for r in rows])
            fields = list(table.schema)
        schema = pa.schema(fields + pred_fields)
        return pa.Table.from_pylist(rows, schema=schema)

    return to_table


def _progress(enabled: bool, reader: InputReader, initial: int):
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=reader.total_rows, initial=initial, unit=" rows", unit_scale=True,
                desc="scoring", dynamic_ncols=True)
