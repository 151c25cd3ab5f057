"""``spacy-senti evaluate``: metrics, figures, errors and report.md of a pipeline on gold data."""

from __future__ import annotations

from pathlib import Path

import typer

from ._util import app, fmt, print_table, table, warn


@app.command("evaluate")
def evaluate_command(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name."),
    data: Path = typer.Argument(..., help="DocBin (.spacy, or a directory of them) with gold "
                                "doc.cats (and/or gold aspect terms in doc.spans)."),
    output: Path = typer.Option(..., "--output", "-o", help="Directory for the report."),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1, help="nlp.pipe batch size."),
    n_errors: int = typer.Option(50, "--n-errors", min=0,
                                 help="Most confident errors to list per head."),
    n_bins: int = typer.Option(10, "--n-bins", min=1, max=100,
                               help="Bins of the reliability diagrams / ECE."),
    component: str | None = typer.Option(None, "--component", help="Component to evaluate "
                                         "(default: the first senti_textcat)."),
    n_explained: int = typer.Option(10, "--n-explained", min=0, help="Most confident errors "
                                    "per head explained in explanations.html (token "
                                    "attributions; transformer pipelines only; 0: none)."),
) -> None:
    """Evaluate a pipeline on gold data: metrics, figures, errors and report.md in OUTPUT.

    A pipeline with senti_aspects evaluated on data with gold terms also gets the report's
    "Aspect terms" section (its confusion PNG and aspect_terms_sample.html)."""
    from ..errors import InputError
    from ..evaluation.report import check_gold, predict_examples, write_report
    from ..util import check_exists, find_aspects, find_textcat, load_pipeline, read_docs

    check_exists(data, "DATA")
    nlp = load_pipeline(model, gpu_id, what="MODEL")
    aspects = find_aspects(nlp)
    try:
        heads = find_textcat(nlp, component).heads
    except InputError:
        if aspects is None or component is not None:
            raise
        heads = []  # aspect terms only
    docs = read_docs(data, nlp)
    check_gold(docs, heads, f"DATA {str(data)!r}",
               spans_key=aspects.spans_key if aspects is not None else None)
    examples = predict_examples(nlp, docs, batch_size=batch_size, progress=True)
    report = write_report(examples, heads, output, model_meta=nlp.meta, model_source=model,
                          data_path=str(data), n_errors=n_errors, n_bins=n_bins,
                          explain_nlp=nlp, n_explained=n_explained, aspects=aspects)
    name = report.metrics["model"]["name"]
    rows = [
        (rep.head.name, rep.head.kind, str(rep.n), fmt(rep.score("acc")),
         fmt(rep.score("macro_f")), fmt(rep.score("micro_f")), fmt(rep.ece))
        for rep in report.heads
    ]
    if rows:
        print_table(table(f"{name} on {data} ({len(docs)} docs)",
                          ("head", "kind", "n", "accuracy", "macro-F1", "micro-F1", "ECE"),
                          rows, left=2))
    terms = report.aspect_terms
    if terms is not None:
        print_table(table(
            f"{name}: aspect terms ({terms.n} docs)",
            ("n gold", "n pred", "term P", "term R", "term F1", "polarity acc",
             "polarity macro-F1", "pair F1"),
            [(str(terms.score("terms_n_gold")), str(terms.score("terms_n_pred")),
              fmt(terms.score("terms_p")), fmt(terms.score("terms_r")),
              fmt(terms.score("terms_f")), fmt(terms.score("polarity_acc")),
              fmt(terms.score("polarity_macro_f")), fmt(terms.score("pairs_f")))], left=0))
    elif aspects is not None:
        warn(f"{aspects.name}: no document of DATA has gold terms in "
             f"doc.spans[{aspects.spans_key!r}]; aspect terms not evaluated.")
    for key in report.metrics["unknown_gold_keys"][:20]:
        warn(f"gold key {key!r} is not predicted by the model (not scored).")
    for rep in report.heads:
        if rep.n_unscored:
            warn(f"{rep.n_unscored} docs annotate head '{rep.head.name}' only with labels the "
                 "model lacks: left out of its metrics.")
    typer.echo(f"Report written to {output / 'report.md'} ({len(report.files)} files).")
