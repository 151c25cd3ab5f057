"""Speed of spacy-senti against raw Hugging Face on the same sentences and backbone.

    python bench/bench_speed.py [--n 2000] [--rounds 2] [--train-steps 20] [--threads 2]

Inference: raw ``AutoModelForSequenceClassification`` (torch.inference_mode, batch 64) vs
``nlp.pipe(batch_size=64)`` with one head (sentiment) and with three heads (sentiment,
emotion, aspect) over one encoder pass; also three heads with ``nlp.pipe(batch_size=256)``
(spacy-transformers sorts each outer batch by spaCy token count into padded sub-batches)
and, for fairness, raw HF given the same length sorting by hand (all texts sorted by
wordpiece count, batches of 64). The rows "senti_transformer" swap the configs' stock
``transformer`` factory for spacy-senti's ``senti_transformer`` (same model and outputs; its
``nlp.pipe`` sorts a buffer of ``nlp.batch_size`` docs by estimated wordpiece count and cuts
sub-batches of at most ``--senti-max-items`` (2048) padded wordpieces), with ``nlp.pipe``'s
buffer at the config's ``[nlp] batch_size`` (1024) and at all docs (the same global sort as
the hand-sorted HF loop). Training: docs/s of spaCy's update loop (what ``spacy train``
runs) vs a plain PyTorch loop over the HF model (what HF's Trainer runs), same batch size
(32), max length 128 wordpieces, AdamW/Adam.
The configs' ``max_batch_items`` (1024) sets how finely spacy-transformers sub-batches by
length (spaCy tokens for ``transformer``, wordpieces for ``senti_transformer``).
Each backend runs in its own subprocess (so its peak RSS is its own); the backends
alternate over ``--rounds`` rounds and the best docs/s is kept; each row also gives its
docs per CPU-second of the process (less sensitive than wall time to other load on a shared
machine). Weights are untrained: speed does not depend on them. Writes
bench/results/speed.md. About 8-10 minutes on 2 quiet cores with the defaults (18 runs).

    python bench/bench_speed.py --train [--train-docs 1600] [--train-rounds 3]
        [--quality-steps 200] [--quality-seeds 0 1]

Training with length-bucketed batches (issue 14.1), written to bench/results/speed_train.md:
the shape of each batcher's batches over an SST-2 train epoch (steps, docs per step, share of
real wordpieces); docs/s of the spaCy update loop over the same SST-2 train docs with today's
``spacy.batch_by_sequence.v1`` and with the configs' ``[training.batcher]``
(``spacy_senti.batch_by_length.v1`` by wordpieces), and of a plain PyTorch loop (AutoModel +
mean pooling + Linear, AdamW) ordered by transformers' ``group_by_length`` sampling, each run
in its own process, interleaved; then SST-2 dev accuracy of ``spacy train`` at equal steps
with the old and the new batcher, same seeds.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

from _common import header, load
from thinc.api import Config

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
OUT = REPO / "bench" / "results" / "speed.md"
BACKENDS = [
    "hf_infer", "hf_infer_sorted", "spacy_1head", "spacy_3heads", "spacy_3heads_b256",
    "senti_3heads", "senti_3heads_all", "senti_3heads_aspects", "hf_train", "spacy_train",
]
MAX_LEN = 128
# nlp.pipe's buffer in the senti_transformer row: the config's [nlp] batch_size
SENTI_BUFFER = int(Config().from_disk(REPO / "configs" / "multitask.cfg")["nlp"]["batch_size"])
TARGET = 0.9  # senti_3heads / hf_infer_sorted
ASPECTS_TARGET = 0.85  # senti_3heads_aspects / senti_3heads (issue 15)


def load_sentences(n: int) -> list[str]:
    """SST-2 dev sentences, then TweetEval sentiment val tweets, up to ``n``."""
    texts = []
    with open(DATA / "sst2" / "dev.tsv", encoding="utf8") as f:
        next(f)
        texts += [line.rsplit("\t", 1)[0] for line in f if line.strip()]
    with open(DATA / "tweeteval" / "sentiment" / "val_text.txt", encoding="utf8") as f:
        texts += [line.strip() for line in f if line.strip()]
    return texts[:n]


def build_nlp(heads: list[str], texts: list[str], factory: str | None = None,
              aspects: bool = False):
    """A MiniLM pipeline from configs/ with the given heads, initialised on dummy labels;
    ``factory`` replaces the transformer component's factory (e.g. ``senti_transformer``);
    ``aspects`` keeps the config's senti_aspects (aspect terms) listening to the same pass."""
    import spacy
    from spacy.tokens import Span, SpanGroup
    from spacy.training import Example
    from thinc.api import Config

    import spacy_senti.components.transformer  # noqa: F401  (registers senti_transformer)

    config = Config().from_disk(REPO / "configs" / "multitask.cfg")
    if not aspects:
        config["nlp"]["pipeline"] = [p for p in config["nlp"]["pipeline"] if p != "senti_aspects"]
    if factory:
        config["components"]["transformer"]["factory"] = factory
    config["components"]["senti_textcat"]["heads"] = {
        k: v for k, v in config["components"]["senti_textcat"]["heads"].items() if k in heads
    }
    nlp = spacy.util.load_model_from_config(config, auto_fill=True)
    cats = {
        "sentiment": {"sentiment/negative": 1.0, "sentiment/positive": 0.0},
        "emotion": {f"emotion/{e}": float(i == 0) for i, e in enumerate(
            ["admiration", "anger", "joy", "sadness", "fear", "surprise", "neutral"])},
        "aspect": {f"aspect/{g}/{p}": float(p == "absent") for g in
                   ["food", "service", "price", "ambience", "anecdotes"]
                   for p in ["absent", "negative", "neutral", "positive", "conflict"]},
    }
    gold = {k: v for h in heads for k, v in cats[h].items()}
    examples = [Example.from_dict(nlp.make_doc(t), {"cats": gold}) for t in texts[:32]]
    if aspects:  # one dummy term per doc, two polarities: sizes the tagger and its head
        for i, eg in enumerate(examples):
            ref = eg.reference
            ref.spans["aspects"] = SpanGroup(ref, name="aspects", spans=[
                Span(ref, 0, 1, label=("positive", "negative")[i % 2])])
    nlp.initialize(lambda: examples)
    return nlp, examples


