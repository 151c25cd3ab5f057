"""Commands of the improvement loop: ``drift``, ``select``, ``cv`` and ``distill``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from .monitor.inputs import LoopInputError

DRIFT_EXIT_CODE = 3


def _fail(message: str) -> typer.Exit:
    typer.secho(f"Error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(1)


def _load(model: str):
    from .evaluation.cli import load_pipeline
    from .evaluation.report import EvaluationInputError

    try:
        return load_pipeline(model)
    except EvaluationInputError as err:
        raise LoopInputError(str(err)) from None


def _exists(path: Path, what: str) -> None:
    if not Path(path).expanduser().exists():
        raise LoopInputError(f"{what} file {str(path)!r} not found.")


# --- drift ---------------------------------------------------------------------------------
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
    from .monitor.drift import compute_drift
    from .monitor.inputs import check_head, find_textcat, predict, read_texts
    from .monitor.report import markdown, write_report

    try:
        _exists(reference, "REFERENCE")
        _exists(current, "CURRENT")
        nlp = _load(model)
        heads = check_head(find_textcat(nlp).heads, head)
        ref_texts = read_texts(reference, text_column, nlp)
        cur_texts = read_texts(current, text_column, nlp)
    except LoopInputError as err:
        raise _fail(str(err)) from None
    if limit:
        ref_texts, cur_texts = ref_texts[:limit], cur_texts[:limit]
    ref = predict(nlp, ref_texts, batch_size=batch_size, desc="reference")
    cur = predict(nlp, cur_texts, batch_size=batch_size, desc="current")
    result = compute_drift(nlp, heads, ref, cur, threshold=threshold,
                           vocab_threshold=vocab_threshold)
    table = Table(title=f"drift: {reference} -> {current}")
    for col in ("measure", "value", "threshold", "reference", "current", "drift"):
        table.add_column(col, justify="left" if col == "measure" else "right")
    for m in result.metrics:
        table.add_row(m.name, f"{m.value:.3f}", f"{m.threshold:g}",
                      "" if m.reference is None else f"{m.reference:.3g}",
                      "" if m.current is None else f"{m.current:.3g}",
                      "[red]yes[/red]" if m.drifted else "no")
    Console().print(table)
    if output is not None:
        files = write_report(result, output, str(reference), str(current))
        typer.echo(f"Report written to {files[0]}")
    elif not result.metrics:
        typer.echo(markdown(result, figure=None))
    if result.drifted:
        typer.secho("Drift detected.", fg=typer.colors.RED, err=True)
        raise typer.Exit(DRIFT_EXIT_CODE)
    typer.echo("No drift.")


# --- select --------------------------------------------------------------------------------
def select_command(
    model: str = typer.Argument(..., help="Pipeline directory or package."),
    unlabelled: Path = typer.Argument(..., help="Unlabelled texts: .jsonl (or .csv/.tsv/.txt)."),
    n: int = typer.Option(100, "--n", "-n", min=1, help="How many texts to select."),
    strategy: str = typer.Option("entropy", "--strategy", "-s",
                                 help="entropy | margin | least-confidence | diverse | random"),
    head: str | None = typer.Option(None, "--head", help="Score only this head (default: "
                                    "mean over heads)."),
    output: Path = typer.Option(..., "--output", "-o", help="Prodigy JSONL to write."),
    label_studio: Path | None = typer.Option(None, "--label-studio",
                                             help="Also write Label Studio import JSON."),
    text_column: str | None = typer.Option(None, "--text-column",
                                           help="JSONL field / CSV column of the text."),
    candidate_factor: int = typer.Option(5, "--candidates", min=1,
                                         help="diverse: k-center among the N*this most "
                                         "uncertain."),
    batch_size: int = typer.Option(64, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Pick the N most informative unlabelled texts for annotation (Prodigy / Label Studio)."""
    from .active.export import write_label_studio, write_prodigy
    from .active.select import select_texts
    from .monitor.inputs import read_texts

    try:
        _exists(unlabelled, "UNLABELLED")
        nlp = _load(model)
        texts = read_texts(unlabelled, text_column, nlp)
        chosen, heads = select_texts(nlp, texts, n, strategy, head=head, batch_size=batch_size,
                                     candidate_factor=candidate_factor, seed=seed)
    except LoopInputError as err:
        raise _fail(str(err)) from None
    write_prodigy(chosen, heads, strategy, output)
    typer.echo(f"{len(chosen)} of {len(texts)} texts ({strategy}) written to {output}")
    if label_studio is not None:
        version = f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '')}"
        write_label_studio(chosen, heads, strategy, label_studio, model_version=version)
        typer.echo(f"Label Studio tasks written to {label_studio} "
                   f"(labelling config: {label_studio.with_suffix('.config.xml')})")


