"""ONNX Runtime export: speed, fp32 parity and int8 accuracy against spaCy and raw PyTorch.

Writes ``bench/results/onnx.md``:

* docs/s on the same 2,000 real sentences (SST-2 dev 872 + TweetEval sentiment val), one run:
  raw HF ``AutoModel`` + masked mean pooling (torch.inference_mode, batch 64, length-sorted
  like the runner), spaCy ``nlp.pipe(batch_size=64)``, ONNX fp32, ONNX int8; ratios to raw HF;
* fp32 parity: max |p_onnx - p_spacy| on 500 SST-2 dev sentences;
* accuracy of spaCy / fp32 / int8 on SST-2 dev (872).

The pipeline: ``--pipeline``, else the newest ``training/*/model-best`` with senti_textcat,
else a MiniLM sentiment pipeline trained here (2,000 SST-2 train rows of assets/, 1 epoch of
configs/sentiment.cfg, ~3 min on 2 cores) into ``training/bench_onnx/model-last``.

    .venv/bin/python bench/bench_onnx.py [--pipeline DIR] [--threads 2] [--out FILE]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _common import header, shown_path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
WORK = REPO / "training" / "bench_onnx"
BATCH = 64


def read_sst2(path: Path) -> tuple[list[str], list[str]]:
    rows = [line.split("\t") for line in path.read_text(encoding="utf8").splitlines()[1:]]
    return [r[0].strip() for r in rows], ["positive" if r[1].strip() == "1" else "negative"
                                           for r in rows]


def sentences() -> tuple[list[str], list[str], list[str]]:
    """(2,000 benchmark texts, SST-2 dev texts, SST-2 dev labels)."""
    dev, labels = read_sst2(DATA / "sst2" / "dev.tsv")
    tweets = (DATA / "tweeteval" / "sentiment" / "val_text.txt").read_text(encoding="utf8")
    tweets = [t.strip() for t in tweets.splitlines() if t.strip()]
    return (dev + tweets)[:2000], dev, labels


def find_pipeline(explicit: str | None) -> tuple[Path, str]:
    if explicit:
        return Path(explicit), "given with --pipeline"
    found = sorted((REPO / "training").glob("*/model-best"), key=lambda p: p.stat().st_mtime)
    found = [p for p in found if p.parent != WORK and is_binary_sentiment(p)]
    if found:
        return found[-1], "the lead's trained pipeline"
    target = WORK / "model-last"
    if not target.exists():
        train_pipeline()
    return target, ("trained by this script: MiniLM-L6, 2,000 SST-2 train rows "
                    "(assets/sst2/train.tsv), 1 epoch, lr 1e-4, warmup 6 steps")


def is_binary_sentiment(path: Path) -> bool:
    """A pipeline whose senti_textcat has exactly one head: sentiment negative/positive."""
    cfg = path / "senti_textcat" / "cfg"
    if not cfg.exists():
        return False
    import srsly

    heads = srsly.read_json(cfg).get("heads", {})
    return list(heads) == ["sentiment"] and sorted(heads["sentiment"].get("labels", [])) == [
        "negative", "positive"]


def train_pipeline() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    exe = Path(sys.executable).parent
    for split in ("train", "dev"):
        subprocess.run([str(exe / "spacy-senti"), "convert", str(REPO / f"assets/sst2/{split}.tsv"),
                        str(WORK / f"{split}.spacy"), "-f", "tsv", "--label-map",
                        "0=negative,1=positive"], check=True)
    subprocess.run([sys.executable, "-m", "spacy", "train", str(REPO / "configs/sentiment.cfg"),
                    "--output", str(WORK), "--paths.train", str(WORK / "train.spacy"),
                    "--paths.dev", str(WORK / "dev.spacy"), "--training.max_epochs", "1",
                    "--training.eval_frequency", "1000",
                    "--training.optimizer.learn_rate.warmup_steps", "6",
                    "--training.optimizer.learn_rate.total_steps", "63",
                    "--training.optimizer.learn_rate.initial_rate", "0.0001"], check=True)


def interleaved_speed(backends: dict, texts: list[str], n_chunks: int = 8) -> dict[str, float]:
    """docs/s of each backend; chunks of 250 texts go through every backend in turn, so
    load changes on a shared machine hit all backends alike."""
    for fn in backends.values():
        fn(texts[:BATCH])  # warm-up
    seconds = dict.fromkeys(backends, 0.0)
    size = -(-len(texts) // n_chunks)
    for start in range(0, len(texts), size):
        chunk = texts[start:start + size]
        for name, fn in backends.items():
            begin = time.perf_counter()
            fn(chunk)
            seconds[name] += time.perf_counter() - begin
    return {name: len(texts) / s for name, s in seconds.items()}


def raw_hf(model_dir: Path):
    """AutoModel + AutoTokenizer from the pipeline's transformer, masked mean pooling."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModel.from_pretrained(model_dir).eval()

    def run(texts: list[str]) -> np.ndarray:
        order = np.argsort([len(t) for t in texts], kind="stable")
        out = [None] * len(texts)
        with torch.inference_mode():
            for i in range(0, len(texts), BATCH):
                idx = order[i:i + BATCH]
                enc = tokenizer([texts[j] for j in idx], padding=True, return_tensors="pt")
                hidden = model(**enc).last_hidden_state
                mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1)
                for r, j in enumerate(idx):
                    out[j] = pooled[r].numpy()
        return np.stack(out)

    return run


