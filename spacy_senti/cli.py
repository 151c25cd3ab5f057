"""The ``spacy-senti`` command line (Typer)."""

from __future__ import annotations

import typer

from .backbone import backbone_app

app = typer.Typer(
    name="spacy-senti",
    help="Sentiment, emotion and aspect analysis for spaCy: data, evaluation and serving tools.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(backbone_app, name="backbone")


def main() -> None:  # pragma: no cover - console entry
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
