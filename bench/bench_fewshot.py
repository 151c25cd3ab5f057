"""Few labels: plain fine-tuning vs senti_hybrid vs the setfit library vs spacy-senti fewshot.

For each dataset, N labelled training docs per class and seed, every method sees the same
sample (seed s draws a different sample; samples are nested: N=8 ⊂ N=16 ⊂ N=64 for a seed):

* **plain**: ``senti_textcat`` fine-tuned with ``configs/sentiment.cfg`` (MiniLM-L6, batch 16,
  warmup-linear LR 1e-4, epochs by size), the best epoch on dev kept (as bench_lowdata.py);
* **hybrid**: ``senti_hybrid``'s stacker over that model + ``senti_lexicon``, fitted on dev;
* **setfit**: the setfit library's ``SetFitModel`` with the same all-MiniLM-L6-v2 body
  (contrastive body fine-tuning with ``num_iterations`` = R, then its logistic-regression head);
* **fewshot**: ``spacy_senti.training.fewshot.run_fewshot`` (what ``spacy-senti fewshot``
  runs) with ``configs/fewshot.cfg``, R pairs per example and ``--stage2 auto``: the frozen
  encoder with SetFit's head, or end-to-end fine-tuning from the tuned encoder, whichever
  scores better on dev; its ``model-best`` is scored, and each candidate too.

The dev set is another N docs per class, disjoint from every training sample: plain uses it
to pick the epoch, the hybrid to fit its stacker and fewshot to choose its stage 2; setfit
does not use it.
Scores: macro-F1 on the test split (SST-2: the official dev set), mean ± std over seeds.
Datasets: SST-2 (2 classes), CARER (6), Financial PhraseBank AllAgree (3, the converter's
stratified 80/10/10 split, seed 0), TweetEval emotion (4). Writes bench/results/fewshot.md,
fewshot.png and fewshot.json (every run, for ``--from-json``).

    .venv/bin/python bench/bench_fewshot.py [--datasets sst2,carer,fpb,tweeteval]
        [--n 8,16,64] [--seeds 0,1,2,3,4] [--methods plain,hybrid,setfit,fewshot]
        [--test-size 0] [--pairs-per-example 20 | 8:20,16:10,64:5] [--threads 2]
        [--work /tmp/fewshot] [--out bench/results/fewshot.md]
    .venv/bin/python bench/bench_fewshot.py --merge a.json b.json ...  # one report of several
    ... --reuse-encoders --reuse earlier.json  # stage 1 and setfit of an earlier run kept

The full grid (4 datasets x 3 sizes x 5 seeds) takes hours on 2 CPU cores, so it can run in
parts (say one N per run, each with its own ``--out``) that ``--merge`` puts in one report;
the samples do not depend on which sizes a run includes. The smallest useful check:
``--datasets sst2 --n 8 --seeds 0 --test-size 200``. The setfit peer needs
``pip install --no-deps setfit==1.2.0 datasets==5.0.1 evaluate==0.4.6 accelerate==1.16.0
dill==0.4.1 multiprocess==0.70.19 xxhash==4.1.0 psutil==7.2.2`` (``--no-deps``: its resolver
would otherwise change transformers/tokenizers/fsspec); without it the method is skipped.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_DISABLED", "true")

import bench_lowdata as lowdata  # noqa: E402
import numpy as np  # noqa: E402
import spacy  # noqa: E402
import torch  # noqa: E402
from _common import command_line, header, load  # noqa: E402
from spacy.tokens import DocBin  # noqa: E402
from tqdm import tqdm  # noqa: E402

import spacy_senti.components.hybrid  # noqa: E402,F401  (registers factories without install)
import spacy_senti.components.lexicon  # noqa: E402,F401
import spacy_senti.components.textcat  # noqa: E402,F401
from spacy_senti.backbone import resolve_backbone  # noqa: E402
from spacy_senti.data.convert import ConvertOptions, cats_for, convert  # noqa: E402
from spacy_senti.data.split import stratified_sample  # noqa: E402
from spacy_senti.training.fewshot import (  # noqa: E402
    ContrastiveSettings,
    end_to_end_epochs,
    run_fewshot,
)
from spacy_senti.training.hybrid import (  # noqa: E402
    accuracy_macro_f1,
    collect,
    ensure_lexicon,
    fit_on_data,
    score_sources,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"
FEWSHOT_CONFIG = REPO / "configs" / "fewshot.cfg"
HEAD = "sentiment"  # every dataset goes into one exclusive head of this name (the configs')
METHODS = ("plain", "hybrid", "setfit", "fewshot")
LABELS = {"plain": "plain fine-tuning", "hybrid": "senti_hybrid", "setfit": "setfit library",
          "fewshot": "spacy-senti fewshot"}


# --- data ------------------------------------------------------------------------------------
@dataclass
class Dataset:
    title: str
    pool: list  # LabelledText rows to sample from
    test: list
    head: object  # the exclusive Head of the conversion
    lexicon: dict  # senti_lexicon config for the hybrid


def _opts(**kwargs) -> ConvertOptions:
    return ConvertOptions(head=HEAD, kind="exclusive", **kwargs)


def load_dataset(key: str) -> Dataset:
    """Training pool and test split of one dataset (converted in memory, no files)."""
    if key == "sst2":
        opts = _opts(format="tsv", text_col="sentence", label_col="label",
                     label_map={"0": "negative", "1": "positive"})
        train = convert(DATA / "sst2" / "train.tsv", opts, progress=False)
        test = convert(DATA / "sst2" / "dev.tsv", opts, progress=False)
        return Dataset("SST-2", next(iter(train.splits.values())),
                       next(iter(test.splits.values())), train.head, {})
    if key == "fpb":
        result = convert(DATA / "financial_phrasebank" / "Sentences_AllAgree.txt",
                         _opts(format="lines", sep="@", encoding="latin-1"),
                         split=[0.8, 0.1, 0.1], seed=0, dedupe_splits=True, progress=False)
        return Dataset("Financial PhraseBank AllAgree", result.splits["train"],
                       result.splits["test"], result.head, {"domain": "finance"})
    if key == "carer":
        result = convert(DATA / "carer_emotion", _opts(format="lines", sep=";"),
                         dedupe_splits=True, progress=False)
    elif key == "tweeteval":
        result = convert(DATA / "tweeteval" / "emotion", _opts(format="tweeteval"),
                         dedupe_splits=True, progress=False)
    else:
        raise SystemExit(f"unknown dataset {key!r}; use {', '.join(TITLES)}")
    return Dataset(TITLES[key], result.splits["train"], result.splits["test"], result.head, {})


TITLES = {"sst2": "SST-2", "carer": "CARER emotion", "fpb": "Financial PhraseBank AllAgree",
          "tweeteval": "TweetEval emotion"}


#: dev samples start after this many docs per class, so a seed's samples are the same whichever
#: sizes a run includes (runs of different --n can be merged)
DEV_OFFSET = 64


def per_class_samples(pool: list, sizes: list[int], seed: int) -> tuple[dict[int, list], dict]:
    """Nested training samples of N docs per class and, per N, a disjoint dev of N per class."""
    rng = np.random.default_rng(seed)
    by_label: dict[str, list[int]] = {}
    for i, ex in enumerate(pool):
        by_label.setdefault(ex.labels[0], []).append(i)
    top = max(DEV_OFFSET, *sizes)
    perms = {lab: rng.permutation(idx) for lab, idx in sorted(by_label.items())}
    short = {lab: len(p) for lab, p in perms.items() if len(p) < 2 * top}
    if short:
        raise SystemExit(f"classes with fewer than {2 * top} pool rows: {short}")
    train = {n: [pool[i] for p in perms.values() for i in p[:n]] for n in sizes}
    dev = {n: [pool[i] for p in perms.values() for i in p[top:top + n]] for n in sizes}
    return train, dev


def docbin(rows: list, head, path: Path, nlp) -> Path:
    db = DocBin(store_user_data=False)
    for ex, doc in zip(rows, nlp.tokenizer.pipe(ex.text for ex in rows), strict=True):
        doc.cats = cats_for(ex, head)
        db.add(doc)
    db.to_disk(path)
    return path


def macro_f1(gold: list[str], pred: list[str], labels: list[str]) -> float:
    return accuracy_macro_f1(gold, pred, labels)["macro_f1"]


# --- methods ---------------------------------------------------------------------------------
def timed(method, *args) -> dict:
    """``method(*args)``'s results with ``cpu_seconds`` (this process, all threads) added to
    each entry: on a shared machine CPU time / threads is a steadier speed figure than wall."""
    cpu = time.process_time()
    out = method(*args)
    used = time.process_time() - cpu
    for entry in out.values():
        entry.setdefault("cpu_seconds", used)
    return out


def plain_epochs(n_docs: int) -> int:
    """More passes over fewer docs (bench_lowdata: 50 rows -> 20 epochs, 200 -> 8); the
    end-to-end stage 2 of fewshot uses the same rule."""
    return end_to_end_epochs(n_docs)


def run_plain_hybrid(ds: Dataset, train: list, dev: list, test_docs: list, run_dir: Path,
                     seed: int) -> dict:
    """Plain fine-tuning (bench_lowdata's in-process spaCy loop, best epoch on dev) and the
    hybrid stacker fitted on dev over the same model."""
    blank = spacy.blank("en")
    train_path = docbin(train, ds.head, run_dir / "train.spacy", blank)
    dev_path = docbin(dev, ds.head, run_dir / "dev.spacy", blank)
    lowdata.SEED = seed  # bench_lowdata.train_model reads its module-level seed
    start = time.perf_counter()
    nlp, info = lowdata.train_model(train_path, dev_path, len(train), plain_epochs(len(train)))
    ensure_lexicon(nlp, ds.lexicon)
    dev_data = collect(nlp, lowdata.gold_docs(dev, ds.head, nlp), HEAD)
    test_data = collect(nlp, test_docs, HEAD)
    stacker = fit_on_data(dev_data, "stacker", seed=seed)
    scores = score_sources(test_data, stacker)
    seconds = time.perf_counter() - start
    return {"plain": {"macro_f1": scores["model"]["macro_f1"], "seconds": info["seconds"]},
            "hybrid": {"macro_f1": scores["hybrid"]["macro_f1"], "seconds": seconds}}


def test_macro_f1(pipeline: Path, test_docs: list) -> float:
    nlp = spacy.load(pipeline)
    labels = list(nlp.get_pipe("senti_textcat").get_head(HEAD).labels)
    gold = [max(d.cats, key=d.cats.get).split("/", 1)[1] for d in test_docs]
    pred = [doc._.sentiment for doc in nlp.pipe((d.text for d in test_docs), batch_size=64)]
    return macro_f1(gold, pred, labels)


STAGE1_FILE = "stage1.json"  # the stage-1 summary, kept beside the encoder for reuse


def earlier_stage1(out: Path, settings: ContrastiveSettings) -> dict | None:
    """The stage-1 summary of an earlier run in ``out`` with the same stage-1 settings (its
    encoder is reused by ``--reuse-encoders``), else None."""
    if not (out / "encoder" / "config.json").exists():
        return None
    for name in (STAGE1_FILE, "fewshot.json"):
        if (out / name).exists():
            old = json.loads((out / name).read_text())
            if old["settings"] == asdict(settings) and not old["stage1"].get("reused"):
                return old["stage1"]
    return None


def run_fewshot_method(ds: Dataset, train: list, dev: list, test_docs: list, run_dir: Path,
                       seed: int, pairs: int, reuse_encoder: bool = False) -> dict:
    """``spacy-senti fewshot configs/fewshot.cfg`` in-process (``--stage2 auto``, the
    default: frozen encoder + SetFit's head, or end-to-end fine-tuning from the tuned
    encoder, whichever scores better on dev); its ``model-best`` scored on test, and each
    candidate too."""
    blank = spacy.blank("en")
    train_path = docbin(train, ds.head, run_dir / "train.spacy", blank)
    dev_path = docbin(dev, ds.head, run_dir / "dev.spacy", blank)
    settings = ContrastiveSettings(pairs_per_example=pairs, seed=seed)
    out = run_dir / "fewshot"
    old = earlier_stage1(out, settings) if reuse_encoder else None
    start = time.perf_counter()
    summary = run_fewshot(FEWSHOT_CONFIG, train_path, dev_path, out, settings=settings,
                          progress=False, stage2="auto",
                          encoder=out / "encoder" if old else None)
    seconds = time.perf_counter() - start
    stage1 = old or summary["stage1"]
    (out / STAGE1_FILE).write_text(json.dumps({"settings": summary["settings"],
                                               "stage1": stage1}, indent=1))
    s2 = summary["stage2"]
    candidates = {name: {"macro_f1": test_macro_f1(out / "candidates" / name / "model-best",
                                                   test_docs),
                         "dev_score": info["dev_score"], "seconds": info["seconds"]}
                  for name, info in s2["candidates"].items()}
    result = {"macro_f1": test_macro_f1(out / "model-best", test_docs),
              "seconds": seconds + (old["seconds"] if old else 0.0),
              "stage1_seconds": stage1["seconds"], "stage2_seconds": s2["seconds"],
              "pairs": stage1["pairs"], "chosen": s2["chosen"], "candidates": candidates}
    if old:
        result["stage1_reused"] = True
    return {"fewshot": result}


def setfit_available() -> str | None:
    """None when the setfit library imports, else why not."""
    try:
        import setfit  # noqa: F401
    except Exception as err:  # ImportError, or a dependency that fails to import
        return f"{type(err).__name__}: {err}"
    return None


def run_setfit(ds: Dataset, train: list, test_docs: list, run_dir: Path, seed: int,
               pairs: int) -> dict:
    """setfit's SetFitModel over the same MiniLM body; num_iterations = R as fewshot's."""
    from datasets import Dataset as HFDataset
    from setfit import SetFitModel, Trainer, TrainingArguments

    start = time.perf_counter()
    labels = sorted({ex.labels[0] for ex in train})
    model = SetFitModel.from_pretrained(resolve_backbone("default"), labels=labels,
                                        device="cpu")
    data = HFDataset.from_dict({"text": [ex.text for ex in train],
                                "label": [ex.labels[0] for ex in train]})
    args = TrainingArguments(output_dir=str(run_dir / "setfit"), batch_size=16, num_epochs=1,
                             num_iterations=pairs, seed=seed, report_to="none",
                             show_progress_bar=False, save_strategy="no")
    Trainer(model=model, args=args, train_dataset=data).train()
    pred = [str(p) for p in model.predict([d.text for d in test_docs], batch_size=64)]
    gold = [max(d.cats, key=d.cats.get).split("/", 1)[1] for d in test_docs]
    return {"setfit": {"macro_f1": macro_f1(gold, pred, labels),
                       "seconds": time.perf_counter() - start}}


# --- report ----------------------------------------------------------------------------------
def stats(values: list[float]) -> tuple[float, float]:
    arr = np.asarray(values, dtype=float)
    return float(arr.mean()), float(arr.std(ddof=1)) if len(arr) > 1 else 0.0


def cell(runs: list[dict], method: str, key: str = "macro_f1") -> str:
    values = [r[method][key] for r in runs if method in r]
    if not values:
        return "–"
    mean, std = stats(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f}" if key == "macro_f1" else f"{mean:.0f}"


def summary_table(results: dict, methods: list[str]) -> list[str]:
    lines = ["| dataset | N / class | seeds | " + " | ".join(LABELS[m] for m in methods)
             + " | fewshot − plain | fewshot − setfit |",
             "|---|---:|---:|" + "---:|" * len(methods) + "---:|---:|"]
    for key, per_n in results.items():
        for n, runs in sorted(per_n.items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {TITLES[key]} | {n} | {len(runs)} | "
                         + " | ".join(cell(runs, m) for m in methods)
                         + f" | {gap(runs, 'fewshot', 'plain')} | "
                         f"{gap(runs, 'fewshot', 'setfit')} |")
    return lines


def gap(runs: list[dict], a: str, b: str) -> str:
    pairs = [(r[a]["macro_f1"], r[b]["macro_f1"]) for r in runs if a in r and b in r]
    if not pairs:
        return "–"
    return f"{100 * np.mean([x - y for x, y in pairs]):+.1f}"


def stage2_table(results: dict) -> list[str]:
    """fewshot's two stage-2 candidates on test, and how often dev chose end-to-end."""
    lines = ["| dataset | N / class | seeds | frozen + SetFit head | end-to-end | chosen on dev "
             "(fewshot) | end-to-end chosen |", "|---|---:|---:|---:|---:|---:|---:|"]
    for key, per_n in results.items():
        for n, runs in sorted(per_n.items(), key=lambda kv: int(kv[0])):
            runs = [r for r in runs if "candidates" in r.get("fewshot", {})]
            if not runs:
                continue
            parts = {name: [{"c": r["fewshot"]["candidates"][name]} for r in runs]
                     for name in ("frozen", "end-to-end")}
            chosen = sum(r["fewshot"]["chosen"] == "end-to-end" for r in runs)
            lines.append(f"| {TITLES[key]} | {n} | {len(runs)} | {cell(parts['frozen'], 'c')} "
                         f"| {cell(parts['end-to-end'], 'c')} | {cell(runs, 'fewshot')} | "
                         f"{chosen} / {len(runs)} |")
    return lines if len(lines) > 2 else []


def time_table(results: dict, methods: list[str]) -> list[str]:
    """Wall seconds per method (CPU seconds of the process in brackets)."""
    lines = ["| dataset | N / class | " + " | ".join(f"{m} s" for m in methods)
             + " | fewshot stage 1 s | fewshot stage 2 s |",
             "|---|---:|" + "---:|" * len(methods) + "---:|---:|"]
    for key, per_n in results.items():
        for n, runs in sorted(per_n.items(), key=lambda kv: int(kv[0])):
            lines.append(f"| {TITLES[key]} | {n} | "
                         + " | ".join(f"{cell(runs, m, 'seconds')} "
                                      f"({cell(runs, m, 'cpu_seconds')})" for m in methods)
                         + f" | {cell(runs, 'fewshot', 'stage1_seconds')} | "
                         f"{cell(runs, 'fewshot', 'stage2_seconds')} |")
    return lines


def targets(results: dict) -> list[str]:
    """The issue's targets, on what was run (averages over the datasets run)."""
    lines = ["## Targets (macro-F1 points, means over seeds, then over the datasets run)", ""]
    sizes = sorted({int(n) for per_n in results.values() for n in per_n})

    def mean_gap(n: int, a: str, b: str) -> float | None:
        gaps = []
        for per_n in results.values():
            runs = per_n.get(str(n)) or per_n.get(n) or []
            pairs = [(r[a]["macro_f1"], r[b]["macro_f1"]) for r in runs if a in r and b in r]
            if pairs:
                gaps.append(np.mean([x - y for x, y in pairs]))
        return 100 * float(np.mean(gaps)) if gaps else None

    def line(text: str, value: float | None, bound: float) -> str:
        if value is None:
            return f"- {text}: not run"
        ok = "met" if value >= bound else "not met"
        return f"- {text}: {value:+.1f} (target ≥ {bound:+.1f}): **{ok}**"

    if 8 in sizes:
        lines.append(line("N = 8: fewshot − plain", mean_gap(8, "fewshot", "plain"), 10.0))
    for n in sizes:
        lines.append(line(f"N = {n}: fewshot − setfit", mean_gap(n, "fewshot", "setfit"), -1.0))
    if 64 in sizes:
        lines.append(line("N = 64: fewshot − plain", mean_gap(64, "fewshot", "plain"), 0.0))
        lines.append(line("N = 64: fewshot − hybrid", mean_gap(64, "fewshot", "hybrid"), 0.0))
    sst2 = [r["fewshot"] for r in results.get("sst2", {}).get("8", []) if "fewshot" in r]
    if sst2:
        wall = float(np.mean([r["seconds"] for r in sst2])) / 60
        lines.append(f"- SST-2, N = 8: fewshot wall time, both stages: {wall:.1f} min (target ≤ "
                     f"5 min on 2 CPU cores; see the load average above): "
                     f"**{'met' if wall <= 5 else 'not met'}**")
    n_datasets = len(results)
    if n_datasets < 4:
        lines.append(f"- Only {n_datasets} of the 4 datasets run: the averages are not the "
                     "issue's.")
    return lines + [""]


def plot(results: dict, methods: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results)
    fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        per_n = results[key]
        sizes = sorted(int(n) for n in per_n)
        for method in methods:
            xs, ys, es = [], [], []
            for n in sizes:
                values = [r[method]["macro_f1"] for r in per_n[str(n)] if method in r]
                if values:
                    mean, std = stats(values)
                    xs.append(n)
                    ys.append(100 * mean)
                    es.append(100 * std)
            if xs:
                ax.errorbar(xs, ys, yerr=es, marker="o", capsize=3, label=LABELS[method])
        ax.set_xscale("log", base=2)
        ax.set_xticks(sizes, [str(n) for n in sizes])
        ax.set_title(TITLES[key])
        ax.set_xlabel("labelled docs per class")
        ax.set_ylabel("test macro-F1 (%)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(out: Path, top: list[str], args_line: str, results: dict, methods: list[str],
                 wall: float, notes: list[str]) -> None:
    png = out.with_suffix(".png")
    if any(results.values()):
        plot(results, methods, png)
    lines = [
        "# Few labels: plain fine-tuning vs `senti_hybrid` vs setfit vs `spacy-senti fewshot`",
        "",
        *top,
        f"- Run time: {wall / 60:.1f} min wall; load average when this file was written: "
        f"{load()}",
        f"- Settings: {args_line}",
        "- Same samples for every method: N training docs per class drawn per seed (nested "
        "over N); dev = another N per class, used by plain (best epoch) and the hybrid "
        "(stacker), fewshot to choose its stage 2 (`--stage2 auto`); setfit has no "
        "selection. Plain: `configs/sentiment.cfg`, batch 16, LR 1e-4 warmup-linear, "
        "20 / 8 / 4 epochs for ≤ 100 / ≤ 400 / more docs. Fewshot: `configs/fewshot.cfg`, "
        "stage 2 `auto` (the CLI's default) trains two candidates from the stage-1 encoder "
        "and keeps end-to-end only when its `model-last` beats frozen's on dev by more than "
        "one standard error (paired bootstrap), else frozen: *frozen* (`spacy "
        "train` over the frozen encoder, 300 steps, unit-length pooled features, then "
        "`--head-fit logistic`, the default, refits the head as SetFit's: scikit-learn "
        "logistic regression, C = 1) and *end-to-end* (plain's recipe above from the "
        "tuned encoder); `model-best` is scored. setfit: "
        "SetFitModel + logistic regression, batch 16, 1 epoch, body LR 2e-5 (its defaults) "
        "and num_iterations = R, the pairs budget fewshot uses (R per N in the settings).",
        *[f"- {note}" for note in notes],
        "",
        *targets(results),
        "## Macro-F1 on the test splits (%, mean ± std over seeds)",
        "",
        *summary_table(results, methods),
        "",
        f"![few-label curves]({png.name})",
        "",
        *(["## fewshot's stage 2: the two candidates on test (macro-F1 %, mean ± std)", "",
           *stage2_table(results), ""] if stage2_table(results) else []),
        "## Time per run (s, mean over seeds: wall (CPU of the process, all threads); fewshot: "
        "both stages, then each stage's wall time; hybrid includes plain's training)",
        "",
        *time_table(results, methods),
        "",
    ]
    out.write_text("\n".join(lines) + "\n", encoding="utf8")


def pairs_per_size(spec: str, sizes: list[int]) -> dict[int, int]:
    """R per N from ``"20"`` (every N) or ``"8:20,16:10,64:5"``."""
    if ":" not in spec:
        return {n: int(spec) for n in sizes}
    table = {int(n): int(r) for n, r in (item.split(":") for item in spec.split(","))}
    missing = [n for n in sizes if n not in table]
    if missing:
        raise SystemExit(f"--pairs-per-example gives no R for N = {missing}")
    return {n: table[n] for n in sizes}


def merge_runs(paths: list[Path], out: Path, extra_notes: list[str] = ()) -> None:
    """One report from several runs' json files: their runs side by side (a (dataset, N,
    seed) run twice is an error), each part's header and settings listed."""
    parts = [json.loads(p.read_text()) for p in paths]
    results: dict[str, dict[str, list]] = {}
    seen: set[tuple] = set()
    for path, part in zip(paths, parts):
        for key, per_n in part["results"].items():
            for n, runs in per_n.items():
                for run in runs:
                    ident = (key, n, run["seed"])
                    if ident in seen:
                        raise SystemExit(f"{path}: {key} N={n} seed {run['seed']} is in two "
                                         "of the merged files")
                    seen.add(ident)
                    results.setdefault(key, {}).setdefault(n, []).append(run)
    order = [k for k in TITLES if k in results]
    results = {k: dict(sorted(results[k].items(), key=lambda kv: int(kv[0]))) for k in order}
    methods = [m for m in METHODS if any(m in p["methods"] for p in parts)]
    top = [f"- Merged from {len(parts)} runs (`python bench/bench_fewshot.py --merge "
           f"{' '.join(shown(p) for p in paths)}`); each run's header:", ""]
    for path, part in zip(paths, parts):
        top += [f"### {shown(path)}", "", *part["header"],
                f"- Settings: {part['settings']}",
                f"- Run time: {part['wall'] / 60:.1f} min wall", ""]
    notes = sorted({note for part in parts for note in part["notes"]}) + list(extra_notes)
    settings = "; ".join(f"{shown(p)}: {part['settings']}" for p, part in zip(paths, parts))
    wall = sum(part["wall"] for part in parts)
    write_report(out, top, settings, results, methods, wall, notes)
    out.with_suffix(".json").write_text(json.dumps(
        {"header": top, "settings": settings, "results": results, "methods": methods,
         "wall": wall, "notes": notes}, indent=1))


def shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return str(path)


# --- main ------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", default="sst2,carer,fpb,tweeteval")
    parser.add_argument("--n", default="8,16,64", help="labelled docs per class")
    parser.add_argument("--seeds", default="0,1,2,3,4")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--test-size", type=int, default=0,
                        help="stratified test subset (same for all runs); 0: the whole split")
    parser.add_argument("--pairs-per-example", default="20",
                        help="R for every N, or per N: '8:20,16:10,64:5'")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/spacy_senti_fewshot"))
    parser.add_argument("--out", type=Path, default=RESULTS / "fewshot.md")
    parser.add_argument("--from-json", type=Path, default=None,
                        help="re-render the report from a run's fewshot.json (no training)")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="write one report (--out) from several runs' json files")
    parser.add_argument("--reuse-encoders", action="store_true",
                        help="train fewshot's stage 2 from the stage-1 encoder an earlier run "
                        "left in --work (same sample, seed and stage-1 settings)")
    parser.add_argument("--reuse", type=Path, default=None,
                        help="an earlier run's json: --reuse-methods' results for the same "
                        "(dataset, N, seed, sample size) are copied from it, not rerun")
    parser.add_argument("--reuse-methods", default="setfit")
    parser.add_argument("--note", action="append", default=[],
                        help="with --merge: a line added to the report's notes")
    args = parser.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    unknown = set(methods) - set(METHODS)
    if unknown:
        raise SystemExit(f"unknown methods {sorted(unknown)}; use {', '.join(METHODS)}")
    json_path = args.out.with_suffix(".json")
    if args.merge:
        merge_runs(args.merge, args.out, args.note)
        print(f"wrote {args.out}")
        return
    if args.from_json:
        saved = json.loads(args.from_json.read_text())
        write_report(args.out, saved["header"], saved["settings"], saved["results"],
                     saved["methods"], saved["wall"], saved["notes"])
        print(f"wrote {args.out}")
        return
    torch.set_num_threads(args.threads)
    logging.getLogger("setfit").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore")
    sizes = sorted(int(n) for n in args.n.split(","))
    seeds = [int(s) for s in args.seeds.split(",")]
    pairs_r = pairs_per_size(args.pairs_per_example, sizes)
    notes: list[str] = []
    if "setfit" in methods:
        why = setfit_available()
        if why is not None:
            methods.remove("setfit")
            notes.append(f"setfit library not run: it does not import here ({why}).")
    command = command_line()
    top = header(command, seeds=seeds, extra=[f"Torch threads: {args.threads}"],
                 packages=("spacy", "spacy-transformers", "torch", "transformers",
                           "sentence-transformers", "setfit", "spacy-senti"))
    settings = (f"datasets {args.datasets}; N per class {sizes}; seeds {seeds}; "
                f"R = {', '.join(f'{r} at N = {n}' for n, r in pairs_r.items())} pairs per "
                "example; test size "
                f"{args.test_size or 'whole split'}")
    reused_runs: dict[tuple, dict] = {}
    reuse_methods = [m for m in args.reuse_methods.split(",") if m]
    if args.reuse:
        earlier = json.loads(args.reuse.read_text())
        reused_runs = {(key, n, run["seed"]): run for key, per_n in earlier["results"].items()
                       for n, runs in per_n.items() for run in runs}
        notes.append(f"{', '.join(reuse_methods)} results copied from {shown(args.reuse)} "
                     "(same samples and seeds), not rerun.")
    if args.reuse_encoders:
        notes.append("fewshot's stage 1 reused from the encoders an earlier run left in "
                     "--work (same samples, seeds and stage-1 settings): its wall time in "
                     "the tables is that run's stage 1 plus this run's stage 2; CPU seconds "
                     "are this run's only.")
    results: dict[str, dict[str, list]] = {}
    started = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    for key in args.datasets.split(","):
        ds = load_dataset(key)
        test = ds.test
        if args.test_size and args.test_size < len(test):
            idx = stratified_sample([ex.labels[0] for ex in test], args.test_size, 0)
            test = [test[i] for i in idx]
        test_docs = lowdata.gold_docs(test, ds.head, spacy.blank("en"))
        results[key] = {str(n): [] for n in sizes}
        for seed in seeds:
            trains, devs = per_class_samples(ds.pool, sizes, seed)
            for n in sizes:
                run_dir = args.work / key / f"n{n}" / f"seed{seed}"
                run_dir.mkdir(parents=True, exist_ok=True)
                run: dict = {"seed": seed, "n_train": len(trains[n]), "n_test": len(test),
                             "pairs_per_example": pairs_r[n]}
                earlier = reused_runs.get((key, str(n), seed))
                if earlier is not None and earlier["n_train"] == run["n_train"]:
                    run.update({m: earlier[m] for m in reuse_methods if m in earlier})
                if {"plain", "hybrid"} & set(methods) - set(run):
                    run.update(timed(run_plain_hybrid, ds, trains[n], devs[n], test_docs,
                                     run_dir, seed))
                if "setfit" in methods and "setfit" not in run:
                    run.update(timed(run_setfit, ds, trains[n], test_docs, run_dir, seed,
                                     pairs_r[n]))
                if "fewshot" in methods:
                    run.update(timed(run_fewshot_method, ds, trains[n], devs[n], test_docs,
                                     run_dir, seed, pairs_r[n], args.reuse_encoders))
                results[key][str(n)].append(run)
                tqdm.write(f"{key} N={n} seed={seed}: " + json.dumps(
                    {m: {k: round(v, 4) if isinstance(v, float) else v
                         for k, v in r.items() if k != "candidates"}
                     for m, r in run.items() if isinstance(r, dict)}))
                wall = time.perf_counter() - started
                write_report(args.out, top, settings, results, methods, wall, notes)
                json_path.write_text(json.dumps(
                    {"header": top, "settings": settings, "results": results,
                     "methods": methods, "wall": wall, "notes": notes}, indent=1))
    print(f"wrote {args.out} ({(time.perf_counter() - started) / 60:.1f} min)",
          file=sys.stderr)


if __name__ == "__main__":
    main()