# --- cv --------------------------------------------------------------------------------------
def cv_command(
    ctx: typer.Context,
    config: Path = typer.Argument(..., help="Training config (.cfg)."),
    data: Path = typer.Argument(..., help="Labelled DocBin (.spacy, or a directory of them)."),
    folds: int = typer.Option(5, "--folds", "-k", min=2, help="Number of folds."),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="Directory for cv.json, cv.md and fold models."),
    dev_fraction: float = typer.Option(0.1, "--dev-fraction", min=0.0, max=0.5,
                                       help="Part of each training fold held out for "
                                       "checkpoint selection (0: select on the test fold)."),
    seed: int = typer.Option(0, "--seed"),
    keep_models: bool = typer.Option(False, "--keep-models", help="Keep each fold's model."),
) -> None:
    """Stratified k-fold cross-validation through spaCy's training loop.

    Extra ``--section.key value`` options override the config, as with ``spacy train``.
    """
    from spacy.cli._util import parse_config_overrides

    from .training.cv import cross_validate, format_table

    overrides = parse_config_overrides(ctx.args)
    try:
        _exists(config, "CONFIG")
        _exists(data, "DATA")
        result = cross_validate(config, data, folds=folds, overrides=overrides, seed=seed,
                                dev_fraction=dev_fraction, output=output,
                                keep_models=keep_models)
    except (LoopInputError, ValueError) as err:
        raise _fail(str(err)) from None
    Console().print(format_table(result))
    if output is not None:
        typer.echo(f"Results written to {Path(output) / 'cv.md'} and cv.json")


# --- distill ---------------------------------------------------------------------------------
def distill_command(
    teacher: str = typer.Argument(..., help="Trained teacher pipeline (directory or package)."),
    student_config: Path = typer.Argument(..., help="Student config, e.g. configs/cpu_fast.cfg."),
    data: Path = typer.Argument(..., help="Training DocBin (.spacy) with gold labels."),
    dev: Path | None = typer.Option(None, "--dev", help="Dev DocBin for checkpoint selection "
                                    "and the teacher/student comparison."),
    output: Path = typer.Option(Path("training/distilled"), "--output", "-o",
                                help="Where the student pipeline is saved."),
    alpha: float = typer.Option(0.5, "--alpha", min=0.0, max=1.0,
                                help="Weight of the gold loss (1 - alpha: teacher)."),
    temperature: float = typer.Option(2.0, "--temperature", min=0.05),
    epochs: int = typer.Option(10, "--epochs", min=1),
    batch_size: int = typer.Option(32, "--batch-size", min=1),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Distil a teacher's softened probabilities (and the gold labels) into a small student."""
    from .training.distill import run_distillation

    try:
        _exists(data, "DATA")
        _exists(student_config, "STUDENT_CONFIG")
        if dev is not None:
            _exists(dev, "DEV")
        teacher_nlp = _load(teacher)
        summary = run_distillation(teacher_nlp, student_config, data, dev=dev, output=output,
                                   alpha=alpha, temperature=temperature, epochs=epochs,
                                   batch_size=batch_size, seed=seed)
    except (LoopInputError, ValueError) as err:
        raise _fail(str(err)) from None
    table = Table(title="teacher vs student")
    for col in ("model", "accuracy", "macro-F1", "docs/s"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in ("teacher", "student"):
        row = summary.get(name, {})
        table.add_row(name, _fmt(row.get("acc")), _fmt(row.get("macro_f")),
                      _fmt(row.get("docs_per_s"), 0))
    Console().print(table)
    Path(output).mkdir(parents=True, exist_ok=True)
    (Path(output) / "distill.json").write_text(json.dumps(summary, indent=2), encoding="utf8")
    typer.echo(f"Student saved to {output}")


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"
