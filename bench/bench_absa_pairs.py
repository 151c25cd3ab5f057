"""Aspect categories as sentence pairs (Sun et al. 2019) against the one-pass grouped head.

    python bench/bench_absa_pairs.py [--epochs 3] [--seed 0] [--baseline DIR]

Sun, Huang and Qiu (NAACL 2019) turn SemEval-2014 aspect-category sentiment into one sentence
pair per category: ``(sentence, "what do you think of the food of it ?")`` classified
none / positive / negative / neutral / conflict (their QA-M). The published 92.2 detection F1 and
85.9 polarity accuracy (BERT-base) come from it. ``senti_textcat``'s grouped head instead
reads all five categories off one encoder pass of the sentence.

This script trains the pair formulation on the same backbone (all-MiniLM-L6-v2), the same
corpus (``corpus/full/absa``, written by ``weasel run convert-absa``), mean pooling and a
linear 5-way layer as the grouped head, AdamW at 1e-4 with 6% warm-up and linear decay,
batches of 32 pairs of similar length; the epoch with the best dev score (mean of detection
micro-F1 and polarity accuracy) is kept. It scores test with the grouped head's own
definitions (``GroupedHead.score``: a category is detected when its argmax is not "absent";
polarity accuracy is the argmax over the four polarities on the gold-present categories)
and measures docs/s of both on the test sentences in the same process. The one-pass row is
the model ``bench/bench_quality.py absa`` trained (``--baseline``).

Writes bench/results/absa_pairs.md and absa_pairs.json.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from _common import header, load, now, versions

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CORPUS = REPO / "corpus" / "full" / "absa"
POLARITIES = ("absent", "positive", "negative", "neutral", "conflict")
CATEGORY_WORDS = {"anecdotes": "anecdotes and miscellaneous"}
PUBLISHED = {"detection micro-F1": 0.9218, "polarity accuracy": 0.859}


def question(group: str) -> str:
    """Sun et al.'s QA-M auxiliary sentence for one category."""
    return f"what do you think of the {CATEGORY_WORDS.get(group, group)} of it ?"


