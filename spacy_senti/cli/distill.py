"""``spacy-senti distill``: a small student trained on a teacher's softened probabilities."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from ..util import check_exists, load_pipeline
from ._util import app, fmt, print_table, table


@app.command("distill")
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
    from ..training.distill import run_distillation

    check_exists(data, "DATA file")
    check_exists(student_config, "STUDENT_CONFIG file")
    if dev is not None:
        check_exists(dev, "DEV file")
    teacher_nlp = load_pipeline(teacher, what="TEACHER")
    summary = run_distillation(teacher_nlp, student_config, data, dev=dev, output=output,
                               alpha=alpha, temperature=temperature, epochs=epochs,
                               batch_size=batch_size, seed=seed)
    rows = []
    for name in ("teacher", "student"):
        row = summary.get(name, {})
        rows.append((name, fmt(row.get("acc")), fmt(row.get("macro_f")),
                     fmt(row.get("docs_per_s"), 0)))
    print_table(table("teacher vs student", ("model", "accuracy", "macro-F1", "docs/s"), rows))
    Path(output).mkdir(parents=True, exist_ok=True)
    (Path(output) / "distill.json").write_text(json.dumps(summary, indent=2), encoding="utf8")
    typer.echo(f"Student saved to {output}")