def hf_model():
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from spacy_senti.backbone import resolve_backbone

    path = resolve_backbone("default")
    return AutoTokenizer.from_pretrained(path), AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=2
    )


def run_backend(name: str, n: int, steps: int, senti_max_items: int | None = None) -> dict:
    """Measure one backend in this process; returns docs/s and peak RSS."""
    import torch

    texts = load_sentences(n)
    start = None
    cpu0 = 0.0
    if name in ("hf_infer", "hf_infer_sorted"):
        tok, model = hf_model()
        model.eval()
        start, cpu0 = time.perf_counter(), _cpu()
        with torch.inference_mode():
            if name == "hf_infer":
                batches = [texts[i : i + 64] for i in range(0, len(texts), 64)]
            else:  # sort by length so each batch of 64 pads little (order restored after)
                lengths = [len(ids) for ids in tok(texts, truncation=True,
                                                   max_length=MAX_LEN)["input_ids"]]
                order = sorted(range(len(texts)), key=lengths.__getitem__)
                batches = [[texts[j] for j in order[i : i + 64]]
                           for i in range(0, len(texts), 64)]
            for batch in batches:
                enc = tok(batch, padding=True, truncation=True, max_length=MAX_LEN,
                          return_tensors="pt")
                model(**enc).logits.softmax(-1)
        done = len(texts)
    elif name in ("spacy_1head", "spacy_3heads", "spacy_3heads_b256"):
        heads = ["sentiment"] if name == "spacy_1head" else ["sentiment", "emotion", "aspect"]
        nlp, _ = build_nlp(heads, texts)
        start, cpu0 = time.perf_counter(), _cpu()
        # spacy-transformers sorts each nlp.pipe batch by length into padded sub-batches
        # (max_batch_items); a larger outer batch gives it more to sort.
        batch_size = 256 if name.endswith("b256") else 64
        done = sum(1 for _ in nlp.pipe(texts, batch_size=batch_size))
    elif name in ("senti_3heads", "senti_3heads_all", "senti_3heads_aspects"):
        nlp, _ = build_nlp(["sentiment", "emotion", "aspect"], texts, "senti_transformer",
                           aspects=name.endswith("aspects"))
        if senti_max_items:
            nlp.get_pipe("transformer").cfg["max_batch_items"] = senti_max_items
        start, cpu0 = time.perf_counter(), _cpu()
        batch_size = SENTI_BUFFER if name == "senti_3heads" else len(texts)
        done = sum(1 for _ in nlp.pipe(texts, batch_size=batch_size))
    elif name == "hf_train":
        tok, model = hf_model()
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=5e-5)
        batches = [texts[i : i + 32] for i in range(0, 32 * (steps + 2), 32)]
        for j, batch in enumerate(batches):
            if j == 2:
                start, cpu0 = time.perf_counter(), _cpu()
            enc = tok(batch, padding=True, truncation=True, max_length=MAX_LEN,
                      return_tensors="pt")
            loss = model(**enc, labels=torch.zeros(len(batch), dtype=torch.long)).loss
            loss.backward()
            opt.step()
            opt.zero_grad()
        done = 32 * steps
    elif name == "spacy_train":
        from spacy.training import Example

        nlp, _ = build_nlp(["sentiment"], texts)
        optimizer = nlp.resume_training()
        gold = {"sentiment/negative": 1.0, "sentiment/positive": 0.0}
        examples = [Example.from_dict(nlp.make_doc(t), {"cats": gold})
                    for t in texts[: 32 * (steps + 2)]]
        for j in range(steps + 2):
            if j == 2:
                start, cpu0 = time.perf_counter(), _cpu()
            nlp.update(examples[32 * j : 32 * (j + 1)], sgd=optimizer, drop=0.1)
        done = 32 * steps
    else:
        raise ValueError(name)
    seconds = time.perf_counter() - start
    cpu_s = _cpu() - cpu0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"docs_per_s": done / seconds, "seconds": seconds, "cpu_s": cpu_s,
            "docs_per_cpu_s": done / cpu_s, "peak_rss_mb": rss_mb}


