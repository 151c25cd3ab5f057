"""``spacy-senti select``: the most informative unlabelled texts, for Prodigy / Label Studio."""

from __future__ import annotations

from pathlib import Path

import typer

from ..util import check_exists, load_pipeline
from ._util import app


@app.command("select")
def select_command(
    model: str = typer.Argument(..., help="Pipeline directory or package."),
    unlabelled: Path = typer.Argument(..., help="Unlabelled texts: .jsonl (or .csv/.tsv/.txt)."),
    n: int = typer.Option(100, "--n", "-n", min=1, help="How many texts to select."),
    strategy: str = typer.Option("entropy", "--strategy", "-s",
                                 help="entropy | margin | least-confidence | diverse | random"),
    head: str | None = typer.Option(None, "--head", help="Score only this head, or "
                                    "aspect_terms (senti_aspects' terms) (default: mean over "
                                    "heads and terms)."),
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
    from ..active.export import write_label_studio, write_prodigy
    from ..active.select import select_texts
    from ..monitor.inputs import read_texts
    from ..util import find_aspects

    check_exists(unlabelled, "UNLABELLED file")
    nlp = load_pipeline(model, what="MODEL")
    texts = read_texts(unlabelled, text_column, nlp)
    chosen, heads = select_texts(nlp, texts, n, strategy, head=head, batch_size=batch_size,
                                 candidate_factor=candidate_factor, seed=seed)
    write_prodigy(chosen, heads, strategy, output)
    typer.echo(f"{len(chosen)} of {len(texts)} texts ({strategy}) written to {output}")
    if label_studio is not None:
        version = f"{nlp.meta.get('name', 'pipeline')}-{nlp.meta.get('version', '')}"
        aspects = find_aspects(nlp)
        with_terms = aspects is not None and any(sel.terms is not None for sel in chosen)
        write_label_studio(chosen, heads, strategy, label_studio, model_version=version,
                           term_labels=list(aspects.labels) if with_terms else None)
        typer.echo(f"Label Studio tasks written to {label_studio} "
                   f"(labelling config: {label_studio.with_suffix('.config.xml')})")
