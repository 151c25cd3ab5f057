"""Simulated active learning on CARER emotion with configs/cpu_fast.cfg: uncertainty vs random.

Pool: a fixed random sample of CARER train rows (6 imbalanced emotions). Start with 100
random labels, then 5 rounds of +100 chosen by each strategy; after every round a fresh
cpu_fast model (narrowed for speed: width 64, depth 2, learn rate 0.005) is trained on the
labelled set and evaluated on the first 800 rows of the CARER validation split. Several seeds.
(SST-2 was tried first: cpu_fast trained from scratch stays near chance, 0.55-0.60 accuracy,
between 100 and 600 labels, so no strategy can be told apart there.)

    .venv/bin/python bench/bench_active.py --seeds 0,1,2
writes bench/results/active.md, active.json and active.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import time
from pathlib import Path

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

import numpy as np  # noqa: E402
import spacy  # noqa: E402
import torch  # noqa: E402
from _common import command_line, header  # noqa: E402
from spacy.training import Example  # noqa: E402
from thinc.api import Config  # noqa: E402

from spacy_senti.active.select import pooled_embeddings, select  # noqa: E402
from spacy_senti.monitor.inputs import predict  # noqa: E402
from spacy_senti.training.distill import fit  # noqa: E402

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "carer_emotion"
RESULTS = ROOT / "bench" / "results"
LABELS = ["anger", "fear", "joy", "love", "sadness", "surprise"]
OVERRIDES = {"width": 64, "depth": 2, "learn_rate": 0.005}


def read_sst2(split: str) -> list[tuple[str, str]]:
    """SST-2 rows (text, negative|positive); used by the drift validation too."""
    path = ROOT.parent / "shared" / "data" / "sst2" / f"{split}.tsv"
    with path.open(encoding="utf8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
    names = {"0": "negative", "1": "positive"}
    return [(text.strip(), names[label]) for text, label in rows]


def read_carer(split: str) -> list[tuple[str, str]]:
    lines = (DATA / f"{split}.txt").read_text(encoding="utf8").splitlines()
    return [tuple(line.rsplit(";", 1)) for line in lines if line.strip()]


def cats(label: str) -> dict[str, float]:
    return {f"emotion/{lab}": float(lab == label) for lab in LABELS}


def new_pipeline(seed: int) -> spacy.language.Language:
    config = Config().from_disk(ROOT / "configs" / "cpu_fast.cfg")
    config["system"]["seed"] = seed
    model = config["components"]["senti_textcat"]["model"]
    model["tok2vec"]["embed"]["width"] = OVERRIDES["width"]
    model["tok2vec"]["encode"]["width"] = OVERRIDES["width"]
    model["tok2vec"]["encode"]["depth"] = OVERRIDES["depth"]
    config["training"]["optimizer"]["learn_rate"] = OVERRIDES["learn_rate"]
    heads = config["components"]["senti_textcat"]["heads"]
    heads["emotion"] = {**heads.pop("sentiment"), "labels": LABELS}
    config["training"]["score_weights"] = {"senti_macro_f": 1.0}
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def run(strategy: str, seed: int, pool: list[tuple[str, str]], dev: list[tuple[str, str]],
        start: int, step: int, rounds: int, epochs: int) -> list[dict]:
    rng = random.Random(seed)
    labelled = rng.sample(range(len(pool)), start)
    curve = []
    for rnd in range(rounds + 1):
        nlp = new_pipeline(seed)
        train = [Example.from_dict(nlp.make_doc(pool[i][0]), {"cats": cats(pool[i][1])})
                 for i in labelled]
        dev_egs = [Example.from_dict(nlp.make_doc(t), {"cats": cats(lab)}) for t, lab in dev]
        fit(nlp, train, epochs=epochs, batch_size=16, seed=seed * 100 + rnd, progress=False)
        scores = nlp.evaluate(dev_egs)
        curve.append({"labels": len(labelled), "acc": scores["senti_acc"],
                      "macro_f": scores["senti_macro_f"]})
        print(f"{strategy:8s} seed={seed} n={len(labelled):4d} "
              f"acc={curve[-1]['acc']:.3f}", flush=True)
        if rnd == rounds:
            break
        rest = [i for i in range(len(pool)) if i not in set(labelled)]
        preds = predict(nlp, [pool[i][0] for i in rest], progress=False)
        pipe = nlp.get_pipe("senti_textcat")
        emb = pooled_embeddings(pipe, preds.docs) if strategy == "diverse" else None
        picked, _ = select(pipe.heads, preds.probs, step, strategy, embeddings=emb,
                           seed=seed * 1000 + rnd)
        labelled += [rest[i] for i in picked]
    return curve


def summarise(curves: dict[str, list[list[dict]]], metric: str) -> dict[str, list]:
    out = {}
    for strategy, runs in curves.items():
        values = np.array([[p[metric] for p in run] for run in runs])
        out[strategy] = [(int(runs[0][j]["labels"]), float(values[:, j].mean()),
                          float(values[:, j].std())) for j in range(values.shape[1])]
    return out


def plot(summary: dict[str, list], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for strategy, points in summary.items():
        x, m, s = (np.array(v) for v in zip(*points))
        ax.plot(x, m, marker="o", label=strategy)
        ax.fill_between(x, m - s, m + s, alpha=0.15)
    ax.set_xlabel("labelled examples")
    ax.set_ylabel(f"CARER validation {metric}")
    ax.set_title("Active learning, cpu_fast.cfg (mean ± std over seeds)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--strategies", default="random,entropy,diverse")
    parser.add_argument("--pool", type=int, default=2000)
    parser.add_argument("--dev", type=int, default=800)
    parser.add_argument("--start", type=int, default=100)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    strategies = args.strategies.split(",")
    top = header(command_line(), seeds=seeds,
                 packages=("spacy", "thinc", "torch", "scikit-learn", "spacy-senti"),
                 extra=["Threads: torch 1, OMP/BLAS 1 (one process)"])
    rows = read_carer("train")
    pool = random.Random(12345).sample(rows, args.pool)
    dev = read_carer("val")[: args.dev]
    started = time.perf_counter()
    curves: dict[str, list[list[dict]]] = {s: [] for s in strategies}
    for seed in seeds:
        for strategy in strategies:
            curves[strategy].append(run(strategy, seed, pool, dev, args.start, args.step,
                                        args.rounds, args.epochs))
    minutes = (time.perf_counter() - started) / 60
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "active.json").write_text(json.dumps(curves, indent=1), encoding="utf8")
    acc, mf = summarise(curves, "acc"), summarise(curves, "macro_f")
    plot(acc, RESULTS / "active.png", "accuracy")
    write_markdown(acc, mf, seeds, args, len(rows), minutes, top)
    print((RESULTS / "active.md").read_text())


def write_markdown(acc: dict, mf: dict, seeds: list[int], args, n_rows: int,
                   minutes: float, top: list[str]) -> None:
    strategies = list(acc)
    lines = [
        "# Active learning (simulated): uncertainty vs random sampling", "",
        *top, f"- Run time: {minutes:.1f} min wall",
        f"- data: CARER emotion (6 classes: joy 34%, sadness 29%, anger 13%, fear 12%, love 8%, "
        f"surprise 4%); pool = {args.pool} random train rows (of {n_rows}); evaluation on the "
        f"first {args.dev} validation rows",
        "- model: `configs/cpu_fast.cfg` (hash-embedding CNN, no transformer) narrowed for "
        f"speed ({OVERRIDES}), trained from scratch after each round: {args.epochs} epochs, "
        "batch 16",
        f"- start {args.start} random labels, +{args.step} per round, {args.rounds} rounds; "
        f"seeds {seeds} (mean ± std)",
        "- `diverse` = k-center greedy on pooled encoder vectors among the 5n most uncertain "
        "(entropy); `random` = uniform from the pool", "",
        "## Dev accuracy", "",
        "| labels | " + " | ".join(strategies) + " |",
        "|---:|" + "---:|" * len(strategies),
    ]
    for j, point in enumerate(acc[strategies[0]]):
        lines.append(f"| {point[0]} | " + " | ".join(
            f"{acc[s][j][1]:.3f} ± {acc[s][j][2]:.3f}" for s in strategies) + " |")
    lines += ["", "## Dev macro-F1", "", "| labels | " + " | ".join(strategies) + " |",
              "|---:|" + "---:|" * len(strategies)]
    for j, point in enumerate(mf[strategies[0]]):
        lines.append(f"| {point[0]} | " + " | ".join(
            f"{mf[s][j][1]:.3f} ± {mf[s][j][2]:.3f}" for s in strategies) + " |")
    lines += ["", "![learning curves](active.png)", ""]
    (RESULTS / "active.md").write_text("\n".join(lines), encoding="utf8")


if __name__ == "__main__":
    main()
