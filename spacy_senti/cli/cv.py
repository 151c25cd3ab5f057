"""``spacy-senti cv``: stratified k-fold cross-validation through spaCy's training loop."""

from __future__ import annotations

from pathlib import Path

import typer

from ..util import check_exists
from ._util import app, print_table


@app.command("cv", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
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

    from ..training.cv import cross_validate, format_table

    overrides = parse_config_overrides(ctx.args)
    check_exists(config, "CONFIG file")
    check_exists(data, "DATA file")
    result = cross_validate(config, data, folds=folds, overrides=overrides, seed=seed,
                            dev_fraction=dev_fraction, output=output, keep_models=keep_models)
    print_table(format_table(result))
    if output is not None:
        typer.echo(f"Results written to {Path(output) / 'cv.md'} and cv.json")
