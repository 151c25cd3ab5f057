"""``spacy-senti fit-hybrid``: fit senti_hybrid (stacker, blend or lexicon) on dev data."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ..errors import InputError
from ._util import app, fmt, table

MODES = ("stacker", "blend", "lexicon")


@app.command("fit-hybrid")
def fit_hybrid_command(
    model: str = typer.Argument(..., help="Pipeline directory (or package) with senti_textcat "
                                "(any pipeline, even spacy.blank, for --mode lexicon)."),
    dev: Path = typer.Argument(..., help="Dev DocBin (.spacy, or a directory of them) with gold "
                               "'<head>/<label>' doc.cats."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to save the pipeline with a "
                                "fitted senti_hybrid."),
    mode: str = typer.Option("stacker", "--mode", help="stacker | blend | lexicon."),
    head: str = typer.Option("sentiment", "--head", help="Exclusive senti_textcat head."),
    blend_weight: float | None = typer.Option(None, "--blend-weight", help="--mode blend: "
                                              "model weight (default: tuned on DEV)."),
    domain: str | None = typer.Option(None, "--domain", help="Domain lexicon (e.g. finance) "
                                      "for a senti_lexicon added by this command."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bar."),
) -> None:
    """Fit senti_hybrid on DEV and save the pipeline to --output.

    Adds senti_lexicon and senti_hybrid when missing, tunes the lexicon cut-offs on DEV and
    fits the stacker (or the blend weight), then prints DEV accuracy/macro-F1 of model-only,
    lexicon-only and hybrid (the hybrid's DEV score is in-sample: check it on held-out data).

    Example: spacy-senti fit-hybrid training/model-best corpus/dev.spacy -o training/hybrid
    """
    import spacy

    from ..training.hybrid import fit_hybrid, gold_labels
    from ..util import check_exists, load_pipeline, read_docs

    if mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}.")
    check_exists(dev, "DEV")
    docs = read_docs(dev, spacy.blank("xx"), "DEV")  # only text and cats are used
    gold_labels(docs, head)  # fail before the slow model load
    nlp = load_pipeline(model, what="MODEL")
    bar = None
    if progress:
        from tqdm import tqdm

        def bar(items, total=None):
            return tqdm(items, total=total, desc="scoring DEV", leave=False)
    result = fit_hybrid(nlp, docs, mode=mode, head=head, blend_weight=blend_weight,
                        lexicon_config={"domain": domain} if domain else None, progress=bar)
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    _print(result, output)


def _print(result, output: Path) -> None:
    console = Console()
    notes = {"hybrid": f"hybrid ({result.mode}, in-sample)"}
    rows = [(notes.get(source, f"{source}-only"), fmt(scores["acc"]), fmt(scores["macro_f1"]))
            for source, scores in result.scores.items()]
    console.print(table(f"DEV ({result.n_docs} docs, labels {', '.join(result.labels)})",
                        ("source", "accuracy", "macro-F1"), rows))
    if result.cutoffs is not None:
        console.print(f"lexicon cut-offs: neg <= {result.cutoffs[0]:+.2f}, "
                      f"pos >= {result.cutoffs[1]:+.2f}")
    if result.stacker is not None:
        console.print(f"stacker: logistic regression, C={result.stacker.C:g}, "
                      f"{len(result.stacker.feature_names)} features")
    if result.blend_weight is not None and result.mode == "blend":
        console.print(f"blend weight (model): {result.blend_weight:.2f}")
    console.print(f"Saved to {output}")