def _cpu() -> float:
    """User + system CPU seconds of this process (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure(args, backends: list[str] = BACKENDS) -> dict[str, dict]:
    from tqdm import tqdm

    best: dict[str, dict] = {}
    jobs = [(r, b) for r in range(args.rounds) for b in backends]
    for _, backend in tqdm(jobs, desc="backends", unit="run"):
        cmd = [sys.executable, __file__, "--one", backend, "--n", str(args.n),
               "--train-steps", str(args.train_steps), "--threads", str(args.threads)]
        if args.senti_max_items:
            cmd += ["--senti-max-items", str(args.senti_max_items)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=REPO)
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if backend not in best or result["docs_per_s"] > best[backend]["docs_per_s"]:
            best[backend] = result
    return best


def run_header(args) -> list[str]:
    return header(f"python bench/bench_speed.py --n {args.n} --rounds {args.rounds} "
                  f"--train-steps {args.train_steps} --threads {args.threads} "
                  f"--senti-max-items {args.senti_max_items}",
                  extra=[f"Torch threads: {args.threads}"])


def write_table(best: dict[str, dict], args, top: list[str]) -> None:
    infer, train = best["hf_infer"]["docs_per_s"], best["hf_train"]["docs_per_s"]
    rows = [
        ("inference", "raw HF AutoModelForSequenceClassification, 1 head", "hf_infer", infer),
        ("inference", "spacy-senti nlp.pipe, 1 head (sentiment)", "spacy_1head", infer),
        ("inference", "spacy-senti nlp.pipe, 3 heads (sentiment+emotion+aspect)",
         "spacy_3heads", infer),
        ("inference", "spacy-senti nlp.pipe, 3 heads, batch_size 256 (length-sorted sub-batches)",
         "spacy_3heads_b256", infer),
        ("inference", "raw HF, 1 head, texts sorted by length into batches of 64",
         "hf_infer_sorted", infer),
        ("inference", f"spacy-senti nlp.pipe, 3 heads, senti_transformer, batch_size "
         f"{SENTI_BUFFER} (wordpiece-sorted sub-batches)", "senti_3heads", infer),
        ("inference", "spacy-senti nlp.pipe, 3 heads, senti_transformer, batch_size = all "
         "texts (the hand-sorted loop's global sort)", "senti_3heads_all", infer),
        ("inference", f"spacy-senti nlp.pipe, 3 heads + senti_aspects (aspect terms), "
         f"senti_transformer, batch_size {SENTI_BUFFER}", "senti_3heads_aspects", infer),
        ("training", "plain PyTorch loop over the HF model (AdamW)", "hf_train", train),
        ("training", "spaCy update loop (spacy train), 1 head", "spacy_train", train),
    ]
    lines = [
        "# Speed: spacy-senti vs raw Hugging Face (all-MiniLM-L6-v2)",
        "",
        *top,
        "",
        f"{args.n} real sentences (SST-2 dev, then TweetEval sentiment val), batch 64 for "
        f"inference; {args.train_steps} timed training steps of batch 32 after 2 warm-up steps; "
        f"max length {MAX_LEN} wordpieces. Best of {args.rounds} alternating rounds, each backend "
        "in its own process. docs/CPU-s: docs per CPU-second of the process (all threads), "
        "steadier than docs/s when other work shares the machine.",
        "",
        "| task | backend | docs/s | ratio to raw HF | docs/CPU-s | ratio to raw HF (CPU) "
        "| peak RSS (MB) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for task, label, key, base in rows:
        r = best[key]
        base_key = "hf_infer" if task == "inference" else "hf_train"
        cpu_base = best[base_key]["docs_per_cpu_s"]
        lines.append(f"| {task} | {label} | {r['docs_per_s']:.1f} | "
                     f"{r['docs_per_s'] / base:.2f}x | {r['docs_per_cpu_s']:.1f} | "
                     f"{r['docs_per_cpu_s'] / cpu_base:.2f}x | {r['peak_rss_mb']:.0f} |")
    sorted_hf = best["hf_infer_sorted"]
    three = best["spacy_3heads"]["docs_per_s"] / infer
    three_b = best["spacy_3heads_b256"]["docs_per_s"] / infer
    three_s = best["spacy_3heads_b256"]["docs_per_s"] / sorted_hf["docs_per_s"]
    senti = best["senti_3heads"]["docs_per_s"] / sorted_hf["docs_per_s"]
    senti_all = best["senti_3heads_all"]["docs_per_s"] / sorted_hf["docs_per_s"]
    senti_cpu = best["senti_3heads"]["docs_per_cpu_s"] / sorted_hf["docs_per_cpu_s"]
    tr = best["spacy_train"]["docs_per_s"] / train
    aspects = best["senti_3heads_aspects"]["docs_per_s"] / best["senti_3heads"]["docs_per_s"]
    aspects_cpu = (best["senti_3heads_aspects"]["docs_per_cpu_s"]
                   / best["senti_3heads"]["docs_per_cpu_s"])
    lines += [
        "",
        f"Targets: three-head spacy-senti >= 1.0x raw HF single-head (batch 64): at the same "
        f"batch of 64 {'met' if three >= 1.0 else 'NOT met'} ({three:.2f}x); with nlp.pipe "
        f"batch_size 256 {'met' if three_b >= 1.0 else 'NOT met'} ({three_b:.2f}x). "
        f"Three heads >= {TARGET}x raw HF given the same length sorting by hand (issue 18.1): "
        f"{'met' if senti >= TARGET else 'NOT met'} with senti_transformer, batch_size "
        f"{SENTI_BUFFER} ({senti:.2f}x; {senti_cpu:.2f}x per CPU-second; {senti_all:.2f}x with "
        f"the same global sort); the stock transformer at batch_size 256: {three_s:.2f}x. "
        f"spacy train >= 0.9x the HF loop: {'met' if tr >= 0.9 else 'NOT met'} ({tr:.2f}x).",
        "",
        f"Aspect terms (issue 15): senti_textcat + senti_aspects on one encoder pass >= "
        f"{ASPECTS_TARGET}x senti_textcat alone: "
        f"{'met' if aspects >= ASPECTS_TARGET else 'NOT met'} ({aspects:.2f}x; "
        f"{aspects_cpu:.2f}x per CPU-second).",
        "",
    ]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text("\n".join(lines), encoding="utf8")
    print("\n".join(lines))


ASPECTS_PAIR = ("senti_3heads", "senti_3heads_aspects")
ASPECTS_OUT = OUT.with_name("speed_aspects.md")


def write_aspects_table(best: dict[str, dict], args) -> None:
    """The cost of senti_aspects beside senti_textcat on one encoder pass (issue 15)."""
    base, with_terms = (best[k] for k in ASPECTS_PAIR)
    ratio = with_terms["docs_per_s"] / base["docs_per_s"]
    ratio_cpu = with_terms["docs_per_cpu_s"] / base["docs_per_cpu_s"]
    command = (f"python bench/bench_speed.py --aspects-only --n {args.n} --rounds {args.rounds} "
               f"--threads {args.threads} --senti-max-items {args.senti_max_items}")
    lines = [
        "# Speed: aspect terms (senti_aspects) beside senti_textcat, one encoder pass",
        "",
        *header(command, extra=[f"Torch threads: {args.threads}"]),
        "",
        f"{args.n} real sentences (SST-2 dev, then TweetEval sentiment val); nlp.pipe with "
        f"senti_transformer, batch_size {SENTI_BUFFER}; three senti_textcat heads (sentiment, "
        "emotion, aspect categories), alone and with senti_aspects listening to the same "
        f"transformer pass. Best of {args.rounds} alternating rounds, each in its own process; "
        "untrained weights (speed does not depend on them).",
        "",
        "| pipeline | docs/s | docs/CPU-s | peak RSS (MB) |",
        "|---|---:|---:|---:|",
        f"| transformer + senti_textcat (3 heads) | {base['docs_per_s']:.1f} | "
        f"{base['docs_per_cpu_s']:.1f} | {base['peak_rss_mb']:.0f} |",
        f"| transformer + senti_textcat (3 heads) + senti_aspects | "
        f"{with_terms['docs_per_s']:.1f} | {with_terms['docs_per_cpu_s']:.1f} | "
        f"{with_terms['peak_rss_mb']:.0f} |",
        "",
        f"Target >= {ASPECTS_TARGET}x the docs/s of senti_textcat alone: "
        f"{'met' if ratio >= ASPECTS_TARGET else 'NOT met'} ({ratio:.2f}x; {ratio_cpu:.2f}x per "
        "CPU-second). A second encoder would halve it.",
        "",
    ]
    ASPECTS_OUT.write_text("\n".join(lines), encoding="utf8")
    print("\n".join(lines))


# --- training speed: length-bucketed batches (issue 14.1) ---------------------------------

TRAIN_OUT = OUT.with_name("speed_train.md")
TRAIN_CONFIG = REPO / "configs" / "sentiment.cfg"
TRAIN_BATCH = 32
# today's batcher (configs before issue 14): batches of 32 in the shuffled order
OLD_BATCHER = {"@batchers": "spacy.batch_by_sequence.v1", "size": TRAIN_BATCH,
               "get_length": None}
TRAIN_BACKENDS = {
    "train_sequence": "spaCy update loop, spacy.batch_by_sequence.v1 (today's configs)",
    "train_length": "spaCy update loop, the configs' [training.batcher]",
    "train_hf_grouped": "plain PyTorch loop, HF LengthGroupedSampler (group_by_length)",
    # extras (--train-backends): not run by default
    "train_length_tokens": "spaCy update loop, spacy_senti.batch_by_length.v1 by spaCy tokens",
    "train_padded": "spaCy update loop, spacy.batch_by_padded.v1 (size 2000, buffer 256)",
    "train_hf_random": "plain PyTorch loop, random batches (HF's default sampler)",
}
DEFAULT_TRAIN_BACKENDS = ["train_sequence", "train_length", "train_hf_grouped"]
SPEED_TARGET = 1.5  # train_length / train_sequence (docs/s)
HF_TARGET = 1.0  # train_length / train_hf_grouped
WARM_STEPS = 2
HF_MEGABATCH = 50  # transformers' get_length_grouped_indices: at most 50 batches


def load_sst2_train(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """``n`` (text, label) rows drawn at random (``seed``) from SST-2 train."""
    import random

    with open(DATA / "sst2" / "train.tsv", encoding="utf8") as f:
        next(f)
        rows = [line.rstrip("\n").rsplit("\t", 1) for line in f if line.strip()]
    rows = [(text.strip(), int(label)) for text, label in rows]
    return random.Random(seed).sample(rows, n)


def train_config(batcher: dict | None = None):
    """configs/sentiment.cfg, with ``[training.batcher]`` replaced by ``batcher`` if given."""
    config = Config().from_disk(TRAIN_CONFIG, interpolate=False)
    if batcher is not None:
        config["training"]["batcher"] = dict(batcher)
    return config


def backend_batcher(name: str) -> dict | None:
    """The ``[training.batcher]`` block a spaCy training backend runs with."""
    return {
        "train_sequence": OLD_BATCHER,
        "train_length": None,  # the config's own
        "train_length_tokens": {"@batchers": "spacy_senti.batch_by_length.v1",
                                "size": TRAIN_BATCH, "buffer": 50, "get_length": None},
        "train_padded": {"@batchers": "spacy.batch_by_padded.v1", "size": 2000,
                         "buffer": 256, "discard_oversize": False, "get_length": None},
    }[name]


def batcher_label(block: dict) -> str:
    """``spacy_senti.batch_by_length.v1 (size 32, buffer 50, get_length: ...)``."""
    block = dict(block)
    name = block.pop("@batchers")
    get_length = block.pop("get_length", None)
    parts = [f"{k} {v}" for k, v in block.items()]
    if isinstance(get_length, dict):
        parts.append(f"get_length {get_length.get('@misc', get_length)}")
    return f"{name} ({', '.join(parts)})"


def sst2_examples(nlp, rows: list[tuple[str, int]]) -> list:
    from spacy.training import Example

    return [Example.from_dict(nlp.make_doc(text), {"cats": {
        "sentiment/negative": float(label == 0), "sentiment/positive": float(label == 1)}})
        for text, label in rows]


def padding_stats(batches: list[list[str]], tokenizer) -> dict:
    """Docs per batch and the share of real wordpieces in the padded batches."""
    real = padded = 0
    sizes = []
    for texts in batches:
        lengths = [len(ids) for ids in tokenizer(texts, truncation=True,
                                                 max_length=MAX_LEN)["input_ids"]]
        real += sum(lengths)
        padded += max(lengths) * len(lengths)
        sizes.append(len(texts))
    return {"steps": len(batches), "docs_min": min(sizes), "docs_max": max(sizes),
            "docs_mean": sum(sizes) / len(sizes), "real_share": real / padded}


class SpacyTrainer:
    """The spaCy update loop with one ``[training.batcher]`` (what ``spacy train`` steps):
    configs/sentiment.cfg, the config's optimizer and dropout."""

    def __init__(self, name: str, rows: list[tuple[str, int]], warm: list, seed: int) -> None:
        import spacy
        from spacy.util import fix_random_seed, registry

        import spacy_senti.components.transformer  # noqa: F401  (senti_transformer)
        import spacy_senti.training.batchers  # noqa: F401  (spacy_senti.batch_by_length.v1)

        config = train_config(backend_batcher(name)).interpolate()
        fix_random_seed(seed)
        self.nlp = spacy.util.load_model_from_config(config, auto_fill=True)
        self.examples = sst2_examples(self.nlp, rows)
        self.nlp.initialize(lambda: self.examples[:64])
        resolved = registry.resolve({"batcher": config["training"]["batcher"],
                                     "optimizer": config["training"]["optimizer"]})
        self.optimizer, self.batcher = resolved["optimizer"], resolved["batcher"]
        self.dropout = config["training"]["dropout"]
        for batch in warm:
            self.step(sst2_examples(self.nlp, batch))

    def batches(self, order_seed: int) -> list[list]:
        """One epoch's batches: the examples shuffled (as ``spacy train`` does), then the
        batcher, with spaCy's random seed set."""
        import random

        from spacy.util import fix_random_seed

        items = list(self.examples)
        random.Random(order_seed).shuffle(items)
        fix_random_seed(order_seed)
        return list(self.batcher(items))

    def step(self, batch: list) -> None:
        self.nlp.update(batch, drop=self.dropout, sgd=self.optimizer)
        self.optimizer.step_schedules()

    @staticmethod
    def texts(batch: list) -> list[str]:
        return [eg.predicted.text for eg in batch]


