"""``spacy-senti tune-thresholds``: per-label thresholds of the multilabel heads, tuned on dev."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from ..evaluation.report import check_gold
from ..evaluation.thresholds import (
    DEFAULT_GRID,
    HeadTuning,
    parse_grid,
    parse_metric,
    tune_thresholds,
)
from ..util import check_exists, find_textcat, load_pipeline, read_docs
from ._util import app, print_table, table


def _tuning_table(result: HeadTuning) -> Table:
    metric = result.metric
    rows = [
        (row.label, f"{row.old:.2f}", f"{row.new:.2f}" + (" (kept)" if row.skipped else ""),
         f"{row.before:.3f}", f"{row.after:.3f}", str(row.n_positive))
        for row in result.labels
    ]
    return table(f"{result.head}: thresholds tuned for {metric} on {result.n} docs",
                 ("label", "old thr", "new thr", f"dev {metric} before", f"dev {metric} after",
                  "positives"), rows)


@app.command("tune-thresholds")
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
    component: str | None = typer.Option(None, "--component", help="Component to tune "
                                         "(default: the first senti_textcat)."),
) -> None:
    """Tune per-label thresholds of the multilabel heads on DEV and save the pipeline."""
    values = parse_grid(grid)
    parse_metric(metric)
    check_exists(dev, "DEV")
    nlp = load_pipeline(model, gpu_id, what="MODEL")
    pipe = find_textcat(nlp, component)
    name = next(n for n, p in nlp.pipeline if p is pipe)
    docs = read_docs(dev, nlp, "DEV")
    multilabel = [h for h in pipe.heads if h.has_thresholds]
    if multilabel:
        check_gold(docs, multilabel, f"DEV {str(dev)!r}")
    for head in pipe.heads:
        if not head.has_thresholds:
            typer.echo(f"Head '{head.name}' ({head.kind}) left alone: only multilabel heads "
                       "have thresholds.")
    results = tune_thresholds(nlp, docs, name, grid=values, metric=metric,
                              batch_size=batch_size, progress=bool(multilabel))
    for head in multilabel:
        if head.name not in results:
            typer.echo(f"Head '{head.name}': no gold annotations in DEV, thresholds kept.")
            continue
        result = results[head.name]
        print_table(_tuning_table(result))
        typer.echo(f"{head.name}: macro-{metric} {result.macro_before:.3f} -> "
                   f"{result.macro_after:.3f}")
        if result.skipped:
            typer.echo(f"{head.name}: no positive dev examples for {result.skipped}; their "
                       "thresholds were kept.")
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    typer.echo(f"Saved pipeline to {output}")