PACKAGES = ("spacy", "spacy-transformers", "torch", "transformers", "onnxruntime", "onnx")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pipeline")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(REPO / "bench/results/onnx.md"))
    args = parser.parse_args()

    import spacy
    import torch

    from spacy_senti.onnx import SentiOnnx
    from spacy_senti.onnx.export import export_onnx

    torch.set_num_threads(args.threads)
    top = header(f"python bench/bench_onnx.py --threads {args.threads}", packages=PACKAGES,
                 extra=["CPUs shared with other jobs: numbers are noisy, compare ratios within "
                        "this run"])
    texts, dev, dev_labels = sentences()
    pipeline, origin = find_pipeline(args.pipeline)
    nlp = spacy.load(pipeline)
    export_dir = WORK / "onnx"
    start = time.perf_counter()
    export_onnx(nlp, export_dir, quantize="int8")
    export_s = time.perf_counter() - start
    hf_dir = WORK / "hf"
    trf = nlp.get_pipe("transformer").model
    trf.transformer.save_pretrained(hf_dir)
    trf.tokenizer.save_pretrained(hf_dir)

    fp32 = SentiOnnx(export_dir, variant="fp32", threads=args.threads, batch_size=BATCH)
    int8 = SentiOnnx(export_dir, variant="int8", threads=args.threads, batch_size=BATCH)
    labels = fp32.labels

    def spacy_probs(batch: list[str]) -> np.ndarray:
        docs = nlp.pipe(batch, batch_size=BATCH)
        return np.asarray([[d.cats[k] for k in labels] for d in docs])

    speed = interleaved_speed({
        "raw HF AutoModel + mean pooling (PyTorch)": raw_hf(hf_dir),
        "spaCy nlp.pipe(batch_size=64)": spacy_probs,
        "ONNX Runtime fp32": fp32.predict_probs,
        "ONNX Runtime int8 (dynamic, QInt8)": int8.predict_probs,
    }, texts)

    parity = dev[:500]
    p_spacy = spacy_probs(parity)
    diff32 = float(np.abs(fp32.predict_probs(parity) - p_spacy).max())
    diff8 = float(np.abs(int8.predict_probs(parity) - p_spacy).max())
    pos = labels.index("sentiment/positive")
    gold = np.asarray([lab == "positive" for lab in dev_labels])
    acc = {
        name: float(((probs(dev)[:, pos] >= 0.5) == gold).mean())
        for name, probs in [("spaCy", spacy_probs), ("ONNX fp32", fp32.predict_probs),
                            ("ONNX int8", int8.predict_probs)]
    }
    size = {v: (export_dir / f).stat().st_size / 2**20 for v, f in fp32.info["files"].items()}
    base = speed["raw HF AutoModel + mean pooling (PyTorch)"]

    lines = [
        "# ONNX Runtime export vs PyTorch and spaCy",
        "",
        *top,
        f"- Pipeline: `{shown_path(pipeline)}`"
        f" ({origin}); export took {export_s:.1f} s; model.onnx {size['fp32']:.0f} MB, "
        f"model.int8.onnx {size['int8']:.0f} MB",
        f"- Threads: torch.set_num_threads({args.threads}), onnxruntime intra_op_num_threads="
        f"{args.threads}; batch 64; one pass after a warm-up batch, interleaved: 8 chunks of "
        "250 texts, each run through all four backends in turn",
        "",
        "## Throughput on 2,000 real sentences (SST-2 dev 872 + TweetEval sentiment val 1,128)",
        "",
        "| backend | docs/s | ratio to raw HF |",
        "|---|---:|---:|",
        *[f"| {name} | {v:,.0f} | {v / base:.2f}x |" for name, v in speed.items()],
        "",
        "Raw HF is the encoder only (no head), length-sorted batches like the ONNX runner; "
        "spaCy's numbers include its tokenizer and the listener/pooling/head.",
        "",
        "## Parity and accuracy",
        "",
        f"- fp32 parity, 500 SST-2 dev sentences: max |p_onnx - p_spacy| = {diff32:.2e} "
        f"(target <= 1e-3: {'met' if diff32 <= 1e-3 else 'NOT met'})",
        f"- int8 vs spaCy on the same 500: max |diff| = {diff8:.3f}",
        "",
        "| SST-2 dev (872) | accuracy |",
        "|---|---:|",
        *[f"| {name} | {v:.2%} |" for name, v in acc.items()],
        "",
        f"int8 - fp32 = {100 * (acc['ONNX int8'] - acc['ONNX fp32']):+.2f} points (target: within "
        f"1 point: {'met' if abs(acc['ONNX int8'] - acc['ONNX fp32']) <= 0.01 else 'NOT met'}); "
        f"int8 speed-up over raw HF: {speed['ONNX Runtime int8 (dynamic, QInt8)'] / base:.2f}x "
        "(target >= 3x).",
    ]
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