class HFTrainer:
    """AutoModel + mean pooling + Linear, AdamW, as HF's Trainer runs it: texts tokenized
    once (the dataset's ``.map``, timed in the first round), the sampler orders them,
    DataCollatorWithPadding pads each batch."""

    def __init__(self, name: str, rows: list[tuple[str, int]], warm: list, seed: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer, DataCollatorWithPadding

        from spacy_senti.backbone import resolve_backbone

        torch.manual_seed(seed)
        path = resolve_backbone("default")
        self.name, self.rows = name, rows
        self.tok = AutoTokenizer.from_pretrained(path)
        self.encoder = AutoModel.from_pretrained(path)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 2)
        self.params = list(self.encoder.parameters()) + list(self.head.parameters())
        self.opt = torch.optim.AdamW(self.params, lr=5e-5, weight_decay=0.01)
        self.collate = DataCollatorWithPadding(self.tok)
        self.encoder.train()
        self.features: list[dict] | None = None
        for batch in warm:
            self._step(self._encode(batch), [label for _, label in batch])

    def _encode(self, rows) -> list[dict]:
        enc = self.tok([t for t, _ in rows], truncation=True, max_length=MAX_LEN)
        return [{"input_ids": ids, "attention_mask": m}
                for ids, m in zip(enc["input_ids"], enc["attention_mask"])]

    def batches(self, order_seed: int) -> list[list[int]]:
        import torch
        from torch.utils.data import RandomSampler
        from transformers.trainer_pt_utils import get_length_grouped_indices

        if self.features is None:
            self.features = self._encode(self.rows)
        generator = torch.Generator().manual_seed(order_seed)
        if self.name == "train_hf_grouped":
            # LengthGroupedSampler's own function, with the megabatch it uses on any data set
            # of >= 6,400 docs (50 batches; on fewer docs it shrinks to len // (4 * batch))
            order = get_length_grouped_indices([len(f["input_ids"]) for f in self.features],
                                               TRAIN_BATCH, mega_batch_mult=HF_MEGABATCH,
                                               generator=generator)
        else:
            order = list(RandomSampler(self.features, generator=generator))
        return [order[i : i + TRAIN_BATCH] for i in range(0, len(order), TRAIN_BATCH)]

    def step(self, batch: list[int]) -> None:
        self._step([self.features[i] for i in batch], [self.rows[i][1] for i in batch])

    def _step(self, features: list[dict], labels: list[int]) -> None:
        import torch

        enc = self.collate(features)
        hidden = self.encoder(input_ids=enc["input_ids"],
                              attention_mask=enc["attention_mask"]).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        loss = torch.nn.functional.cross_entropy(self.head(pooled), torch.tensor(labels))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)
        self.opt.step()
        self.opt.zero_grad()

    def texts(self, batch: list[int]) -> list[str]:
        return [self.rows[i][0] for i in batch]