def read_split(split: str, limit: int = 0) -> tuple[list[str], np.ndarray, list[str]]:
    """Texts, gold classes (docs x groups, index into POLARITIES) and group names of the
    first ``limit`` docs (0: all)."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    docs = list(DocBin().from_disk(CORPUS / f"{split}.spacy").get_docs(nlp.vocab))
    docs = docs[:limit] if limit else docs
    groups = sorted({key.split("/")[1] for key in docs[0].cats if key.startswith("aspect/")})
    gold = np.zeros((len(docs), len(groups)), dtype="i")
    for i, doc in enumerate(docs):
        for j, group in enumerate(groups):
            scores = [doc.cats.get(f"aspect/{group}/{p}", 0.0) for p in POLARITIES]
            gold[i, j] = int(np.argmax(scores))
    return [doc.text for doc in docs], gold, groups


def aspect_scores(gold: np.ndarray, probs: np.ndarray) -> dict[str, float]:
    """Detection micro-F1 and polarity accuracy, scored by the grouped head itself
    (``GroupedHead.score``) from gold classes (docs x groups) and probabilities (docs x
    groups x polarities)."""
    from spacy_senti.heads.grouped import GroupedHead

    n, n_groups, n_pol = probs.shape
    head = GroupedHead("aspect", labels=list(POLARITIES[1:]),
                       groups=[f"g{i}" for i in range(n_groups)])
    scores = head.score(np.eye(n_pol)[gold].reshape(n, -1), probs.reshape(n, -1))
    return {"detection micro-F1": scores["detect_micro_f"], "polarity accuracy": scores["acc"]}


class PairModel:
    """Backbone + mean pooling + a linear 5-way layer over (sentence, question) pairs."""

    def __init__(self, backbone: str) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(backbone)
        self.encoder = AutoModel.from_pretrained(backbone)
        self.linear = torch.nn.Linear(self.encoder.config.hidden_size, len(POLARITIES))
        self.modules = torch.nn.ModuleList([self.encoder, self.linear])

    def logits(self, pairs: list[tuple[str, str]]):
        import torch

        batch = self.tokenizer([a for a, _ in pairs], [b for _, b in pairs], padding=True,
                               truncation=True, max_length=128, return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        return self.linear(torch.nn.functional.dropout(pooled, 0.1, self.modules.training))

    def predict(self, texts: list[str], groups: list[str], batch_docs: int = 32) -> np.ndarray:
        """Probabilities, docs x groups x polarities."""
        import torch

        self.modules.eval()
        # length-sorted batches, as senti_transformer sorts nlp.pipe's batches
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), len(groups), len(POLARITIES)), dtype="f")
        with torch.no_grad():
            for start in range(0, len(texts), batch_docs):
                chunk = order[start:start + batch_docs]
                pairs = [(texts[i], question(g)) for i in chunk for g in groups]
                probs = torch.softmax(self.logits(pairs), -1).numpy()
                out[chunk] = probs.reshape(len(chunk), len(groups), len(POLARITIES))
        return out


def length_batches(items: list[Any], lengths: list[int], size: int, rng: random.Random,
                   buffer: int = 50) -> list[list[Any]]:
    """Shuffled, then sorted by length in windows of ``size * buffer``: the training
    batcher of the configs (``spacy_senti.batch_by_length.v1``)."""
    from spacy_senti.training.batchers import batch_by_length

    order = list(range(len(items)))
    rng.shuffle(order)
    return [[items[i] for i in batch] for batch in batch_by_length(
        order, size, buffer=buffer, get_length=lengths.__getitem__, rng=rng)]


def train_pairs(backbone: str, seed: int, epochs: int, batch: int = 32,
                learn_rate: float = 1e-4, limit: int = 0) -> tuple[PairModel, dict[str, Any]]:
    import torch
    from transformers import get_linear_schedule_with_warmup

    torch.manual_seed(seed)
    rng = random.Random(seed)
    texts, gold, groups = read_split("train", limit)
    dev_texts, dev_gold, _ = read_split("dev", limit)
    model = PairModel(backbone)
    pairs = [((t, question(g)), int(gold[i, j])) for i, t in enumerate(texts)
             for j, g in enumerate(groups)]
    lengths = [len(model.tokenizer(a, b)["input_ids"]) for (a, b), _ in pairs]
    steps = epochs * -(-len(pairs) // batch)
    optimizer = torch.optim.AdamW(model.modules.parameters(), lr=learn_rate, weight_decay=0.01)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.06 * steps), steps)
    best: dict[str, Any] = {"score": -1.0}
    start, step = time.perf_counter(), 0
    for epoch in range(1, epochs + 1):
        model.modules.train()
        for chunk in length_batches(pairs, lengths, batch, rng):
            loss = torch.nn.functional.cross_entropy(
                model.logits([p for p, _ in chunk]), torch.tensor([y for _, y in chunk]))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.modules.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            optimizer.zero_grad()
            step += 1
            if step % 100 == 0:
                print(f"epoch {epoch} step {step}/{steps} loss {loss.item():.3f} "
                      f"({time.perf_counter() - start:.0f} s)", flush=True)
        dev = aspect_scores(dev_gold, model.predict(dev_texts, groups))
        score = (dev["detection micro-F1"] + dev["polarity accuracy"]) / 2
        print(f"epoch {epoch}: dev {dev}", flush=True)
        if score > best["score"]:
            state = {k: v.detach().clone() for k, v in model.modules.state_dict().items()}
            best = {"score": score, "epoch": epoch, "dev": dev, "state": state}
    model.modules.load_state_dict(best.pop("state"))
    info = {"train_minutes": round((time.perf_counter() - start) / 60, 1), "steps": steps,
            "pairs": len(pairs), "best_epoch": best["epoch"], "best_dev": best["dev"]}
    return model, info


def grouped_probs(nlp, texts: list[str], groups: list[str]) -> tuple[np.ndarray, float]:
    """The one-pass grouped head's probabilities on ``texts`` and its docs/s."""
    start = time.perf_counter()
    docs = list(nlp.pipe(texts, batch_size=32))
    seconds = time.perf_counter() - start
    probs = np.array([[[doc.cats[f"aspect/{g}/{p}"] for p in POLARITIES] for g in groups]
                      for doc in docs])
    return probs, len(texts) / seconds


