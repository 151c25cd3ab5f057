"""Commands ``spacy-senti evaluate`` and ``spacy-senti tune-thresholds`` (added in ../cli.py)."""

from __future__ import annotations

from pathlib import Path

import spacy
import typer
from rich.console import Console
from rich.table import Table
from spacy.language import Language
from spacy.tokens import Doc, DocBin

from .report import EvaluationInputError, check_gold, find_component, predict_examples, write_report
from .thresholds import DEFAULT_GRID, HeadTuning, parse_grid, parse_metric, tune_thresholds


# --- loading ---------------------------------------------------------------------------------
def check_exists(path: Path, what: str) -> None:
    """Fail early (before the slow model load) when an input path is missing."""
    if not Path(path).expanduser().exists():
        raise EvaluationInputError(f"{what} file {str(path)!r} not found.")


def load_pipeline(model: str, gpu_id: int = -1) -> Language:
    """``spacy.load`` a pipeline directory or installed package, with a clear error if neither."""
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except Exception as err:  # thinc raises ValueError/ImportError depending on the setup
            raise EvaluationInputError(f"Cannot use GPU {gpu_id}: {err}") from None
    path = Path(model).expanduser()
    if path.exists():
        if not (path / "config.cfg").exists():
            raise EvaluationInputError(
                f"MODEL {model!r} is not a spaCy pipeline directory (no config.cfg in it)."
            )
        return spacy.load(path)
    if spacy.util.is_package(model):
        return spacy.load(model)
    raise EvaluationInputError(
        f"MODEL {model!r} not found: no such directory and no installed pipeline package of "
        "that name."
    )


def read_docs(path: Path, nlp: Language, what: str = "DATA") -> list[Doc]:
    """Docs of a ``.spacy`` DocBin, or of every ``.spacy`` file under a directory."""
    check_exists(path, what)
    path = Path(path).expanduser()
    files = sorted(path.rglob("*.spacy")) if path.is_dir() else [path]
    if not files:
        raise EvaluationInputError(f"{what} directory {str(path)!r} holds no .spacy files.")
    docs: list[Doc] = []
    for file in files:
        try:
            docs.extend(DocBin().from_disk(file).get_docs(nlp.vocab))
        except Exception as err:  # msgpack/zlib errors for files of another format
            raise EvaluationInputError(
                f"{what} {str(file)!r} is not a spaCy DocBin ({type(err).__name__}). Convert "
                "CSV/JSONL data with `spacy-senti convert` first."
            ) from None
    return docs


def _fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


# --- evaluate --------------------------------------------------------------------------------
def evaluate_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    data: Path = typer.Argument(..., help="DocBin (.spacy, or a directory of them) with gold "
                                "doc.cats."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the report."),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="nlp.pipe batch size."),
    n_errors: int = typer.Option(50, "--n-errors", min=0,
                                 help="Most confident errors to list per head."),
    n_bins: int = typer.Option(10, "--n-bins", min=1, max=100,
                               help="Bins of the reliability diagrams / ECE."),
    component: str = typer.Option("senti_textcat", "--component", help="Component to evaluate."),
) -> None:
    """Evaluate a pipeline on gold data: metrics, figures, errors and report.md in OUTPUT."""
    try:
        check_exists(data, "DATA")
        nlp = load_pipeline(model, gpu_id)
        heads = find_component(nlp, component).heads
        docs = read_docs(data, nlp)
        check_gold(docs, heads, f"DATA {str(data)!r}")
    except EvaluationInputError as err:
        raise _fail(str(err)) from None
    examples = predict_examples(nlp, docs, batch_size=batch_size, progress=True)
    name = f"{nlp.meta.get('lang', '')}_{nlp.meta.get('name', 'pipeline')}".strip("_")
    report = write_report(examples, heads, output, model_name=name,
                          model_version=str(nlp.meta.get("version", "")), model_source=model,
                          data_path=str(data),
                          n_errors=n_errors, n_bins=n_bins)
    table = Table(title=f"{name} on {data} ({len(docs)} docs)")
    for col in ("head", "kind", "n", "accuracy", "macro-F1", "micro-F1", "ECE"):
        table.add_column(col, justify="left" if col in ("head", "kind") else "right")
    for rep in report.heads:
        table.add_row(rep.head.name, rep.head.kind, str(rep.n), _fmt(rep.score("acc")),
                      _fmt(rep.score("macro_f")), _fmt(rep.score("micro_f")), _fmt(rep.ece))
    Console().print(table)
    for key in report.metrics["unknown_gold_keys"][:20]:
        typer.secho(f"Warning: gold key {key!r} is not predicted by the model (not scored).",
                    fg=typer.colors.YELLOW, err=True)
    typer.echo(f"Report written to {output / 'report.md'} ({len(report.files)} files).")


# --- tune-thresholds -------------------------------------------------------------------------
def _tuning_table(result: HeadTuning) -> Table:
    metric = result.metric
    table = Table(title=f"{result.head}: thresholds tuned for {metric} on {result.n} docs")
    for col in ("label", "old thr", "new thr", f"dev {metric} before", f"dev {metric} after",
                "positives"):
        table.add_column(col, justify="left" if col == "label" else "right")
    for row in result.labels:
        new = f"{row.new:.2f}" + (" (kept)" if row.skipped else "")
        table.add_row(row.label, f"{row.old:.2f}", new, f"{row.before:.3f}", f"{row.after:.3f}",
                      str(row.n_positive))
    return table


def tune_thresholds_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    dev: Path = typer.Argument(..., help="Dev DocBin (.spacy) with gold doc.cats."),
    output: Path = typer.Option(..., "--output", "-o",
                                help="Where to save the pipeline (may equal MODEL)."),
    metric: str = typer.Option("f1", "--metric", help="F-score to maximise: f1, f0.5, f2, ..."),
    grid: str = typer.Option(DEFAULT_GRID, "--grid",
                             help="Candidate thresholds: start:stop:step or a list a,b,c."),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="nlp.pipe batch size."),
    component: str = typer.Option("senti_textcat", "--component", help="Component to tune."),
) -> None:
    """Tune per-label thresholds of the multilabel heads on DEV and save the pipeline."""
    try:
        values = parse_grid(grid)
        parse_metric(metric)
        check_exists(dev, "DEV")
        nlp = load_pipeline(model, gpu_id)
        pipe = find_component(nlp, component)
        docs = read_docs(dev, nlp, "DEV")
        multilabel = [h for h in pipe.heads if h.kind == "multilabel"]
        if multilabel:
            check_gold(docs, multilabel, f"DEV {str(dev)!r}")
    except (EvaluationInputError, ValueError) as err:
        raise _fail(str(err)) from None
    console = Console()
    for head in pipe.heads:
        if head.kind != "multilabel":
            typer.echo(f"Head '{head.name}' ({head.kind}) left alone: only multilabel heads "
                       "have thresholds.")
    results = tune_thresholds(nlp, docs, component, grid=values, metric=metric,
                              batch_size=batch_size, progress=bool(multilabel))
    for head in multilabel:
        if head.name not in results:
            typer.echo(f"Head '{head.name}': no gold annotations in DEV, thresholds kept.")
            continue
        result = results[head.name]
        console.print(_tuning_table(result))
        typer.echo(f"{head.name}: macro-{metric} {result.macro_before:.3f} -> "
                   f"{result.macro_after:.3f}")
        if result.skipped:
            typer.echo(f"{head.name}: no positive dev examples for {result.skipped}; their "
                       "thresholds were kept.")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    typer.echo(f"Saved pipeline to {output}")
