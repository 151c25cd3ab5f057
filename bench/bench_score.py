"""Throughput of ``spacy-senti score``: local 1 process vs local n_process=2 vs Ray (local).

Scores the same JSONL file of real sentences (TweetEval sentiment test + val, SST-2 dev +
test, cycled to ``--rows``) with each engine, each run a separate ``spacy-senti score``
process. Records rows/s (the command's own, model load excluded; and wall clock incl.
start-up), checks rows in == rows out, and samples the peak RSS of the process tree (the
command, its workers, and Ray's raylet/GCS/workers) from /proc. Writes
``bench/results/score.md``.

    .venv/bin/python bench/bench_score.py [--rows 20000] [--pipeline DIR] [--out FILE]
        [--fallback cnn|tiny-bert] [--engines local1,local2,ray]

Pipeline: ``--pipeline DIR``, else the first ``training/*/model-best``, else (or with
``--pipeline cnn`` / ``--pipeline tiny-bert``) an untrained ``configs/cpu_fast.cfg`` pipeline
or a tiny random BERT built like the tests'; their rows/s measure the scoring machinery only.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from itertools import cycle, islice
from pathlib import Path

from _common import header, shown_path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "results" / "score.md"
PY = sys.executable


# --- data ---------------------------------------------------------------------------------
def corpus() -> list[tuple[str, str]]:
    """(source, text) of the real sentences the bench cycles through."""
    items: list[tuple[str, str]] = []
    for split in ("test", "val"):
        path = DATA / "tweeteval" / "sentiment" / f"{split}_text.txt"
        items += [(f"tweeteval-{split}", t.strip()) for t in path.read_text().splitlines()]
    for split in ("dev", "test"):
        lines = (DATA / "sst2" / f"{split}.tsv").read_text().splitlines()[1:]
        col = 0 if split == "dev" else 1
        items += [(f"sst2-{split}", line.split("\t")[col].strip()) for line in lines]
    return [(s, t) for s, t in items if t]


def write_input(path: Path, n: int) -> collections.Counter:
    items = corpus()
    sources: collections.Counter = collections.Counter()
    with open(path, "w", encoding="utf-8") as f:
        for i, (source, text) in enumerate(islice(cycle(items), n)):
            sources[source] += 1
            f.write(json.dumps({"id": i, "source": source, "text": text}) + "\n")
    sources["unique sentences"] = len(items)
    return sources


# --- pipeline -----------------------------------------------------------------------------
def find_pipeline() -> Path | None:
    found = sorted(REPO.glob("training/*/model-best"))
    return found[0] if found else None


def build_cnn_pipeline(out: Path) -> Path:
    """configs/cpu_fast.cfg (hash-embedding CNN, no transformer), sentiment head, initialised
    and untrained: cheap enough to push 20,000 rows through three engines on 2 busy cores."""
    import spacy
    from thinc.api import Config

    config = Config().from_disk(REPO / "configs" / "cpu_fast.cfg")
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    _initialize(nlp)
    nlp.to_disk(out / "pipe")
    return out / "pipe"


def _initialize(nlp) -> None:
    from spacy.training import Example

    labels = ("negative", "neutral", "positive")
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": {f"sentiment/{x}": float(x == y)
                                                              for x in labels}})
                for t, y in [("good", "positive"), ("ok", "neutral"), ("bad", "negative")]]
    nlp.initialize(get_examples=lambda: examples)


def build_tiny_pipeline(out: Path) -> Path:
    """The tests' tiny BERT (2 layers, hidden 32) with the corpus' 8,000 commonest words in
    its vocabulary (so texts are not split into characters), sentiment head, initialised."""
    import spacy
    import torch
    from thinc.api import Config
    from transformers import BertConfig, BertModel, BertTokenizerFast

    words = collections.Counter(
        w for _, t in corpus() for w in re.findall(r"\w+|[^\w\s]", t.lower())
    )
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()\"")
    vocab = specials + chars + [f"##{c}" for c in chars] + [w for w, _ in words.most_common(8000)]
    bert = out / "bert"
    bert.mkdir(parents=True, exist_ok=True)
    (bert / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf8")
    tok = BertTokenizerFast(vocab_file=str(bert / "vocab.txt"), do_lower_case=True)
    tok.save_pretrained(str(bert))
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=2, intermediate_size=64,
                         max_position_embeddings=256)).save_pretrained(str(bert))
    config = Config().from_disk(REPO / "configs" / "sentiment.cfg")
    config = config.merge({"paths": {"backbone": str(bert)}})
    nlp = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    _initialize(nlp)
    nlp.to_disk(out / "pipe")
    return out / "pipe"


# --- measuring ----------------------------------------------------------------------------
def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        kids[ppid].append(int(entry))
    return kids


def tree_rss(pid: int) -> int:
    """Resident memory (bytes) of ``pid`` and all its descendants."""
    kids, total, todo = _children(), 0, [pid]
    while todo:
        p = todo.pop()
        todo.extend(kids.get(p, []))
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def _children_cpu() -> float:
    """User + system CPU seconds of the finished (reaped) child processes so far."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(args: list[str]) -> dict:
    """Run one ``spacy-senti score`` process; wall time, peak tree RSS and its summary."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "spacy_senti.cli", "score", *args], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.25)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    output, _ = proc.communicate()
    wall = time.perf_counter() - start
    sampler.join()
    if proc.returncode != 0:
        raise RuntimeError(f"{args} failed:\n{output[-3000:]}")
    match = re.search(r"rows in: ([\d,]+)\s+rows out: ([\d,]+).*?errors: ([\d,]+)\s+"
                      r"\(([\d,.]+) rows/s\)", output)
    rows_in, rows_out, errors, rate = (float(g.replace(",", "")) for g in match.groups())
    return {"wall": wall, "peak_rss": peak[0], "rows_in": int(rows_in),
            "rows_out": int(rows_out), "errors": int(errors), "rate": rate,
            "cpu_s": _children_cpu() - cpu_before}


def count_output(path: Path) -> int:
    """Rows actually in the output (a JSONL file or a directory of Parquet parts)."""
    if path.is_dir():
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(p).metadata.num_rows for p in path.glob("*.parquet"))
    with open(path, "rb") as f:
        return sum(1 for _ in f)


PACKAGES = ("spacy", "spacy-transformers", "torch", "transformers", "ray", "pyarrow",
            "spacy-senti")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pipeline", default=None,
                        help="a pipeline directory, or 'cnn' / 'tiny-bert' to build one")
    parser.add_argument("--engines", default="local1,local2,ray")
    parser.add_argument("--fallback", choices=["cnn", "tiny-bert"], default="cnn",
                        help="pipeline to build when there is no --pipeline/model-best")
    parser.add_argument("--out", type=Path, default=OUT)
    opts = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="bench_score_"))
    src = work / "input.jsonl"
    sources = write_input(src, opts.rows)
    build = opts.pipeline if opts.pipeline in ("cnn", "tiny-bert") else None
    pipeline = None if build else (Path(opts.pipeline) if opts.pipeline else find_pipeline())
    build = build or opts.fallback
    what = f"`{shown_path(pipeline)}`" if pipeline else None
    if pipeline is None and build == "tiny-bert":
        pipeline = build_tiny_pipeline(work)
        what = ("**tiny random BERT pipeline built like the tests'** (2 layers, hidden 32, "
                "8,000-word corpus vocabulary, one sentiment head, untrained): no "
                "training/*/model-best existed. Its rows/s measure the scoring machinery "
                "(reading, nlp.pipe, workers, Ray, writing, checkpoints), not MiniLM")
    elif pipeline is None:
        pipeline = build_cnn_pipeline(work)
        what = ("**untrained `configs/cpu_fast.cfg` pipeline** (hash-embedding CNN + "
                "senti_textcat, one sentiment head, no transformer), chosen with --pipeline cnn "
                "or because no training/*/model-best existed; a transformer at 20,000 rows "
                "x 3 engines would not fit the CPU budget "
                "(MiniLM runs at ~16 docs/s here, bench/results/onnx.md). Its rows/s measure "
                "the scoring machinery (reading, nlp.pipe, workers, Ray, writing, "
                "checkpoints), not MiniLM")
    bs = str(opts.batch_size)
    plans = {
        "local1": ("local, 1 process (`--threads 1`)",
                   ["--batch-size", bs, "--threads", "1"], "local1.jsonl"),
        "local2": ("local, `--n-process 2` (1 torch thread each)",
                   ["--batch-size", bs, "--n-process", "2"], "local2.jsonl"),
        "ray": ("Ray Data, local runtime (`--num-cpus 2`), 2 actors",
                ["--engine", "ray", "--n-process", "2", "--num-cpus", "2",
                 "--batch-size", bs], "ray_out"),
    }
    results = []
    for key in opts.engines.split(","):
        label, extra, out_name = plans[key]
        out = work / out_name
        print(f"running {label} ...", flush=True)
        res = run([str(pipeline), str(src), str(out), "--no-progress", "--no-resume", *extra])
        res["counted"] = count_output(out)
        res["label"] = label
        results.append(res)
        print(f"  {res}", flush=True)

    lines = [
        "# `spacy-senti score`: local vs local n_process=2 vs Ray Data (local runtime)",
        "",
        *header(f"python bench/bench_score.py --rows {opts.rows}"
                + (f" --pipeline {opts.pipeline}" if opts.pipeline else ""),
                packages=PACKAGES, when="at the end",
                extra=["CPUs shared with other jobs: absolute numbers are noisy"]),
        f"- Pipeline: {what}",
        f"- Data: {opts.rows:,} rows cycled from "
        + ", ".join(f"{k} {v:,}" for k, v in sources.items()) + " (JSONL in; JSONL out for "
        "local, a directory of Parquet parts for Ray); batch size " + bs,
        "- rows/s: the command's own (pipeline load and Ray start-up excluded); wall: the "
        "whole process incl. imports, model load, Ray start-up and the row-count check",
        "- CPU s: user+system of the command's reaped process tree (Ray daemons that outlive "
        "the driver are not counted)",
        "- peak RSS: the process tree (command, spaCy workers, Ray raylet/GCS/actors), "
        "sampled every 0.25 s from /proc",
        "",
        "| engine | rows in | rows out (counted) | errors | rows/s | wall s | CPU s | "
        "peak RSS MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        ok = "" if r["rows_in"] == r["rows_out"] == r["counted"] == opts.rows else " MISMATCH"
        lines.append(f"| {r['label']} | {r['rows_in']:,} | {r['counted']:,}{ok} | "
                     f"{r['errors']:,} | {r['rate']:,.1f} | {r['wall']:.1f} | "
                     f"{r['cpu_s']:.0f} | "
                     f"{r['peak_rss'] / 2**20:,.0f} |")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
