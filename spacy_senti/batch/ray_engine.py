"""The Ray Data engine: read -> ``map_batches`` over an actor pool -> write part files.

Each actor loads the pipeline once (``__init__``) and scores Arrow batches. The output is a
directory of part files (``write_json`` / ``write_parquet``), in input order
(``preserve_order``). Runs on a local Ray runtime started here, or on a cluster (``address``).
Resuming is not supported by this engine: rerun it, or use the local engine.

PIPELINE may be an ONNX export folder: each actor then runs ``spacy.blank`` + ``senti_onnx``
with one onnxruntime thread (the folder must be readable at the same path on every node).
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..util import pick_column
from .io import InputError, open_reader
from .local import check_output_path, export_variant
from .rows import HeadColumns, row_error

RAY_OUTPUT_FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl",
                      ".parquet": "parquet", ".pq": "parquet", "": "parquet"}


@dataclass
class RaySummary:
    rows_in: int
    rows_out: int
    n_errors: int
    seconds: float
    output: str
    files: int

    @property
    def rows_per_second(self) -> float:
        return self.rows_out / self.seconds if self.seconds else 0.0

    def lines(self) -> list[str]:
        ok = "ok" if self.rows_in == self.rows_out else "MISMATCH"
        return [
            f"rows in: {self.rows_in:,}  rows out: {self.rows_out:,} ({ok})  "
            f"errors: {self.n_errors:,}  ({self.rows_per_second:,.1f} rows/s)",
            f"output: {self.output}/ ({self.files} part files)",
        ]


class SentiScorer:
    """Ray Data callable class: one pipeline per actor, scores ``pyarrow.Table`` batches."""

    def __init__(self, pipeline: str, text_column: str, batch_size: int, prefix: str = "",
                 gpu: bool = False, onnx_variant: str | None = None) -> None:
        from ..util import load_pipeline

        if onnx_variant is None:  # a spaCy pipeline; an export runs one onnxruntime thread
            import torch

            torch.set_num_threads(1)
        self.nlp = load_pipeline(pipeline, 0 if gpu else -1, allow_onnx=True,
                                 variant=onnx_variant, threads=1)
        self.columns = HeadColumns.from_nlp(self.nlp, prefix=prefix)
        self.text_column = text_column
        self.batch_size = batch_size

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        texts = batch.column(self.text_column).to_pylist()
        if not pa.types.is_string(batch.schema.field(self.text_column).type) and \
                not pa.types.is_large_string(batch.schema.field(self.text_column).type):
            kind = str(batch.schema.field(self.text_column).type)
            reasons = [row_error(t) or f"text is not a string ({kind})" for t in texts]
        else:
            reasons = [row_error(t) for t in texts]
        clean = ["" if why else t for t, why in zip(texts, reasons)]
        preds = []
        for doc, why in zip(self.nlp.pipe(clean, batch_size=self.batch_size), reasons):
            values = self.columns.from_error(why) if why else self.columns.from_doc(doc)
            preds.append(self.columns.encode_for_arrow(values))
        for field in self.columns.arrow_fields():
            batch = batch.append_column(field, pa.array([p[field.name] for p in preds],
                                                        type=field.type))
        return batch


def actor_cpus(cluster_cpus: float, concurrency: int) -> float:
    """CPUs reserved per scoring actor: 1, or less when the actors would take every CPU and
    leave none for Ray Data's read and write tasks (which then never run: a deadlock seen with
    2 actors on 2 CPUs). Each actor uses one torch thread either way."""
    spare = (cluster_cpus - 1.0) / max(concurrency, 1)
    return round(min(1.0, max(spare, 0.1)), 2)


def _read(ray_data: Any, path: Path, fmt: str) -> Any:
    """A Ray dataset of one file or a directory of part files (any file suffix)."""
    if fmt == "jsonl":  # pyarrow's JSON reader reads newline-delimited JSON
        return ray_data.read_json(str(path), file_extensions=None)
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        delimiter = "\t" if fmt == "tsv" else ","
        return ray_data.read_csv(str(path), file_extensions=None,
                                 parse_options=pacsv.ParseOptions(delimiter=delimiter))
    return ray_data.read_parquet(str(path), file_extensions=None)


def _count_output(ray_data: Any, output: Path, fmt: str, error_col: str) -> tuple[int, int]:
    """(rows, rows with an error) of the written part files, streamed one column."""
    rows = errors = 0
    written = _read(ray_data, output, fmt).select_columns([error_col])
    for batch in written.iter_batches(batch_format="pyarrow", batch_size=10_000):
        column = batch.column(error_col)
        rows += len(column)
        errors += len(column) - column.null_count
    return rows, errors


def score_ray(
    pipeline: str | Path,
    input_path: str | Path,
    output: str | Path,
    *,
    text_column: str = "text",
    batch_size: int = 256,
    concurrency: int = 2,
    address: str | None = None,
    gpu: bool = False,
    prefix: str = "",
    num_cpus: int | None = None,
    onnx_variant: str | None = None,
) -> RaySummary:
    """Score INPUT into the directory OUTPUT (part files; JSONL if OUTPUT ends in .jsonl,
    else Parquet). ``address``: ``None`` starts a local runtime; ``auto`` or
    ``ray://HEAD:10001`` joins a cluster. ``pipeline`` may be an ONNX export folder
    (``onnx_variant``: its ``fp32`` or ``int8`` model; default: the export's)."""
    try:
        import ray
        import ray.data
    except ImportError as e:
        raise InputError(
            "--engine ray needs Ray Data: pip install 'spacy-senti[ray]' "
            "(or pip install 'ray[data]')."
        ) from e
    input_path, output = Path(input_path), Path(output)
    variant = export_variant(pipeline, onnx_variant, gpu=gpu)
    check_output_path(input_path, output)
    reader = open_reader(input_path)  # checks readability and columns before starting Ray
    text_column = pick_column(reader.columns, text_column, input_path)
    fmt = reader.format
    out_fmt = RAY_OUTPUT_FORMATS.get(output.suffix.lower(), "parquet")
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise InputError(
            f"Output {output} already exists: Ray writes a new directory of part files and "
            "would mix them with what is there. Remove it or choose another OUTPUT."
        )
    from ..util import load_pipeline

    columns = HeadColumns.from_nlp(load_pipeline(pipeline, allow_onnx=True, variant=variant,
                                                 threads=1), prefix=prefix)
    columns.check_collisions(reader.columns)

    started_here = not ray.is_initialized()
    if started_here:
        init: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": False}
        if address:
            init["address"] = address
        elif num_cpus:
            init["num_cpus"] = num_cpus
        ray.init(**init)
    try:
        resources = ray.cluster_resources()
        use_gpu = bool(gpu and resources.get("GPU", 0) > 0)
        if gpu and not use_gpu:
            warnings.warn("--gpu: the Ray cluster has no GPUs; scoring on CPUs.", stacklevel=2)
        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True
        start = time.perf_counter()
        ds = _read(ray.data, input_path, fmt)
        ds = ds.map_batches(
            SentiScorer,
            fn_constructor_kwargs={"pipeline": str(Path(pipeline).resolve())
                                   if Path(pipeline).exists() else str(pipeline),
                                   "text_column": text_column, "batch_size": batch_size,
                                   "prefix": prefix, "gpu": use_gpu,
                                   "onnx_variant": variant},
            batch_size=batch_size,
            batch_format="pyarrow",
            concurrency=concurrency,
            num_cpus=actor_cpus(resources.get("CPU", 1.0), concurrency),
            num_gpus=1 if use_gpu else 0,
        )
        if out_fmt == "jsonl":
            ds.write_json(str(output))
        else:
            ds.write_parquet(str(output))
        seconds = time.perf_counter() - start
        rows_out, n_errors = _count_output(ray.data, output, out_fmt, columns.names[-1])
        rows_in = _read(ray.data, input_path, fmt).count()
    finally:
        if started_here:
            ray.shutdown()
    files = len([p for p in output.iterdir() if p.is_file()])
    return RaySummary(rows_in, rows_out, n_errors, seconds, str(output), files)
