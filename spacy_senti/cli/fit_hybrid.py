"""``spacy-senti fit-hybrid``: fit senti_hybrid (auto, model, stacker, blend or lexicon) on dev."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from ..errors import InputError
from ._util import app, fmt, table

MODES = ("auto", "model", "stacker", "blend", "lexicon")


@app.command("fit-hybrid")
def fit_hybrid_command(
    model: str = typer.Argument(..., help="Pipeline directory (or package) with senti_textcat "
                                "(any pipeline, even spacy.blank, for --mode lexicon)."),
    dev: Path = typer.Argument(..., help="Dev DocBin (.spacy, or a directory of them) with gold "
                               "'<head>/<label>' doc.cats."),
    output: Path = typer.Option(..., "--output", "-o", help="Where to save the pipeline with a "
                                "fitted senti_hybrid."),
    mode: str = typer.Option("auto", "--mode", help="auto (model, blend or stacker, whichever "
                             "scores best in K-fold CV on DEV) | model | stacker | blend | "
                             "lexicon."),
    head: str = typer.Option("sentiment", "--head", help="Exclusive senti_textcat head."),
    blend_weight: float | None = typer.Option(None, "--blend-weight", help="--mode blend: "
                                              "model weight (default: tuned on DEV)."),
    folds: int = typer.Option(5, "--folds", help="Folds of the cross-validation on DEV (--mode "
                              "auto; also the stacker's choice of C)."),
    tie_se: float = typer.Option(1.0, "--tie-se", help="--mode auto: keep the simpler mode "
                                 "unless the better one wins by more than this many standard "
                                 "errors of the paired fold differences (0: plain best)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the fold split."),
    balanced: bool = typer.Option(True, "--balanced/--no-balanced", help="Fit and choose as "
                                  "if every DEV label were equally frequent (each doc weighted "
                                  "1/its label's count), so DEV's label mix is not learnt."),
    intercept: bool = typer.Option(False, "--intercept/--no-intercept", help="Let the stacker "
                                   "learn a per-class bias (off: its change to the model "
                                   "depends on the features only, not on DEV's label mix)."),
    domain: str | None = typer.Option(None, "--domain", help="Domain lexicon (e.g. finance) "
                                      "for a senti_lexicon added by this command."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bar."),
) -> None:
    """Fit senti_hybrid on DEV and save the pipeline to --output.

    Adds senti_lexicon and senti_hybrid when missing and tunes the lexicon cut-offs on DEV.
    --mode auto (default) cross-validates model-only, blend and stacker on DEV (same folds,
    macro-F1) and installs the simplest one within one standard error of the best, so the
    hybrid falls back to the model when the lexicon does not help. By default everything is
    fitted class-balanced and the stacker has no intercepts, so DEV's label mix (often not the
    deployment's) is not learnt. Prints every candidate's CV score, then DEV accuracy/macro-F1
    of model-only, lexicon-only and the installed hybrid (the last in-sample).

    Example: spacy-senti fit-hybrid training/model-best corpus/dev.spacy -o training/hybrid
    """
    import spacy

    from ..training.hybrid import fit_hybrid, gold_labels
    from ..util import check_exists, load_pipeline, read_docs

    if mode not in MODES:
        raise InputError(f"--mode must be one of {', '.join(MODES)}, not {mode!r}.")
    if folds < 2:
        raise InputError(f"--folds must be at least 2, not {folds}.")
    if tie_se < 0:
        raise InputError(f"--tie-se must be >= 0, not {tie_se}.")
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
                        lexicon_config={"domain": domain} if domain else None, progress=bar,
                        folds=folds, tie_se=tie_se, seed=seed, balanced=balanced,
                        intercept=intercept)
    output.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(output)
    _print(result, output)


def _print(result, output: Path) -> None:
    console = Console()
    selection = result.selection
    if selection is not None:
        rows = []
        for name, cand in selection["candidates"].items():
            folds = " ".join(fmt(v) for v in cand["folds"])
            rows.append((name + (" (chosen)" if name == selection["chosen"] else ""),
                         fmt(cand["mean"]), fmt(cand["se_vs_best"]), folds))
        metric = {"balanced_macro_f1": "class-balanced macro-F1 (each doc weighted 1/its "
                  "label's count)"}.get(selection.get("metric", ""), "macro-F1")
        console.print(table(f"--mode auto: {selection['folds']}-fold CV on DEV",
                            ("candidate", "mean", "SE vs best", "per fold"), rows))
        console.print(f"metric: {metric}")
        console.print(f"chosen: {selection['chosen']} ({selection['rule']})")
    notes = {"hybrid": f"hybrid ({result.mode}, in-sample)"}
    rows = [(notes.get(source, f"{source}-only"), fmt(scores["acc"]), fmt(scores["macro_f1"]))
            for source, scores in result.scores.items()]
    console.print(table(f"DEV ({result.n_docs} docs, labels {', '.join(result.labels)})",
                        ("source", "accuracy", "macro-F1"), rows))
    if result.cutoffs is not None:
        console.print(f"lexicon cut-offs: neg <= {result.cutoffs[0]:+.2f}, "
                      f"pos >= {result.cutoffs[1]:+.2f}")
    if result.stacker is not None:
        stacker = result.stacker
        how = ", ".join([("balanced" if stacker.class_weight == "balanced" else "unweighted"),
                         ("with" if stacker.fit_intercept else "no") + " intercepts"])
        console.print(f"stacker: logistic regression regularised toward the model, "
                      f"C={stacker.C:g} (by CV log-loss), "
                      f"{len(stacker.feature_names)} features ({how})")
    if result.blend_weight is not None and result.mode == "blend":
        console.print(f"blend weight (model): {result.blend_weight:.2f}")
    console.print(f"Saved to {output}")