def run_train_interleaved(backends: list[str], n: int, rounds: int, seed: int = 0) -> dict:
    """Each backend trains on the same ``n`` SST-2 train docs (after 2 untimed warm-up steps),
    one epoch per round, in this process, interleaved step by step (step i of every backend,
    the order rotating) so that load from other work falls on all of them alike. Per round
    and backend: docs/s and docs/CPU-s (the batcher's own work included); per backend the
    batches' shape and padding (first round)."""
    from transformers import AutoTokenizer

    from spacy_senti.backbone import resolve_backbone

    rows = load_sst2_train(n + WARM_STEPS * TRAIN_BATCH, seed)
    warm, rows = rows[: WARM_STEPS * TRAIN_BATCH], rows[WARM_STEPS * TRAIN_BATCH :]
    warm = [warm[i : i + TRAIN_BATCH] for i in range(0, len(warm), TRAIN_BATCH)]
    trainers = {b: (HFTrainer if b.startswith("train_hf") else SpacyTrainer)(b, rows, warm, seed)
                for b in backends}
    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("default"))
    results: dict = {b: {"rounds": []} for b in backends}
    for r in range(rounds):
        wall = dict.fromkeys(backends, 0.0)
        cpu = dict.fromkeys(backends, 0.0)
        epoch = {}
        for b, trainer in trainers.items():
            start, cpu0 = time.perf_counter(), _cpu()
            epoch[b] = trainer.batches(seed + r)
            wall[b] += time.perf_counter() - start
            cpu[b] += _cpu() - cpu0
            assert sum(map(len, epoch[b])) == n, (b, n)
            if r == 0:
                results[b].update(padding_stats([trainer.texts(x) for x in epoch[b]],
                                                tokenizer))
        for i in range(max(len(batches) for batches in epoch.values())):
            order = backends[i % len(backends):] + backends[: i % len(backends)]
            for b in order:
                if i < len(epoch[b]):
                    start, cpu0 = time.perf_counter(), _cpu()
                    trainers[b].step(epoch[b][i])
                    wall[b] += time.perf_counter() - start
                    cpu[b] += _cpu() - cpu0
        for b in backends:
            results[b]["rounds"].append({"docs_per_s": n / wall[b], "seconds": wall[b],
                                         "cpu_s": cpu[b], "docs_per_cpu_s": n / cpu[b],
                                         "load": load()})
        print(f"round {r + 1}/{rounds}: " + ", ".join(
            f"{b} {results[b]['rounds'][-1]['docs_per_s']:.1f} docs/s" for b in backends),
            file=sys.stderr)
    return results


