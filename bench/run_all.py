"""Run the benchmark scripts and assemble BENCHMARKS.md from bench/results/*.md.

    python bench/run_all.py                 # every benchmark (hours on a 2-core CPU)
    python bench/run_all.py lexicon onnx    # a named subset
    python bench/run_all.py --assemble      # only rebuild BENCHMARKS.md from existing results

Each script measures side by side in one run and writes its own table with the command,
machine, date and versions; this file only runs them in order and concatenates the results.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results"
ORDER = [
    "quality",
    "levers",
    "absa_pairs",
    "speed",
    "speed_aspects",
    "speed_train",
    "lexicon",
    "lowdata",
    "fewshot",
    "checklist",
    "onnx",
    "serve",
    "explain",
    "score",
    "active",
    "drift",
]
SCRIPTS = {
    "quality": ["bench_quality.py"],  # also runs the lever experiments (one results file)
    "levers": [],  # written by bench_quality.py
    "absa_pairs": ["bench_absa_pairs.py"],  # needs bench_quality.py absa's model
    "speed": ["bench_speed.py"],
    "speed_aspects": [],  # bench_speed.py --aspects-only
    "speed_train": [],  # bench_speed.py --train
    "lexicon": ["bench_lexicon.py"],
    "lowdata": ["bench_lowdata.py"],
    "fewshot": ["bench_fewshot.py"],  # the full grid takes hours: see its --help for a subset
    "checklist": ["bench_checklist.py"],
    "onnx": ["bench_onnx.py"],
    "serve": ["bench_serve.py"],
    "explain": ["bench_explain.py"],
    "score": ["bench_score.py"],
    "active": ["bench_active.py"],
    "drift": [],  # produced by `spacy-senti drift` runs recorded in results/drift.md
}
TITLES = {
    "quality": "Quality on the full public benchmarks",
    "levers": "Levers: what each training change did",
    "absa_pairs": "Aspect categories: one encoder pass vs sentence pairs (Sun et al. 2019)",
    "speed": "Speed: spacy-senti vs raw Hugging Face (inference and training)",
    "speed_aspects": "Speed: aspect terms beside the heads, one encoder pass",
    "speed_train": "Training speed: length-bucketed batches",
    "lexicon": "Lexicon scorer: parity with vaderSentiment and throughput",
    "lowdata": "Low-data curve: model-only vs lexicon-only vs hybrid",
    "fewshot": "Few labels: plain fine-tuning vs hybrid vs setfit vs spacy-senti fewshot",
    "checklist": "CheckList-style capabilities: lexicon-only vs model-only vs hybrid (auto)",
    "onnx": "ONNX Runtime: parity, int8 accuracy, throughput",
    "serve": "HTTP service under load (and under hostile load)",
    "explain": "Explanations: faithfulness and cost",
    "score": "Batch scoring: PyTorch vs ONNX, local and Ray",
    "active": "Simulated active learning vs random sampling",
    "drift": "Drift detection on real shifts",
}


def run(names: list[str]) -> None:
    for name in names:
        for script in SCRIPTS[name]:
            print(f"== {name}: python bench/{script}", flush=True)
            subprocess.run([sys.executable, str(BENCH / script)], cwd=REPO, check=True)


def assemble() -> Path:
    parts = [
        "# Benchmarks",
        "",
        "Produced by `make bench` (`python bench/run_all.py`); each section is written by its "
        "script in `bench/`, which records the command, machine, date and versions. These "
        "machines are noisy: compare within a section (ratios), not across sections.",
        f"Assembled {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC.",
        "",
    ]
    for name in ORDER:
        path = RESULTS / f"{name}.md"
        if not path.exists():
            parts += [f"## {TITLES[name]}", "", "_Not run yet._", ""]
            continue
        body = path.read_text(encoding="utf8").strip()
        lines = body.splitlines()
        if lines and lines[0].startswith("# "):
            lines = lines[1:]
        body = (
            "\n".join(lines)
            .replace("](", "](bench/results/")
            .replace("](bench/results/http", "](http")
        )
        parts += [f"## {TITLES[name]}", "", body.strip(), ""]
    out = REPO / "BENCHMARKS.md"
    out.write_text("\n".join(parts), encoding="utf8")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"subset of {ORDER}")
    parser.add_argument("--assemble", action="store_true", help="only rebuild BENCHMARKS.md")
    args = parser.parse_args()
    unknown = set(args.names) - set(ORDER)
    if unknown:
        parser.error(f"unknown benchmarks {sorted(unknown)}; choose from {ORDER}")
    if not args.assemble:
        run(args.names or ORDER)
    print(f"wrote {assemble()}")


if __name__ == "__main__":
    main()
