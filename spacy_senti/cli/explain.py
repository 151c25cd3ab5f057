"""``spacy-senti explain``: every head's probabilities and the token attributions of one text."""

from __future__ import annotations

import typer
from rich.console import Console

from ._util import app, fmt, table


@app.command("explain")
def explain_command(
    pipeline: str = typer.Argument(..., help="Pipeline directory or installed package with a "
                                   "transformer and senti_textcat."),
    text: str = typer.Argument(..., help="The text to explain."),
    head: str | None = typer.Option(None, "--head", help="Head to explain (default: the "
                                    "first head of senti_textcat)."),
    label: str | None = typer.Option(None, "--label", help="Label to explain, e.g. positive "
                                     "or food/negative (default: the predicted one)."),
    method: str | None = typer.Option(None, "--method", help="ig (integrated gradients, the "
                                      "default), grad (gradient x input) or attention."),
    steps: int = typer.Option(50, "--steps", min=1, help="Integrated-gradients steps."),
    component: str | None = typer.Option(None, "--component", help="senti_textcat component "
                                         "(default: the first)."),
) -> None:
    """Print each head's probabilities for TEXT and its tokens tinted by attribution.

    Green tokens raise the probability of the explained label, red ones lower it; the number
    after each token is its score (for ig they sum to p(text) - p(baseline)). Lexicon
    valences are listed too when the pipeline has senti_lexicon.

    Example: spacy-senti explain training/multitask/model-tuned "great food, awful service"
    --head aspect --label service/negative --method ig
    """
    from ..errors import InputError
    from ..explain import DEFAULT_METHOD, METHOD_NAMES, explain_docs, rich_text
    from ..explain.attribute import check_method
    from ..util import find_textcat, load_pipeline

    method = check_method(method or DEFAULT_METHOD)
    if not text.strip():
        raise InputError("TEXT is empty: pass the text to explain, e.g. \"a great film\".")
    nlp = load_pipeline(pipeline)
    textcat = find_textcat(nlp, component)
    doc = nlp(text)
    explain_docs(nlp, [doc], head=head, label=label, method=method, component=component,
                 n_steps=steps)
    console = Console()
    rows = []
    for h in textcat.heads:
        for key in h.keys():
            rows.append((h.name, key.split("/", 1)[1], fmt(doc.cats.get(key))))
    console.print(table("Probabilities", ("head", "label", "p"), rows, left=2))
    key, entry = next(reversed(doc._.attributions.items()))
    extra = (f", baseline p {entry['baseline_prob']:.3f}" if "baseline_prob" in entry else "")
    console.print(f"[bold]{key}[/bold] p {entry['target_prob']:.3f} · "
                  f"{METHOD_NAMES[entry['method']]}{extra}")
    console.print(rich_text(doc, key))
    valences = [(t.text, t._.valence) for t in doc
                if t.has_extension("valence") and t._.valence]
    if valences:
        console.print("lexicon valences: " + ", ".join(f"{w} {v:+.2f}" for w, v in valences))
