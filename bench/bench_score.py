"""Throughput of ``spacy-senti score``: the PyTorch pipeline vs its ONNX export (fp32, int8).

On the local engine (1 process, optionally ``--n-process 2``) and on Ray Data (local runtime).

Every (engine, backend) pair scores the same JSONL file of real sentences (TweetEval sentiment
test + val, SST-2 dev + test, cycled to ``--rows``), each run a separate ``spacy-senti score``
process. The rows are cut into ``--rounds`` contiguous parts and the runs are interleaved
(part 1 through every pair, then part 2, ...), so load changes on a shared machine hit every
pair alike. Records rows/s (the command's own: model load excluded; Ray's includes its actors'
start-up), the ratio to the PyTorch pipeline on the same engine, rows in == rows out, the
output's agreement with the PyTorch output (max |probability difference|, label agreement per
label column, same row order and error rows), wall clock, CPU seconds and the peak RSS of the
process tree. Writes ``bench/results/score.md``.

    .venv/bin/python bench/bench_score.py [--rows 20000] [--pipeline DIR] [--onnx DIR]
        [--export] [--backends torch,fp32,int8] [--engines local1,ray] [--rounds 2]
        [--threads N] [--out FILE]

Pipeline: ``--pipeline DIR``, else ``training/multitask/model-tuned`` (``make demo``), else the
first ``training/*/model-best``, else (or with ``--pipeline tiny-bert`` / ``cnn``) a tiny random
BERT built like the tests' or an untrained ``configs/cpu_fast.cfg`` CNN (PyTorch backend only:
it has no ONNX export); their rows/s measure the scoring machinery only.
ONNX: ``--onnx DIR`` is the pipeline's export (``spacy-senti export-onnx PIPELINE DIR
--quantize int8``); without it, or with ``--export``, the script exports the pipeline first
(into DIR, or a temporary folder).
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from itertools import cycle, islice
from pathlib import Path

from _common import command_line, header, load, nproc, shown_path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "results" / "score.md"
PY = sys.executable
DEMO_PIPELINE = REPO / "training" / "multitask" / "model-tuned"
BACKENDS = {"torch": "PyTorch pipeline", "fp32": "ONNX fp32", "int8": "ONNX int8"}
TARGET_RATIO = 3.0  # issue 18, item 4: ONNX rows/s >= 3x the PyTorch pipeline's


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
    if (DEMO_PIPELINE / "config.cfg").exists():
        return DEMO_PIPELINE
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


def run(args: list[str], command: str = "score") -> dict:
    """Run one ``spacy-senti score`` process; wall time, peak tree RSS and its summary."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    cpu_before = _children_cpu()
    start = time.perf_counter()
    proc = subprocess.Popen([PY, "-m", "spacy_senti.cli", command, *args], cwd=REPO, env=env,
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
    if command != "score":
        return {"wall": wall}
    match = re.search(r"rows in: ([\d,]+)\s+rows out: ([\d,]+).*?errors: ([\d,]+)\s+"
                      r"\(([\d,.]+) rows/s\)", output)
    rows_in, rows_out, errors, rate = (float(g.replace(",", "")) for g in match.groups())
    return {"wall": wall, "peak_rss": peak[0], "rows_in": int(rows_in),
            "rows_out": int(rows_out), "errors": int(errors), "rate": rate,
            "cpu_s": _children_cpu() - cpu_before}


# --- reading outputs ----------------------------------------------------------------------
INPUT_COLUMNS = ("id", "source", "text")


def read_rows(path: Path) -> list[dict]:
    """Rows of a JSONL output, or of a Ray output directory (Parquet parts, in name order;
    JSON-string prediction columns decoded; the input's columns are left as they are: a
    tweet may start with "{")."""
    if not path.is_dir():
        with open(path, encoding="utf-8") as f:
            return [json.loads(line) for line in f]
    import pyarrow.parquet as pq

    rows = [r for p in sorted(path.glob("*.parquet")) for r in pq.read_table(p).to_pylist()]
    for row in rows:
        for key, value in row.items():
            if key not in INPUT_COLUMNS and isinstance(value, str) and value[:1] == "{":
                row[key] = json.loads(value)
    return rows


def _numbers(value, key: str = "") -> dict[str, float]:
    """The probabilities of a mapping column, flattened: {"food/positive": 0.8, ...}."""
    if isinstance(value, dict):
        out: dict[str, float] = {}
        for k, v in value.items():
            out.update(_numbers(v, f"{key}/{k}" if key else str(k)))
        return out
    return {key: float(value)} if isinstance(value, (int, float)) else {}


class Agreement:
    """Output agreement of one run with the PyTorch pipeline's output, row by row."""

    def __init__(self, input_columns: set[str]) -> None:
        self.input_columns = input_columns
        self.rows = self.order_ok = self.errors_same = 0
        self.max_diff = 0.0
        self.sum_diff = 0.0
        self.n_probs = 0
        self.same: collections.Counter = collections.Counter()
        self.total: collections.Counter = collections.Counter()
        self.set_diff: collections.Counter = collections.Counter()
        self.columns_same = True

    def add(self, ref: list[dict], got: list[dict]) -> None:
        if ref and got and list(ref[0]) != list(got[0]):
            self.columns_same = False
        by_id = {r["id"]: r for r in got}
        self.order_ok += sum(a["id"] == b["id"] for a, b in zip(ref, got))
        for a in ref:
            b = by_id.get(a["id"], {})
            self.rows += 1
            self.errors_same += a.get("error") == b.get("error")
            for col, value in a.items():
                if col in self.input_columns or col == "error":
                    continue
                other = b.get(col)
                if isinstance(value, dict) and all(
                        isinstance(v, (int, float, dict)) for v in value.values()) and \
                        _numbers(value):
                    x, y = _numbers(value), _numbers(other or {})
                    for k, p in x.items():
                        d = abs(p - y.get(k, math.inf))
                        self.max_diff = max(self.max_diff, d)
                        self.sum_diff += d
                        self.n_probs += 1
                    continue
                self.total[col] += 1
                self.same[col] += _label_value(value) == _label_value(other)
                if isinstance(value, list):  # labels over thresholds: how many differ
                    self.set_diff[col] += len(set(value) ^ set(other or []))

    def cells(self) -> tuple[str, str, str]:
        """(max |diff|, mean |diff|, label agreement per column)."""
        mean = self.sum_diff / self.n_probs if self.n_probs else 0.0
        labels = ", ".join(
            f"{col} {self.same[col] / n:.2%}"
            + (f" ({self.set_diff[col] / n:.2f} labels differ per row)"
               if col in self.set_diff else "")
            for col, n in self.total.items())
        return f"{self.max_diff:.2e}", f"{mean:.1e}", labels

    def checks(self) -> str:
        ok = (self.order_ok == self.rows and self.errors_same == self.rows
              and self.columns_same)
        return "yes" if ok else (f"NO (order {self.order_ok:,}/{self.rows:,}, errors "
                                 f"{self.errors_same:,}/{self.rows:,}, columns "
                                 f"{'same' if self.columns_same else 'differ'})")


def _label_value(value):
    """Labels compared as sets for label lists, as mappings for {aspect: polarity}."""
    if isinstance(value, list):
        return sorted(value)
    return value


# --- the plan ----------------------------------------------------------------------------
PACKAGES = ("spacy", "spacy-transformers", "torch", "transformers", "onnxruntime", "ray",
            "pyarrow", "spacy-senti")


def engine_plans(batch_size: int, threads: int, actors: int) -> dict[str, tuple[str, list]]:
    bs = str(batch_size)
    return {
        "local1": (f"local, 1 process, {threads} thread(s)",
                   ["--batch-size", bs, "--threads", str(threads)]),
        "local2": ("local, `--n-process 2` (1 thread each)",
                   ["--batch-size", bs, "--n-process", "2"]),
        "ray": (f"Ray Data, local runtime (`--num-cpus {nproc()}`), {actors} actors "
                "(1 thread each)",
                ["--engine", "ray", "--n-process", str(actors), "--num-cpus", str(nproc()),
                 "--batch-size", bs]),
    }


def write_parts(src: Path, rounds: int) -> list[Path]:
    """``src`` cut into ``rounds`` contiguous JSONL parts."""
    lines = src.read_text(encoding="utf-8").splitlines(keepends=True)
    size = math.ceil(len(lines) / rounds)
    parts = []
    for r in range(rounds):
        part = src.with_name(f"part{r + 1}.jsonl")
        part.write_text("".join(lines[r * size:(r + 1) * size]), encoding="utf-8")
        parts.append(part)
    return [p for p in parts if p.stat().st_size]


def export(pipeline: Path, out: Path) -> float:
    """``spacy-senti export-onnx PIPELINE OUT --quantize int8``; seconds."""
    print(f"exporting {pipeline} -> {out} (fp32 + int8) ...", flush=True)
    return run([str(pipeline), str(out), "--quantize", "int8"], command="export-onnx")["wall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--pipeline", default=None,
                        help="a pipeline directory, or 'tiny-bert' / 'cnn' to build one")
    parser.add_argument("--onnx", type=Path, default=None,
                        help="the pipeline's ONNX export (default: export it first)")
    parser.add_argument("--export", action="store_true",
                        help="export the pipeline into --onnx (or a temporary folder) first")
    parser.add_argument("--backends", default="torch,fp32,int8")
    parser.add_argument("--engines", default="local1,ray",
                        help="local1, local2 (--n-process 2), ray")
    parser.add_argument("--rounds", type=int, default=2,
                        help="interleaved parts of the input (each pair scores every part)")
    parser.add_argument("--threads", type=int, default=nproc(),
                        help="local1: torch / onnxruntime threads (same for every backend)")
    parser.add_argument("--actors", type=int, default=2, help="ray: scoring actors")
    parser.add_argument("--fallback", choices=["cnn", "tiny-bert"], default="tiny-bert",
                        help="pipeline to build when there is no --pipeline/trained one")
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary folder with the inputs and outputs")
    opts = parser.parse_args()
    backends = opts.backends.split(",")
    engines = opts.engines.split(",")
    unknown = [b for b in backends if b not in BACKENDS] + \
        [e for e in engines if e not in ("local1", "local2", "ray")]
    if unknown:
        parser.error(f"unknown backend/engine {unknown}")
    load_at_start = load()

    work = Path(tempfile.mkdtemp(prefix="bench_score_"))
    src = work / "input.jsonl"
    sources = write_input(src, opts.rows)
    parts = write_parts(src, max(1, opts.rounds))
    build = opts.pipeline if opts.pipeline in ("cnn", "tiny-bert") else None
    pipeline = None if build else (Path(opts.pipeline) if opts.pipeline else find_pipeline())
    build = build or opts.fallback
    what = f"`{shown_path(pipeline)}`" if pipeline else None
    if pipeline is None and build == "tiny-bert":
        pipeline = build_tiny_pipeline(work)
        what = ("**tiny random BERT pipeline built like the tests'** (2 layers, hidden 32, "
                "8,000-word corpus vocabulary, one sentiment head, untrained), chosen with "
                "--pipeline tiny-bert or because no trained pipeline existed. Its rows/s "
                "measure the scoring machinery, not MiniLM")
    elif pipeline is None:
        pipeline = build_cnn_pipeline(work)
        what = ("**untrained `configs/cpu_fast.cfg` pipeline** (hash-embedding CNN, no "
                "transformer, so no ONNX export). Its rows/s measure the scoring machinery")

    onnx_dir, export_s = opts.onnx, None
    if any(b != "torch" for b in backends):
        if onnx_dir is None or opts.export or not (onnx_dir / "senti_onnx.json").exists():
            onnx_dir = onnx_dir or work / "onnx"
            export_s = export(pipeline, onnx_dir)
        info = json.loads((onnx_dir / "senti_onnx.json").read_text())
        missing = [b for b in backends if b != "torch" and b not in info["files"]]
        if missing:
            parser.error(f"{onnx_dir} has no {missing} model: export with --quantize int8")

    plans = engine_plans(opts.batch_size, opts.threads, opts.actors)
    results: dict[tuple[str, str], dict] = {}
    outputs: dict[tuple[str, str], list[Path]] = collections.defaultdict(list)
    for r, part in enumerate(parts, start=1):
        for engine in engines:
            label, extra = plans[engine]
            if engine == "ray" and r > 1:
                continue  # Ray scores the whole file once: its start-up is counted once
            if engine == "ray":
                part = src
            for backend in backends:
                model = str(pipeline) if backend == "torch" else str(onnx_dir)
                variant = [] if backend == "torch" else ["--onnx-variant", backend]
                out = work / f"{engine}_{backend}_{r}" \
                    if engine == "ray" else work / f"{engine}_{backend}_{r}.jsonl"
                print(f"part {r}/{len(parts)}: {label}, {BACKENDS[backend]} ...", flush=True)
                res = run([model, str(part), str(out), "--no-progress", "--no-resume",
                           *variant, *extra])
                print(f"  {res['rate']:,.1f} rows/s, wall {res['wall']:.1f} s", flush=True)
                outputs[engine, backend].append(out)
                tot = results.setdefault((engine, backend), collections.Counter())
                tot["rows_in"] += res["rows_in"]
                tot["rows_out"] += res["rows_out"]
                tot["errors"] += res["errors"]
                tot["seconds"] += res["rows_out"] / res["rate"] if res["rate"] else 0.0
                tot["wall"] += res["wall"]
                tot["cpu_s"] += res["cpu_s"]
                tot["peak_rss"] = max(tot["peak_rss"], res["peak_rss"])

    input_columns = set(INPUT_COLUMNS)
    if onnx_dir is None:
        onnx_line = "- ONNX export: not used"
    else:
        shown = "a temporary folder" if onnx_dir.resolve().is_relative_to(work.resolve()) \
            else f"`{shown_path(onnx_dir)}`"
        onnx_line = f"- ONNX export: {shown}" + (
            f" (exported by this run in {export_s:.0f} s, `--quantize int8`)"
            if export_s is not None else "")
    lines = [
        "# `spacy-senti score`: the PyTorch pipeline vs its ONNX export, local and Ray",
        "",
        *header(command_line(), packages=PACKAGES, when="at the end",
                extra=[f"Load average at the start: {load_at_start}",
                       "CPUs may be shared with other jobs: compare within this table"]),
        f"- Pipeline: {what}",
        onnx_line,
        f"- Data: {opts.rows:,} rows cycled from "
        + ", ".join(f"{k} {v:,}" for k, v in sources.items()) + "; JSONL in; JSONL out for "
        "local, a directory of Parquet parts for Ray; batch size "
        f"{opts.batch_size}; the local engines score it in {len(parts)} interleaved "
        "part(s) (each part through every engine and backend before the next part); Ray "
        "scores the whole file once per backend (after the local part 1), so its actors' "
        "start-up is paid once",
        "- rows/s: rows / the command's own scoring time, summed over the parts (model load "
        "excluded; Ray's includes starting its actors, which load the model: about 10-30 s "
        "of a run); ratio: to the "
        "PyTorch pipeline on the same engine (target for ONNX: >= "
        f"{TARGET_RATIO:g}x); wall: the whole processes incl. imports, model load and Ray "
        "start-up",
        "- agreement with the PyTorch pipeline's output on the same engine: max and mean "
        "|difference| over every probability of every row (outputs round to 1e-6), label "
        "columns equal per row (a label list must be the same set; the labels that differ "
        "per row in brackets), and same row order, error rows and columns",
        "- CPU s: user+system of the command's reaped process tree (Ray daemons and actors "
        "are not counted); peak RSS: the process tree, sampled every 0.25 s",
        "",
        "| engine | backend | rows in | rows out | errors | rows/s | ratio | max \\|diff\\| | "
        "mean \\|diff\\| | label agreement | order, errors, columns same | wall s | CPU s | "
        "peak RSS MiB |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for engine in engines:
        ref_key = (engine, "torch") if (engine, "torch") in results else None
        ref_rows = [read_rows(p) for p in outputs[ref_key]] if ref_key else None
        base = results[ref_key] if ref_key else None
        for backend in backends:
            tot = results[engine, backend]
            rate = tot["rows_out"] / tot["seconds"] if tot["seconds"] else 0.0
            counted = sum(len(read_rows(p)) for p in outputs[engine, backend])
            ok = "" if tot["rows_in"] == tot["rows_out"] == counted == opts.rows \
                else " MISMATCH"
            ratio = diff = mean = labels = same = "–"
            if base is not None and base["seconds"]:
                base_rate = base["rows_out"] / base["seconds"]
                ratio = f"{rate / base_rate:.2f}x"
                if backend != "torch":
                    met = "met" if rate / base_rate >= TARGET_RATIO else "not met"
                    ratio += f" ({met})"
                    agree = Agreement(input_columns)
                    for ref, path in zip(ref_rows, outputs[engine, backend]):
                        agree.add(ref, read_rows(path))
                    diff, mean, labels = agree.cells()
                    same = agree.checks()
            lines.append(
                f"| {plans[engine][0]} | {BACKENDS[backend]} | {tot['rows_in']:,} | "
                f"{counted:,}{ok} | {tot['errors']:,} | {rate:,.1f} | {ratio} | {diff} | "
                f"{mean} | {labels} | {same} | {tot['wall']:.0f} | {tot['cpu_s']:.0f} | "
                f"{tot['peak_rss'] / 2**20:,.0f} |")
    opts.out.parent.mkdir(parents=True, exist_ok=True)
    opts.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    if opts.keep:
        print(f"inputs and outputs kept in {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
