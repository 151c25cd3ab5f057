"""Faithfulness and cost of ``spacy_senti.explain`` (ERASER-style, DeYoung et al. 2020).

On SST-2 dev sentences, with a pipeline whose ``sentiment`` head was trained on SST-2, each
method ranks the spaCy tokens of a sentence by their attribution to the predicted label:

* comprehensiveness = p(label | sentence) - p(label | sentence without the top 20% tokens)
  (higher: the tokens the method points at are the ones the model needs);
* sufficiency = p(label | sentence) - p(label | only the top 20% tokens) (lower is better);

compared with deleting as many random tokens (mean of ``--random-draws`` draws) and the tokens
with the strongest lexicon valence towards the label (``senti_lexicon``'s ``token._.valence``,
ties in random order). Methods: gradient x input, integrated gradients (Captum, default
steps), last-layer attention. Cost: one short sentence on CPU, explanation time / plain
prediction time (``nlp(text)``), medians of repeated runs.

Targets: comprehensiveness >= 2x random and > lexicon; grad x input <= 3x a prediction,
integrated gradients <= 30x. Also measured at 20%: integrated gradients with fewer steps
(``STEP_SWEEP``) and, as a diagnostic, gradient x input ranked with its sign reversed.
Writes bench/results/explain.md, explain.json, explain.png.

    .venv/bin/python bench/bench_explain.py [--pipeline training/multitask/model-tuned]
        [--n 500] [--threads 1]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import statistics
import time
from pathlib import Path

import numpy as np
from _common import REPO, command_line, header, load, shown_path

DATA = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
PIPELINES = [REPO / "training" / "multitask" / "model-tuned",
             REPO / "training" / "multitask" / "model-best"]
OUT = Path(__file__).parent / "results" / "explain.md"
LABELS = {"0": "negative", "1": "positive"}
HEAD = "sentiment"
FRACTIONS = (0.1, 0.2, 0.5)
MAIN_FRACTION = 0.2
METHODS = ("grad", "ig", "attention")
BASELINES = ("random", "lexicon")
STEP_SWEEP = (4, 8, 16)  # integrated-gradients steps measured besides the default
SHORT = "it 's a charming and often affecting journey . "  # SST-2 dev, first row


def read_sst2(path: Path, n: int) -> tuple[list[str], list[str]]:
    """The first ``n`` (sentence, label) rows (csv with QUOTE_NONE, see SOURCE.md)."""
    texts, labels = [], []
    with path.open(encoding="utf8", newline="") as file:
        reader = csv.reader(file, delimiter="\t", quoting=csv.QUOTE_NONE)
        next(reader)
        for sentence, label in reader:
            texts.append(sentence.strip())
            labels.append(LABELS[label])
            if len(texts) == n:
                break
    return texts, labels


def n_top(n_tokens: int, fraction: float) -> int:
    return max(1, math.ceil(fraction * n_tokens))


def candidates(doc) -> list[int]:
    return [t.i for t in doc if not t.is_space]


def ranking(doc, values: list[float], rng: random.Random) -> list[int]:
    """Candidate token indices, highest value first; ties in a random order."""
    order = candidates(doc)
    rng.shuffle(order)
    return sorted(order, key=lambda i: -values[i])  # stable: ties keep the shuffled order


def edit(doc, chosen: set[int], keep_only: bool) -> str:
    """The text without ``chosen`` tokens (or with only them), spaCy whitespace kept."""
    parts = [t.text_with_ws for t in doc if (t.i in chosen) == keep_only and not t.is_space]
    return "".join(parts).strip()


def probs_of(nlp, texts: list[str], keys: list[str]) -> np.ndarray:
    """p(key) for each (text, key); an empty text counts as probability 0."""
    out = np.zeros(len(texts))
    todo = [i for i, t in enumerate(texts) if t]
    with nlp.select_pipes(enable=["transformer", "senti_textcat"]):
        for i, doc in zip(todo, nlp.pipe([texts[i] for i in todo], batch_size=64)):
            out[i] = doc.cats[keys[i]]
    return out


def bootstrap_ci(values: np.ndarray, seed: int, n: int = 1000) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    means = [values[rng.integers(0, len(values), len(values))].mean() for _ in range(n)]
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def median_time(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pipeline", type=Path, default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--random-draws", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    import spacy
    import torch

    import spacy_senti.components.lexicon  # noqa: F401
    from spacy_senti.explain import (
        DEFAULT_METHOD,
        IG_STEPS,
        METHOD_NAMES,
        Explainer,
        explain_docs,
    )

    torch.set_num_threads(args.threads)
    pipeline = args.pipeline or next((p for p in PIPELINES if p.exists()), None)
    if pipeline is None:
        raise SystemExit("No SST-2 pipeline: run `make demo` or pass --pipeline.")
    load_start = load()
    command = command_line()
    nlp = spacy.load(pipeline)
    nlp.add_pipe("senti_lexicon")  # token._.valence for the lexicon baseline
    texts, gold = read_sst2(args.data, args.n)
    wall = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=64))
    predicted = [max(("negative", "positive"), key=lambda lab: d.cats[f"{HEAD}/{lab}"])
                 for d in docs]
    keys = [f"{HEAD}/{lab}" for lab in predicted]
    accuracy = float(np.mean([p == g for p, g in zip(predicted, gold)]))
    p_full = np.asarray([d.cats[k] for d, k in zip(docs, keys)])

    # --- attributions ---------------------------------------------------------------------
    scores: dict[str, list[list[float]]] = {}
    seconds: dict[str, float] = {}
    ig_delta: list[float] = []
    for method in METHODS:
        start = time.perf_counter()
        explain_docs(nlp, docs, head=HEAD, method=method)  # default label: the predicted one
        seconds[method] = time.perf_counter() - start
        entries = [d._.attributions[k] for d, k in zip(docs, keys)]  # replaced next method
        scores[method] = [e["scores"] for e in entries]
        if method == "ig":
            ig_delta = [abs(sum(e["scores"]) - (e["target_prob"] - e["baseline_prob"]))
                        for e in entries]
        print(f"{method}: {seconds[method]:.1f} s for {len(docs)} sentences", flush=True)
    sweep: dict[int, dict[str, float]] = {}
    for steps in STEP_SWEEP:
        start = time.perf_counter()
        explain_docs(nlp, docs, head=HEAD, method="ig", n_steps=steps)
        entries = [d._.attributions[k] for d, k in zip(docs, keys)]
        scores[f"ig{steps}"] = [e["scores"] for e in entries]
        sweep[steps] = {"seconds": time.perf_counter() - start, "completeness_abs_error_mean":
                        float(np.mean([abs(sum(e["scores"]) - (e["target_prob"]
                                                               - e["baseline_prob"]))
                                       for e in entries]))}
        print(f"ig, {steps} steps: {sweep[steps]['seconds']:.1f} s", flush=True)
    scores["grad_reversed"] = [[-x for x in row] for row in scores["grad"]]
    sign = [1.0 if lab == "positive" else -1.0 for lab in predicted]
    scores["lexicon"] = [[s * (t._.valence or 0.0) for t in d] for d, s in zip(docs, sign)]

    # --- deletions --------------------------------------------------------------------------
    results: dict[str, dict[str, dict[str, float]]] = {}
    per_doc: dict[tuple[str, float], tuple[np.ndarray, np.ndarray]] = {}
    rankers = [*METHODS, "lexicon", *[f"random{i}" for i in range(args.random_draws)]]
    for fraction in FRACTIONS:
        extra = ["grad_reversed", *[f"ig{n}" for n in STEP_SWEEP]]
        for name in rankers + (extra if fraction == MAIN_FRACTION else []):
            rng = random.Random(f"{args.seed}-{name}-{fraction}")
            comp_texts, suff_texts = [], []
            for i, doc in enumerate(docs):
                k = n_top(len(candidates(doc)), fraction)
                values = [0.0] * len(doc) if name.startswith("random") else scores[name][i]
                top = set(ranking(doc, values, rng)[:k])
                comp_texts.append(edit(doc, top, keep_only=False))
                suff_texts.append(edit(doc, top, keep_only=True))
            comp = p_full - probs_of(nlp, comp_texts, keys)
            suff = p_full - probs_of(nlp, suff_texts, keys)
            per_doc[(name, fraction)] = (comp, suff)
        draws = [per_doc[(f"random{i}", fraction)] for i in range(args.random_draws)]
        per_doc[("random", fraction)] = (np.mean([c for c, _ in draws], axis=0),
                                         np.mean([s for _, s in draws], axis=0))
        for name in (*METHODS, *BASELINES):
            comp, suff = per_doc[(name, fraction)]
            entry = results.setdefault(name, {})
            entry[str(fraction)] = {
                "comprehensiveness": float(comp.mean()),
                "comprehensiveness_ci95": bootstrap_ci(comp, args.seed),
                "sufficiency": float(suff.mean()),
                "sufficiency_ci95": bootstrap_ci(suff, args.seed),
            }
        if fraction == MAIN_FRACTION:
            for name in extra:
                comp, suff = per_doc[(name, fraction)]
                results[name] = {str(fraction): {
                    "comprehensiveness": float(comp.mean()),
                    "comprehensiveness_ci95": bootstrap_ci(comp, args.seed),
                    "sufficiency": float(suff.mean()),
                    "sufficiency_ci95": bootstrap_ci(suff, args.seed)}}
        print(f"deletions at {fraction:.0%} done", flush=True)
    wall = time.perf_counter() - wall

    # --- cost -------------------------------------------------------------------------------
    nlp.remove_pipe("senti_lexicon")
    short = nlp(SHORT)
    predict_s = median_time(lambda: nlp(SHORT), args.repeat)
    explainer = Explainer(nlp)
    cost = {"predict_s": predict_s}
    for method in METHODS:
        repeat = max(3, args.repeat // (4 if method == "ig" else 1))
        cost[f"{method}_s"] = median_time(
            lambda m=method: explain_docs(nlp, [short], head=HEAD, method=m), repeat)
        cost[f"{method}_reused_s"] = median_time(
            lambda m=method: explainer.explain(short, head=HEAD, method=m), repeat)
    for steps in STEP_SWEEP:
        cost[f"ig{steps}_s"] = median_time(
            lambda n=steps: explain_docs(nlp, [short], head=HEAD, method="ig", n_steps=n),
            max(3, args.repeat // 2))
    n_wordpieces = int(short._.trf_data.wordpieces.lengths[0])

    report = {
        "pipeline": shown_path(pipeline), "meta": {k: nlp.meta.get(k) for k in
                                                   ("lang", "name", "version")},
        "data": shown_path(args.data), "n": len(docs), "accuracy": accuracy,
        "ig_steps": IG_STEPS, "threads": args.threads, "seed": args.seed,
        "random_draws": args.random_draws, "fractions": FRACTIONS,
        "step_sweep": sweep, "default_method": DEFAULT_METHOD,
        "attribution_seconds": seconds, "ig_completeness_abs_error_mean":
            float(np.mean(ig_delta)) if ig_delta else None,
        "results": results, "cost": cost, "cost_sentence": SHORT.strip(),
        "cost_sentence_wordpieces": n_wordpieces, "wall_s": wall,
        "load_start": load_start, "load_end": load(),
    }
    main_f = str(MAIN_FRACTION)
    comp = {m: results[m][main_f]["comprehensiveness"] for m in (*METHODS, *BASELINES)}
    winner = max(("grad", "ig"), key=lambda m: comp[m])
    report["winner"] = winner
    verdicts = []
    for m in METHODS:
        ratio = comp[m] / comp["random"] if comp["random"] > 0 else float("inf")
        verdicts.append((f"{METHOD_NAMES[m]}: comprehensiveness >= 2x random",
                         f"{comp[m]:.3f} vs {comp['random']:.3f} ({ratio:.1f}x)", ratio >= 2.0))
        verdicts.append((f"{METHOD_NAMES[m]}: comprehensiveness > lexicon",
                         f"{comp[m]:.3f} vs {comp['lexicon']:.3f}", comp[m] > comp["lexicon"]))
    grad_ratio = cost["grad_s"] / predict_s
    ig_ratio = cost["ig_s"] / predict_s
    verdicts.append(("cost: gradient x input <= 3x a prediction", f"{grad_ratio:.1f}x",
                     grad_ratio <= 3.0))
    verdicts.append(("cost: integrated gradients <= 30x a prediction", f"{ig_ratio:.1f}x",
                     ig_ratio <= 30.0))
    report["verdicts"] = [{"target": t, "value": v, "met": bool(ok)} for t, v, ok in verdicts]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    png = args.out.with_suffix(".png")
    draw(results, png)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n",
                                             encoding="utf8")
    args.out.write_text(markdown(report, command, png, METHOD_NAMES), encoding="utf8")
    for target, value, ok in verdicts:
        print(f"{'met    ' if ok else 'NOT MET'}  {target}: {value}")
    print(f"winner (comprehensiveness at {MAIN_FRACTION:.0%}): {winner}; wrote {args.out}")
    if winner != DEFAULT_METHOD:
        print(f"spacy_senti.explain.DEFAULT_METHOD is {DEFAULT_METHOD!r}: set it to {winner!r}")


def draw(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [*METHODS, *BASELINES]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in ((axes[0], "comprehensiveness", "comprehensiveness (higher)"),
                              (axes[1], "sufficiency", "sufficiency (lower)")):
        for name in names:
            ys = [results[name][str(f)][metric] for f in FRACTIONS]
            ax.plot([100 * f for f in FRACTIONS], ys, marker="o", label=name)
        ax.set_xlabel("% of tokens deleted (comp.) / kept (suff.)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(report: dict, command: str, png: Path, names: dict[str, str]) -> str:
    fraction = str(MAIN_FRACTION)
    res, cost = report["results"], report["cost"]
    label = {**names, "random": f"random tokens (mean of {report['random_draws']} draws)",
             "lexicon": "strongest lexicon valence (senti_lexicon)"}
    lines = [
        "# Explanations: faithfulness (ERASER) and cost", "",
        *header(command, seeds=[report["seed"]],
                packages=("spacy", "spacy-transformers", "transformers", "torch", "captum",
                          "spacy-senti"),
                extra=[f"Load average at the end: {report['load_end']}",
                       f"torch threads: {report['threads']}"]),
        "",
        f"Pipeline `{report['pipeline']}` ({report['meta']['lang']}_{report['meta']['name']} "
        f"{report['meta']['version']}), head `{HEAD}`: accuracy {report['accuracy']:.3f} on "
        f"the first {report['n']} sentences of `{report['data']}`. Each method explains the "
        "predicted label; a token set is deleted from (comprehensiveness) or kept in "
        "(sufficiency) the text and the pipeline predicts again. Mean over sentences, 95% "
        "bootstrap interval in brackets.", "",
        f"## Deleting / keeping the top {float(fraction):.0%} tokens", "",
        "| ranking | comprehensiveness ↑ | sufficiency ↓ |", "|---|---:|---:|",
    ]
    for name in (*METHODS, *BASELINES):
        r = res[name][fraction]
        ci_c, ci_s = r["comprehensiveness_ci95"], r["sufficiency_ci95"]
        lines.append(f"| {label[name]} | {r['comprehensiveness']:.3f} "
                     f"[{ci_c[0]:.3f}, {ci_c[1]:.3f}] | {r['sufficiency']:.3f} "
                     f"[{ci_s[0]:.3f}, {ci_s[1]:.3f}] |")
    reversed_ = res["grad_reversed"][fraction]
    lines += ["", f"Diagnostic: gradient × input ranked with its sign reversed (the tokens it "
              f"calls most *against* the label deleted first): comprehensiveness "
              f"{reversed_['comprehensiveness']:.3f}, sufficiency "
              f"{reversed_['sufficiency']:.3f}.", "",
              f"Integrated gradients with fewer steps (top {float(fraction):.0%}; completeness "
              "error = mean |sum of token scores - (p - p_baseline)|; time for all "
              f"{report['n']} sentences):", "",
              "| steps | comprehensiveness ↑ | sufficiency ↓ | completeness error | seconds |",
              "|---:|---:|---:|---:|---:|"]
    sweep = report["step_sweep"]
    for steps in (*STEP_SWEEP, report["ig_steps"]):
        r = res[f"ig{steps}" if steps in sweep else "ig"][fraction]
        err = (sweep[steps]["completeness_abs_error_mean"] if steps in sweep
               else report["ig_completeness_abs_error_mean"])
        secs_ = (sweep[steps]["seconds"] if steps in sweep
                 else report["attribution_seconds"]["ig"])
        lines.append(f"| {steps} | {r['comprehensiveness']:.3f} | {r['sufficiency']:.3f} | "
                     f"{err:.4f} | {secs_:.0f} |")
    lines += ["", "Other fractions (comprehensiveness / sufficiency):", "",
              "| ranking | " + " | ".join(f"{f:.0%}" for f in FRACTIONS) + " |",
              "|---|" + "---:|" * len(FRACTIONS)]
    for name in (*METHODS, *BASELINES):
        cells = [f"{res[name][str(f)]['comprehensiveness']:.3f} / "
                 f"{res[name][str(f)]['sufficiency']:.3f}" for f in FRACTIONS]
        lines.append(f"| {label[name]} | " + " | ".join(cells) + " |")
    lines += ["", f"![comprehensiveness and sufficiency]({png.name})", "",
              "## Cost on CPU", "",
              f"One short sentence (\"{report['cost_sentence']}\", "
              f"{report['cost_sentence_wordpieces']} wordpieces), medians; `explain_docs` "
              "builds its explainer on each call, `Explainer.explain` reuses one.", "",
              "| what | seconds | × prediction |", "|---|---:|---:|",
              f"| prediction, `nlp(text)` | {cost['predict_s']:.4f} | 1.0 |"]
    for m in METHODS:
        lines.append(f"| {names[m]}, `explain_docs` | {cost[f'{m}_s']:.4f} | "
                     f"{cost[f'{m}_s'] / cost['predict_s']:.1f} |")
        lines.append(f"| {names[m]}, reused `Explainer` | {cost[f'{m}_reused_s']:.4f} | "
                     f"{cost[f'{m}_reused_s'] / cost['predict_s']:.1f} |")
    for steps in STEP_SWEEP:
        took = cost[f"ig{steps}_s"]
        lines.append(f"| integrated gradients, {steps} steps, `explain_docs` | {took:.4f} | "
                     f"{took / cost['predict_s']:.1f} |")
    secs = report["attribution_seconds"]
    lines += ["", f"All {report['n']} sentences: " + ", ".join(
        f"{names[m]} {secs[m]:.0f} s" for m in METHODS) + f" (integrated gradients: "
        f"{report['ig_steps']} steps; mean |sum of scores - (p - p_baseline)| = "
        f"{report['ig_completeness_abs_error_mean']:.4f}). Whole run {report['wall_s']:.0f} s.",
        "", "## Targets", "", "| target | measured | met |", "|---|---|---|"]
    lines += [f"| {v['target']} | {v['value']} | {'met' if v['met'] else 'not met'} |"
              for v in report["verdicts"]]
    lines += ["", f"Most faithful gradient method (comprehensiveness at "
              f"{float(fraction):.0%}): **{names[report['winner']]}**; "
              f"`spacy_senti.explain.DEFAULT_METHOD` = `{report['default_method']}`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