# dev accuracy at equal steps: spaCy's own training loop (what `spacy train` runs)
_STEP_TIMES: list[float] = []


def _step_timer():
    """A ``before_update`` callback recording when each step starts."""
    def before_update(nlp, args: dict) -> None:
        _STEP_TIMES.append(time.perf_counter())

    return before_update


def run_quality(batcher: str, seed: int, steps: int, train_path: str, dev_path: str) -> dict:
    """``spacy train`` of configs/sentiment.cfg with the old or the configs' batcher for
    ``steps`` steps (warm-up steps // 10, linear decay to 0 at ``steps``); SST-2 dev accuracy
    of the last model and the loop's docs/s between the first and the last step (no eval)."""
    import io

    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train
    from spacy.util import registry

    import spacy_senti.components.transformer  # noqa: F401
    import spacy_senti.training.batchers  # noqa: F401

    registry.callbacks.register("bench_speed.step_timer.v1", func=_step_timer)
    config = train_config(OLD_BATCHER if batcher == "old" else None)
    overrides = {
        "paths": {"train": train_path, "dev": dev_path},
        "system": {"seed": seed},
        "training": {"max_steps": steps, "max_epochs": 0, "eval_frequency": steps,
                     "before_update": {"@callbacks": "bench_speed.step_timer.v1"},
                     "optimizer": {"learn_rate": {"warmup_steps": max(1, steps // 10),
                                                  "total_steps": steps}}},
    }
    config = config.merge(overrides).interpolate()
    nlp = init_nlp(config)
    start = time.perf_counter()
    nlp, _ = train(nlp, None, stdout=io.StringIO(), stderr=io.StringIO())
    total = time.perf_counter() - start
    from spacy.tokens import DocBin
    from spacy.training import Example

    dev = [Example(nlp.make_doc(d.text), d) for d in
           DocBin().from_disk(dev_path).get_docs(nlp.vocab)]
    scores = nlp.evaluate(dev)
    # steps 1 .. steps-1 lie between the first and the last before_update: no evaluation
    loop_s = _STEP_TIMES[-1] - _STEP_TIMES[1]
    return {"dev_acc": scores["senti_sentiment_acc"], "dev_macro_f": scores["senti_macro_f"],
            "train_s": total, "loop_docs_per_s": TRAIN_BATCH * (len(_STEP_TIMES) - 2) / loop_s}


def write_docbins(folder: Path, n: int, seed: int) -> tuple[str, str]:
    """SST-2 train sample (``n`` docs) and the whole SST-2 dev set as DocBins."""
    import spacy
    from spacy.tokens import DocBin

    nlp = spacy.blank("en")
    paths = []
    dev_rows = []
    with open(DATA / "sst2" / "dev.tsv", encoding="utf8") as f:
        next(f)
        for line in f:
            if line.strip():
                text, label = line.rstrip("\n").rsplit("\t", 1)
                dev_rows.append((text.strip(), int(label)))
    for split, rows in (("train", load_sst2_train(n, seed + 1000)), ("dev", dev_rows)):
        docbin = DocBin()
        for text, label in rows:
            doc = nlp.make_doc(text)
            doc.cats = {"sentiment/negative": float(label == 0),
                        "sentiment/positive": float(label == 1)}
            docbin.add(doc)
        path = folder / f"{split}.spacy"
        docbin.to_disk(path)
        paths.append(str(path))
    return paths[0], paths[1]


SHAPE_BATCHERS = {
    "spacy.batch_by_sequence.v1 (size 32; before)": OLD_BATCHER,
    "spacy.batch_by_padded.v1 (size 2000, buffer 256: spaCy's transformer default)": {
        "@batchers": "spacy.batch_by_padded.v1", "size": 2000, "buffer": 256,
        "discard_oversize": False, "get_length": None},
    "spacy.batch_by_padded.v1 (size 320, buffer 1600: 32 docs of 10 tokens)": {
        "@batchers": "spacy.batch_by_padded.v1", "size": 320, "buffer": 1600,
        "discard_oversize": False, "get_length": None},
    "spacy_senti.batch_by_length.v1 (size 32, buffer 50, spaCy tokens)": {
        "@batchers": "spacy_senti.batch_by_length.v1", "size": 32, "buffer": 50,
        "get_length": None},
    "spacy_senti.batch_by_length.v1 (size 32, buffer 50, wordpieces)": {
        "@batchers": "spacy_senti.batch_by_length.v1", "size": 32, "buffer": 50,
        "get_length": {"@misc": "spacy_senti.wordpiece_length.v1", "name": "default"}},
}


def batcher_shapes(n: int, seed: int = 0) -> list[dict]:
    """Steps, docs per step and padding of each of ``SHAPE_BATCHERS`` over one epoch of
    ``n`` SST-2 train docs (no model: the batches only)."""
    from statistics import median, quantiles

    import spacy
    from spacy.training import Example
    from spacy.util import fix_random_seed, registry
    from transformers import AutoTokenizer

    import spacy_senti.training.batchers  # noqa: F401
    from spacy_senti.backbone import resolve_backbone

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("default"))
    texts = [text for text, _ in load_sst2_train(n, seed)]
    nlp = spacy.blank("en")
    examples = [Example(doc, doc) for doc in nlp.tokenizer.pipe(texts)]
    pieces = {id(eg): len(ids) for eg, ids in zip(examples, tokenizer(
        texts, truncation=True, max_length=MAX_LEN)["input_ids"])}
    out = []
    for label, block in SHAPE_BATCHERS.items():
        fix_random_seed(seed)
        batches = list(registry.resolve({"b": block})["b"](examples))
        sizes = [len(b) for b in batches]
        real = sum(pieces[id(eg)] for b in batches for eg in b)
        padded = sum(max(pieces[id(eg)] for eg in b) * len(b) for b in batches)
        deciles = quantiles(sizes, n=10)
        out.append({"batcher": label, "steps": len(batches), "min": min(sizes),
                    "p10": deciles[0], "median": median(sizes), "p90": deciles[-1],
                    "max": max(sizes), "real_share": real / padded, "padded": padded})
    return out


