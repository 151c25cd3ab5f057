"""``spacy-senti drift``: population stability of predictions, length and vocabulary."""

from __future__ import annotations

from pathlib import Path

import typer

from ..util import check_exists, find_textcat, load_pipeline
from ._util import app, print_table, table

DRIFT_EXIT_CODE = 3


@app.command("drift")
def drift_command(
    reference: Path = typer.Argument(..., help="Reference texts: .jsonl, .csv, .tsv, .txt or "
                                     ".spacy."),
    current: Path = typer.Argument(..., help="Current texts, same formats."),
    model: str = typer.Option(..., "--model", "-m", help="Pipeline directory or package."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Directory for report.md, drift.png, drift.json."),
    threshold: float = typer.Option(0.2, "--threshold", min=0.0, help="PSI above = drift."),
    vocab_threshold: float = typer.Option(
        0.25, "--vocab-threshold", min=0.0,
        help="Relative change of wordpieces/word (or OOV rate) above = drift."),
    text_column: str | None = typer.Option(None, "--text-column",
                                           help="JSONL field / CSV column of the text."),
    head: str | None = typer.Option(None, "--head", help="Only this head (default: all)."),
    limit: int = typer.Option(0, "--limit", min=0, help="Use at most N texts per file (0: all)."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
) -> None:
    """Population stability of predictions, text length and vocabulary: REFERENCE vs CURRENT.

    Exits with code 3 when any measure crosses its threshold.
    """
    from ..monitor.drift import compute_drift
    from ..monitor.inputs import check_head, predict, read_texts
    from ..monitor.report import markdown, write_report

    check_exists(reference, "REFERENCE file")
    check_exists(current, "CURRENT file")
    nlp = load_pipeline(model, what="--model")
    heads = check_head(find_textcat(nlp).heads, head)
    ref_texts = read_texts(reference, text_column, nlp)
    cur_texts = read_texts(current, text_column, nlp)
    if limit:
        ref_texts, cur_texts = ref_texts[:limit], cur_texts[:limit]
    ref = predict(nlp, ref_texts, batch_size=batch_size, desc="reference")
    cur = predict(nlp, cur_texts, batch_size=batch_size, desc="current")
    result = compute_drift(nlp, heads, ref, cur, threshold=threshold,
                           vocab_threshold=vocab_threshold)
    rows = [
        (m.name, f"{m.value:.3f}", f"{m.threshold:g}",
         "" if m.reference is None else f"{m.reference:.3g}",
         "" if m.current is None else f"{m.current:.3g}",
         "[red]yes[/red]" if m.drifted else "no")
        for m in result.metrics
    ]
    print_table(table(f"drift: {reference} -> {current}",
                      ("measure", "value", "threshold", "reference", "current", "drift"), rows))
    if output is not None:
        files = write_report(result, output, str(reference), str(current))
        typer.echo(f"Report written to {files[0]}")
    elif not result.metrics:
        typer.echo(markdown(result, figure=None))
    if result.drifted:
        typer.secho("Drift detected.", fg=typer.colors.RED, err=True)
        raise typer.Exit(DRIFT_EXIT_CODE)
    typer.echo("No drift.")