def render(result: dict[str, Any]) -> str:
    rows = result["rows"]
    lines = [
        "# Aspect categories: one pass vs sentence pairs (Sun et al. 2019)",
        "",
        *header(result["command"], seeds=result["seeds"], when="at the end",
                extra=[f"Load average at the start of training: {result['load']}",
                       f"torch threads: {result['threads']}"]),
        "",
        f"SemEval-2014 restaurants, categories (`corpus/full/absa`: {result['n_train']:,} "
        f"train / {result['n_dev']} dev / {result['n_test']} test sentences, 5 categories); "
        "all-MiniLM-L6-v2. docs/s: test sentences per second of inference, both measured in "
        "this process one after the other.",
        "",
        "| formulation | encoder passes per sentence | detection micro-F1 | polarity accuracy "
        "(4-way) | test docs/s | training |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['name']} | {row['passes']} | {100 * row['detection micro-F1']:.1f} | "
            f"{100 * row['polarity accuracy']:.1f} | {row['docs_per_s']:.1f} | "
            f"{row['training']} |")
    lines.append(f"| published BERT-base pair (QA-B / NLI-B, Sun et al. 2019) | 5 | "
                 f"{100 * PUBLISHED['detection micro-F1']:.1f} | "
                 f"{100 * PUBLISHED['polarity accuracy']:.1f} | | |")
    one, pair = rows[0], rows[1]
    gain = {k: 100 * (pair[k] - one[k]) for k in PUBLISHED}
    lines += [
        "",
        f"Pairs against one pass: detection {gain['detection micro-F1']:+.1f}, polarity "
        f"{gain['polarity accuracy']:+.1f} points, "
        f"{one['docs_per_s'] / pair['docs_per_s']:.1f}x slower at inference.",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", type=Path,
                        default=REPO / "training" / "bench" / "absa" / "model-best",
                        help="the one-pass model (bench/bench_quality.py absa)")
    parser.add_argument("--backbone", default="default")
    parser.add_argument("--out", type=Path, default=RESULTS / "absa_pairs.md")
    parser.add_argument("--limit", type=int, default=0,
                        help="first N docs of each split (smoke test; 0: all)")
    parser.add_argument("--train-only", action="store_true",
                        help="train and save the pair model, score later with --reuse")
    parser.add_argument("--reuse", action="store_true",
                        help="load the pair model a --train-only run saved")
    args = parser.parse_args()
    model_dir = REPO / "training" / "bench" / f"absa-pairs-seed{args.seed}"
    if not args.train_only and not (args.baseline / "meta.json").exists():
        raise SystemExit(f"no trained one-pass model at {args.baseline}: run "
                         "`python bench/bench_quality.py absa` first, or pass --baseline DIR")
    if args.reuse and not (model_dir / "pairs.pt").exists():
        raise SystemExit(f"no saved pair model in {model_dir}: run with --train-only first")
    if not (CORPUS / "test.spacy").exists():
        subprocess.run([sys.executable, "-m", "weasel", "run", "convert-absa", str(REPO)],
                       check=True)
    import spacy
    import torch

    from spacy_senti.backbone import resolve_backbone

    load_start = load()
    if args.reuse:
        model = PairModel(resolve_backbone(args.backbone))
        model.modules.load_state_dict(torch.load(model_dir / "pairs.pt"))
        info = json.loads((model_dir / "training.json").read_text(encoding="utf8"))
        load_start = info.get("load", load_start)
    else:
        model, info = train_pairs(resolve_backbone(args.backbone), args.seed, args.epochs,
                                  limit=args.limit)
        info.update(load=load_start, epochs=args.epochs)
        model_dir.mkdir(parents=True, exist_ok=True)
        torch.save(model.modules.state_dict(), model_dir / "pairs.pt")
        (model_dir / "training.json").write_text(json.dumps(info), encoding="utf8")
        if args.train_only:
            print(f"pair model saved to {model_dir}; score it with --reuse")
            return
    texts, gold, groups = read_split("test", args.limit)
    start = time.perf_counter()
    pair_probs = model.predict(texts, groups)
    pair_rate = len(texts) / (time.perf_counter() - start)
    nlp = spacy.load(args.baseline)
    one_probs, one_rate = grouped_probs(nlp, texts, groups)
    base_steps = spacy.util.load_config(args.baseline / "config.cfg")["training"]["max_steps"]
    rows = [
        {"name": f"one pass: `senti_textcat` grouped head (`{args.baseline.relative_to(REPO)}`)"
                 if args.baseline.is_relative_to(REPO) else "one pass: grouped head",
         "passes": 1, **aspect_scores(gold, one_probs), "docs_per_s": one_rate,
         "training": f"bench_quality `absa`: {base_steps} steps of 32 sentences, best "
                     "checkpoint on dev"},
        {"name": "sentence pairs (QA-M), same backbone and pooling", "passes": len(groups),
         **aspect_scores(gold, pair_probs), "docs_per_s": pair_rate,
         "training": f"{info['epochs']} epochs of {info['pairs']:,} pairs ({info['steps']:,} "
                     f"steps of 32), best epoch {info['best_epoch']}, "
                     f"{info['train_minutes']} min"},
    ]
    _, dev_gold, _ = read_split("dev", args.limit)
    result = {"rows": rows, "pair_training": info, "seeds": str(args.seed),
              "inference_load": load(),
              "n_train": len(read_split("train", args.limit)[0]), "n_dev": len(dev_gold),
              "n_test": len(texts), "load": load_start, "date": now(),
              "threads": os.environ.get("OMP_NUM_THREADS", torch.get_num_threads()),
              "versions": versions("spacy", "transformers", "torch", "spacy-senti"),
              "command": "python bench/bench_absa_pairs.py " + " ".join(sys.argv[1:])}
    args.out.write_text(render(result), encoding="utf8")
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=2), encoding="utf8")
    print(render(result))


if __name__ == "__main__":
    main()