def _sub(args, *extra: str) -> dict:
    cmd = [sys.executable, __file__, "--threads", str(args.threads), *extra]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    if out.returncode:
        raise RuntimeError(f"{' '.join(extra)} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_train(args) -> tuple[list[dict], dict, dict[str, list[dict]], list[str]]:
    """Batch shapes, the interleaved speed rounds, then the dev-accuracy runs (old and new
    batcher per seed, each in its own process)."""
    import tempfile

    from tqdm import tqdm

    loads = [load()]
    shapes = batcher_shapes(args.shape_docs)
    speed = run_train_interleaved(args.train_backends, args.train_docs, args.train_rounds)
    loads.append(load())
    quality: dict[str, list[dict]] = {"old": [], "new": []}
    if args.quality_steps:
        with tempfile.TemporaryDirectory() as tmp:
            train_path, dev_path = write_docbins(Path(tmp), TRAIN_BATCH * args.quality_steps, 0)
            jobs = [(s, b) for s in args.quality_seeds for b in ("old", "new")]
            for seed, batcher in tqdm(jobs, desc="dev accuracy", unit="run"):
                result = _sub(args, "--one-quality", batcher, "--seed", str(seed),
                              "--quality-steps", str(args.quality_steps),
                              "--quality-paths", train_path, dev_path)
                quality[batcher].append({"seed": seed, **result})
                loads.append(load())
    return shapes, speed, quality, loads


def write_train_table(shapes: list[dict], speed: dict, quality: dict[str, list[dict]],
                      loads: list[str], args, command: str) -> None:
    from statistics import median

    new_block = train_config()["training"]["batcher"]
    labels = dict(TRAIN_BACKENDS)
    labels["train_length"] = f"spaCy update loop, {batcher_label(new_block)} (the configs')"
    labels["train_sequence"] = f"spaCy update loop, {batcher_label(OLD_BATCHER)} (before)"
    rounds = {b: s["rounds"] for b, s in speed.items()}
    best = {b: max(r["docs_per_s"] for r in runs) for b, runs in rounds.items()}
    med = {b: median(r["docs_per_s"] for r in runs) for b, runs in rounds.items()}
    med_cpu = {b: median(r["docs_per_cpu_s"] for r in runs) for b, runs in rounds.items()}

    def ratio(a: str, b: str, key: str = "docs_per_s") -> float:
        """Median over rounds of a's / b's (same round: same load)."""
        return median(x[key] / y[key] for x, y in zip(rounds[a], rounds[b]))

    base = "train_sequence" if "train_sequence" in speed else args.train_backends[0]
    round_loads = "; ".join(f"round {i + 1}: {r['load']}"
                            for i, r in enumerate(rounds[args.train_backends[0]]))
    lines = [
        "# Training speed: length-bucketed batches (issue 14.1)",
        "",
        *header(command, seeds=[0], extra=[
            f"Torch threads: {args.threads}",
            f"Load average after each speed round: {round_loads}",
            f"Load average after the speed rounds and after each dev-accuracy run: "
            f"{', '.join(loads[1:])}"]),
        "",
        f"One epoch per round over the same {args.train_docs} SST-2 train docs (a random "
        f"sample, seed 0; each round a new shuffle), after {WARM_STEPS} untimed warm-up steps, "
        f"batch {TRAIN_BATCH} docs, all-MiniLM-L6-v2, max length {MAX_LEN} wordpieces. spaCy "
        "rows: configs/sentiment.cfg (senti_transformer + senti_textcat, one sentiment head), "
        "nlp.update with the config's optimizer and dropout, as `spacy train` steps. PyTorch "
        "rows: AutoModel + mean pooling + Linear, AdamW (lr 5e-5, weight decay 0.01, grad clip "
        "1.0), texts tokenized once (timed in round 1), DataCollatorWithPadding. All backends "
        "in one process, interleaved step by step (the order rotating), so other load on the "
        "machine falls on each alike; the batchers' own work (lengths, sorting) is timed. "
        f"{args.train_rounds} rounds; ratios are the median over rounds of the same round's "
        "ratio. real wordpieces: share of the padded encoder input that is not padding.",
        "",
        "| backend | docs/s best | docs/s median | ratio to before | docs/CPU-s median "
        "| ratio to before (CPU) | steps | docs per step | real wordpieces |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for b, s in speed.items():
        lines.append(
            f"| {labels[b]} | {best[b]:.1f} | {med[b]:.1f} | {ratio(b, base):.2f}x | "
            f"{med_cpu[b]:.1f} | {ratio(b, base, 'docs_per_cpu_s'):.2f}x | {s['steps']} | "
            f"{s['docs_min']}-{s['docs_max']} | {s['real_share']:.0%} |")
    lines.append("")
    if {"train_length", "train_sequence"} <= set(speed):
        r = ratio("train_length", "train_sequence")
        lines.append(
            f"Target >= {SPEED_TARGET}x today's training docs/s: "
            f"{'met' if r >= SPEED_TARGET else 'NOT met'} ({r:.2f}x; best/best "
            f"{best['train_length'] / best['train_sequence']:.2f}x; per CPU-second "
            f"{ratio('train_length', 'train_sequence', 'docs_per_cpu_s'):.2f}x).")
    if {"train_length", "train_hf_grouped"} <= set(speed):
        r = ratio("train_length", "train_hf_grouped")
        lines.append(
            f"Target >= {HF_TARGET}x the length-grouped PyTorch loop: "
            f"{'met' if r >= HF_TARGET else 'NOT met'} ({r:.2f}x; best/best "
            f"{best['train_length'] / best['train_hf_grouped']:.2f}x; per CPU-second "
            f"{ratio('train_length', 'train_hf_grouped', 'docs_per_cpu_s'):.2f}x).")
    lines += [
        "",
        f"## Batch shapes over one epoch of {args.shape_docs} SST-2 train docs (no model)",
        "",
        "Learning-rate schedules and per-batch losses count steps; a batcher that caps padded "
        "size instead of docs changes how many docs a step sees. spaCy's batch_by_padded "
        "measures spaCy tokens and caps docs x longest doc: short phrases come in large "
        "batches, sentences in small ones.",
        "",
        "| batcher | steps | docs per step: min / p10 / median / p90 / max | real wordpieces "
        "| padded wordpieces |",
        "|---|---:|---|---:|---:|",
    ]
    for s in shapes:
        lines.append(f"| {s['batcher']} | {s['steps']} | {s['min']} / {s['p10']:.0f} / "
                     f"{s['median']:.0f} / {s['p90']:.0f} / {s['max']} | "
                     f"{s['real_share']:.0%} | {s['padded']:,} |")
    if quality["old"]:
        lines += [
            "",
            f"## Dev accuracy at equal steps ({args.quality_steps} steps)",
            "",
            f"`spacy train` (spaCy's training loop) of configs/sentiment.cfg on "
            f"{TRAIN_BATCH * args.quality_steps} other SST-2 train docs (one epoch), "
            f"{args.quality_steps} steps of {TRAIN_BATCH} docs, warm-up "
            f"{max(1, args.quality_steps // 10)} steps then linear decay to 0 at the last step; "
            "scored on the whole SST-2 dev set (872 sentences). Same seed, same data, only "
            "[training.batcher] differs. loop docs/s: between the first and the last step "
            "(no evaluation inside).",
            "",
            "| batcher | seed | dev accuracy | dev macro-F1 | loop docs/s | train wall (s) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for key, block in (("old", OLD_BATCHER), ("new", new_block)):
            for r in quality[key]:
                lines.append(f"| {batcher_label(block)} | {r['seed']} | {r['dev_acc']:.3f} | "
                             f"{r['dev_macro_f']:.3f} | {r['loop_docs_per_s']:.1f} | "
                             f"{r['train_s']:.0f} |")
        old = [r["dev_acc"] for r in quality["old"]]
        new = [r["dev_acc"] for r in quality["new"]]
        mean_old, mean_new = sum(old) / len(old), sum(new) / len(new)
        loop = (median(r["loop_docs_per_s"] for r in quality["new"])
                / median(r["loop_docs_per_s"] for r in quality["old"]))
        lines += [
            "",
            f"Mean dev accuracy: before {mean_old:.3f}, length-bucketed {mean_new:.3f} "
            f"({mean_new - mean_old:+.3f} over {len(new)} seed(s); one dev sentence is 0.001): "
            f"equal or better {'met' if mean_new >= mean_old else 'NOT met'}. spacy train "
            f"loop docs/s, length-bucketed / before: {loop:.2f}x (median).",
        ]
    lines.append("")
    TRAIN_OUT.parent.mkdir(parents=True, exist_ok=True)
    TRAIN_OUT.write_text("\n".join(lines), encoding="utf8")
    TRAIN_OUT.with_suffix(".json").write_text(
        json.dumps({"shapes": shapes, "speed": speed, "quality": quality, "loads": loads},
                   indent=2),
        encoding="utf8")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--senti-max-items", type=int, default=2048,
                        help="max_batch_items (padded wordpieces) of the senti_transformer "
                        "rows (the configs' value counts spaCy tokens for `transformer`)")
    parser.add_argument("--one", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--train", action="store_true",
                        help="only the training section (issue 14.1): docs/s of the spaCy "
                        "update loop with today's and the configs' batcher and of a "
                        "length-grouped PyTorch loop, interleaved, then dev accuracy at equal "
                        "steps; writes bench/results/speed_train.md")
    parser.add_argument("--train-docs", type=int, default=1600,
                        help="--train: docs in the timed epoch (1600 = one 50-batch window)")
    parser.add_argument("--shape-docs", type=int, default=16000,
                        help="--train: SST-2 train docs for the batch-shape table")
    parser.add_argument("--train-rounds", type=int, default=3,
                        help="--train: epochs of the speed backends, interleaved step by step")
    parser.add_argument("--train-backends", nargs="+", choices=list(TRAIN_BACKENDS),
                        default=DEFAULT_TRAIN_BACKENDS, help="--train: speed backends")
    parser.add_argument("--quality-steps", type=int, default=200,
                        help="--train: steps of each dev-accuracy run (0: skip them)")
    parser.add_argument("--quality-seeds", type=int, nargs="+", default=[0, 1],
                        help="--train: seeds of the dev-accuracy runs (old and new each)")
    parser.add_argument("--one-quality", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--quality-paths", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--aspects-only", action="store_true",
                        help="only the aspect terms pair (3 heads with and without "
                        "senti_aspects), interleaved; writes bench/results/speed_aspects.md")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_backend(args.one, args.n, args.train_steps, args.senti_max_items)))
        return
    if args.one_quality:
        print(json.dumps(run_quality(args.one_quality, args.seed, args.quality_steps,
                                     *args.quality_paths)))
        return
    if args.train:
        command = (f"python bench/bench_speed.py --train --train-docs {args.train_docs} "
                   f"--shape-docs {args.shape_docs} --train-rounds {args.train_rounds} "
                   f"--train-backends "
                   f"{' '.join(args.train_backends)} --quality-steps {args.quality_steps} "
                   f"--quality-seeds {' '.join(map(str, args.quality_seeds))} "
                   f"--threads {args.threads}")
        write_train_table(*measure_train(args), args, command)
        return
    top = run_header(args)
    if args.aspects_only:
        write_aspects_table(measure(args, list(ASPECTS_PAIR)), args)
        return
    best = measure(args)
    OUT.with_suffix(".json").write_text(json.dumps(best, indent=2), encoding="utf8")
    write_table(best, args, top)


if __name__ == "__main__":
    main()
