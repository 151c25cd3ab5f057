"""Few labels: contrastive fine-tuning of the backbone (SetFit stage 1), then ``spacy train``.

Stage 1 (:func:`tune_encoder`) loads the config's backbone as a sentence-transformers model
(mean pooling over wordpieces, the pooling ``senti_textcat``'s default ``mean`` applies to the
same rows) and fine-tunes it with sentence-transformers' ``CosineSimilarityLoss`` on pairs of
training docs (:mod:`spacy_senti.training.pairs`): same label -> cosine 1, different -> 0
(Jaccard overlap of label sets for multilabel and grouped heads). The tuned encoder is saved
in Hugging Face format (``OUTPUT/encoder``).

Stage 2 (:func:`run_fewshot`) is the ordinary ``spacy train`` loop on CONFIG with
``paths.backbone`` pointing at that directory, so the result (``OUTPUT/model-best``,
``model-last``) is a normal pipeline that packages, exports to ONNX and serves. With
``configs/fewshot.cfg`` the encoder is frozen in stage 2 and only the heads learn, as in SetFit:
the transformer is a frozen, annotating component (forward passes only), initialised by the
``spacy_senti.initialize_frozen.v1`` callback.

The stage-1 loop is written here (about 30 lines over the library's loss) rather than run
through ``SentenceTransformerTrainer``: that trainer needs ``datasets`` and ``accelerate``,
and ``datasets`` pins an older ``fsspec`` than this stack's; the loop also takes our seed and
shows a tqdm bar.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Config
from tqdm import tqdm

from ..backbone import resolve_backbone
from ..errors import ConfigError, InputError
from ..heads import Head, heads_from_config
from ..util import read_docs
from .pairs import Pair, label_sets, make_pairs

ENCODER_DIR = "encoder"
SUMMARY_FILE = "fewshot.json"
FACTORY = "senti_textcat"


@dataclass
class ContrastiveSettings:
    """Stage-1 hyper-parameters (SetFit's defaults for a MiniLM body).

    pairs_per_example: rounds of one positive + one negative pair per doc (SetFit's
        ``num_iterations``; 2 * R * n pairs in all).
    epochs: passes over the pairs. batch_size: pairs per step. learn_rate: AdamW peak rate,
    linear warm-up over ``warmup`` of the steps then linear decay. max_length: wordpieces
    kept per text.
    """

    pairs_per_example: int = 20
    epochs: int = 1
    batch_size: int = 16
    learn_rate: float = 2e-5
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_length: int = 256
    seed: int = 0

    def check(self) -> None:
        for name in ("pairs_per_example", "epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise InputError(f"--{name.replace('_', '-')} must be at least 1.")
        if self.learn_rate <= 0:
            raise InputError("--learn-rate must be positive.")


# --- which head drives the pairs ---------------------------------------------------------
def config_heads(config: Config) -> list[Head]:
    """The heads of every ``senti_textcat`` component of ``config``, in config order."""
    heads: list[Head] = []
    for block in (config.get("components") or {}).values():
        if block.get("factory") == FACTORY:
            heads += heads_from_config(block.get("heads") or {})
    if not heads:
        raise ConfigError("The config has no senti_textcat component with heads: stage 2 "
                          "trains senti_textcat (see configs/fewshot.cfg).")
    return heads


def choose_head(heads: Sequence[Head], docs: Sequence[Doc], name: str | None = None) -> Head:
    """``name``'s head; by default the first single-label head the docs annotate, else the
    first annotated head."""
    if name is not None:
        for head in heads:
            if head.name == name:
                return head
        raise InputError(f"--head {name!r}: the config's heads are "
                         f"{', '.join(h.name for h in heads)}.")
    annotated = [h for h in heads if any(s is not None for s in label_sets(docs, h.name))]
    if not annotated:
        raise InputError(
            "No training doc has a label of any head of the config "
            f"({', '.join(h.name for h in heads)}): doc.cats keys must be '<head>/<label>' "
            "(as `spacy-senti convert` writes them)."
        )
    return next((h for h in annotated if h.single_label), annotated[0])


def labelled(docs: Sequence[Doc], head: Head) -> tuple[list[str], list[frozenset[str]]]:
    """Texts and label sets of the docs that annotate ``head``."""
    texts, sets = [], []
    for doc, labels in zip(docs, label_sets(docs, head.name), strict=True):
        if labels is not None:
            texts.append(doc.text)
            sets.append(labels)
    return texts, sets


# --- stage 1 -----------------------------------------------------------------------------
def load_encoder(backbone: str, max_length: int = 256, device: str = "cpu"):
    """A sentence-transformers model over ``backbone`` (a name from a config or a directory):
    its own modules when it is a sentence-transformers directory, else transformer + mean
    pooling."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:  # pragma: no cover - the fewshot extra is installed in dev
        raise InputError('Few-shot training needs sentence-transformers: '
                         'pip install "spacy-senti[fewshot]"') from None
    model = SentenceTransformer(resolve_backbone(backbone), device=device)
    positions = getattr(model[0].auto_model.config, "max_position_embeddings", max_length)
    current = model.max_seq_length or max_length
    model.max_seq_length = int(min(current, max_length, positions))
    return model


def tune_encoder(backbone: str, texts: Sequence[str], pairs: Sequence[Pair], output: Path,
                 settings: ContrastiveSettings, *, device: str = "cpu",
                 progress: bool = True) -> dict[str, Any]:
    """Fine-tune ``backbone`` on ``pairs`` with ``CosineSimilarityLoss`` on ``device``; save it
    to ``output`` (Hugging Face + sentence-transformers files); returns stage-1 statistics."""
    import torch
    from transformers import get_linear_schedule_with_warmup

    try:  # sentence-transformers >= 5.x; older releases: sentence_transformers.losses
        from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss
    except ImportError:  # pragma: no cover
        from sentence_transformers.losses import CosineSimilarityLoss

    start = time.perf_counter()
    torch.manual_seed(settings.seed)
    model = load_encoder(backbone, settings.max_length, device)
    loss_fn = CosineSimilarityLoss(model)
    n_batches = math.ceil(len(pairs) / settings.batch_size)
    total = n_batches * settings.epochs
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learn_rate,
                                  weight_decay=settings.weight_decay)
    schedule = get_linear_schedule_with_warmup(optimizer, int(settings.warmup * total), total)
    rng = np.random.default_rng(settings.seed)
    losses: list[float] = []
    model.train()
    bar = tqdm(total=total, desc="stage 1: contrastive", unit="step", disable=not progress)
    for _ in range(settings.epochs):
        order = rng.permutation(len(pairs))
        for b in range(n_batches):
            batch = [pairs[i] for i in order[b * settings.batch_size:(b + 1) * settings.batch_size]]
            features = [_to(model.preprocess([texts[p.first] for p in batch]), device),
                        _to(model.preprocess([texts[p.second] for p in batch]), device)]
            target = torch.tensor([p.target for p in batch], dtype=torch.float32, device=device)
            loss = loss_fn(features, target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.4f}")
    bar.close()
    model.eval()
    output.mkdir(parents=True, exist_ok=True)
    model.save(str(output), create_model_card=False)
    return {"pairs": len(pairs), "steps": total, "first_loss": losses[0],
            "last_loss": float(np.mean(losses[-max(1, n_batches // 5):])),
            "seconds": time.perf_counter() - start}


def _to(features: dict[str, Any], device: str) -> dict[str, Any]:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in features.items()}


# --- stage 2 -------------------------------------------------------------------------------
@registry.callbacks("spacy_senti.initialize_frozen.v1")
def make_initialize_frozen(components: Sequence[str] = ("transformer",)) -> Callable:
    """``[initialize.before_init]`` callback: initialise ``components`` although they are in
    ``training.frozen_components`` (spaCy initialises only the components it trains), so a
    frozen ``transformer`` loads its backbone and, listed in ``annotating_components``, runs
    forward only (no backward pass) while the heads train."""

    def initialize_frozen(nlp: Language) -> Language:
        for name in components:  # disabled while spaCy initialises the trained components
            if name not in nlp.component_names:
                raise ConfigError(f"initialize_frozen: no component {name!r} in the pipeline "
                                  f"({', '.join(nlp.component_names)}).")
            pipe = nlp.get_pipe(name)
            pipe.initialize(lambda: [])
            for listener in getattr(pipe, "listeners", []):  # their width, as at linking
                if pipe.model.has_dim("nO") and listener.has_dim("nO") is None:
                    listener.set_dim("nO", pipe.model.get_dim("nO"))
        return nlp

    return initialize_frozen


# --- stage 2 end to end ---------------------------------------------------------------------
STAGE2_MODES = ("frozen", "end-to-end", "auto")
CANDIDATES_DIR = "candidates"


def end_to_end_epochs(n_docs: int) -> int:
    """Passes over the labelled docs when stage 2 fine-tunes the encoder: more over fewer
    docs (the plain fine-tuning recipe of bench/bench_lowdata.py: 20 / 8 / 4 epochs for at
    most 100 / 400 / more docs)."""
    return 20 if n_docs <= 100 else 8 if n_docs <= 400 else 4


def end_to_end_overrides(config: Config, n_docs: int, learn_rate: float) -> dict[str, Any]:
    """Overrides that turn a frozen-encoder stage-2 config (configs/fewshot.cfg) into plain
    fine-tuning of the whole pipeline from the stage-1 encoder: the transformer trains, the
    pooled features are not rescaled to unit length, ``learn_rate`` (warm-up over a tenth
    of the steps, then linear decay) and :func:`end_to_end_epochs` passes, scored on dev
    once per pass (``model-best`` is the best pass)."""
    training = config["training"]
    size = int((training.get("batcher") or {}).get("size") or 16)
    per_epoch = max(1, math.ceil(n_docs / size))
    epochs = end_to_end_epochs(n_docs)
    total = per_epoch * epochs
    overrides: dict[str, Any] = {
        "training.frozen_components": [], "training.annotating_components": [],
        "training.max_epochs": epochs, "training.max_steps": 0, "training.patience": 0,
        "training.eval_frequency": per_epoch,
        "training.optimizer.learn_rate.initial_rate": learn_rate,
        "training.optimizer.learn_rate.warmup_steps": max(1, total // 10),
        "training.optimizer.learn_rate.total_steps": total,
    }
    if (config.get("initialize") or {}).get("before_init") is not None:
        overrides["initialize.before_init"] = None
    for name, block in (config.get("components") or {}).items():
        if block.get("factory") == FACTORY and "normalize" in (block.get("model") or {}):
            overrides[f"components.{name}.model.normalize"] = False
    return overrides


def dev_predictions(pipeline_dir: Path, dev: str | Path) -> tuple[list, Any, dict]:
    """The pipeline's predictions on DEV as examples, its scorer and score weights."""
    import spacy
    from spacy.scorer import Scorer
    from spacy.training import Corpus, Example

    nlp = spacy.load(pipeline_dir)
    gold = list(Corpus(dev)(nlp))
    docs = nlp.pipe(eg.predicted for eg in gold)
    examples = [Example(doc, eg.reference) for doc, eg in zip(docs, gold, strict=True)]
    return examples, Scorer(nlp), dict(nlp.config["training"]["score_weights"])


def weighted_score(scorer: Any, examples: Sequence, weights: dict) -> float:
    """``spacy train``'s checkpoint score: ``training.score_weights`` over the scores."""
    scores = scorer.score(examples)
    return float(sum(float(scores.get(key) or 0.0) * w for key, w in weights.items() if w))


def pick_on_dev(frozen: Sequence, tuned: Sequence, score: Callable[[Sequence], float], *,
                seed: int = 0, resamples: int = 200) -> dict[str, Any]:
    """Frozen or end-to-end by the one-standard-error rule: end-to-end (``tuned``) is kept
    only when its dev score beats frozen's (SetFit's recipe, the default) by more than the
    standard error of the difference, from ``resamples`` paired bootstrap draws of the dev
    docs. ``frozen`` / ``tuned``: the two candidates' predictions on the same dev docs, in
    order; ``score``: a list of them -> score. With a few labels per class, dev is a few
    dozen docs and the difference mostly noise: the rule keeps the SetFit head there."""
    if len(frozen) != len(tuned) or not frozen:
        raise ValueError("pick_on_dev needs both candidates' predictions on the same dev docs")
    scores = {"frozen": score(frozen), "end-to-end": score(tuned)}
    rng = np.random.default_rng(seed)
    diffs = []
    for _ in range(resamples):
        idx = rng.integers(0, len(frozen), len(frozen))
        diffs.append(score([tuned[i] for i in idx]) - score([frozen[i] for i in idx]))
    difference = scores["end-to-end"] - scores["frozen"]
    se = float(np.std(diffs, ddof=1))
    return {"dev_scores": scores, "difference": difference, "standard_error": se,
            "dev_docs": len(frozen), "chosen": "end-to-end" if difference > se else "frozen"}


def choose_stage2(root: Path, dev: str | Path, *, seed: int = 0) -> dict[str, Any]:
    """:func:`pick_on_dev` over ``root/frozen/model-last`` and ``root/end-to-end/model-last``
    on DEV, each scored as ``spacy train`` ranks checkpoints. The last models, not
    ``model-best``: end-to-end's best pass was picked on this dev set, so its dev score is the
    best of many noisy looks (at 8 labels per class it beat frozen on dev in 3 of 20 runs
    of bench_fewshot.py: 2 of them 5 and 12 points worse on test, one 0.5 better), while
    neither last model has seen dev."""
    frozen, scorer, weights = dev_predictions(root / "frozen" / "model-last", dev)
    tuned, _, _ = dev_predictions(root / "end-to-end" / "model-last", dev)
    return pick_on_dev(frozen, tuned, lambda egs: weighted_score(scorer, egs, weights),
                       seed=seed)


def _train_stage2(config_path: Path, out: Path, overrides: dict[str, Any], *, use_gpu: int,
                  texts: Sequence[str], sets: Sequence[frozenset[str]], head: Head,
                  head_fit: str, seed: int, frozen: bool) -> dict[str, Any]:
    """``spacy train`` into ``out``; then SetFit's logistic head where asked and possible."""
    from spacy.cli.train import train as spacy_train

    start = time.perf_counter()
    spacy_train(Path(config_path), out, use_gpu=use_gpu, overrides=overrides)
    info: dict[str, Any] = {"head_fit": "trained"}
    if head_fit == "logistic" and head.single_label:
        last, best = out / "model-last", out / "model-best"
        info["logistic"] = fit_logistic_head(last, texts, sets, head, seed=seed)
        if best.exists():
            if frozen:  # same frozen encoder, so the refit would give best the same head
                shutil.rmtree(best)
                shutil.copytree(last, best)
            else:
                fit_logistic_head(best, texts, sets, head, seed=seed)
        info["head_fit"] = "logistic"
    info["seconds"] = time.perf_counter() - start
    return info


# --- both stages -------------------------------------------------------------------------
def run_fewshot(config_path: str | Path, train: str | Path, dev: str | Path,
                output: str | Path, *, settings: ContrastiveSettings | None = None,
                head: str | None = None, overrides: dict[str, Any] | None = None,
                use_gpu: int = -1, progress: bool = True,
                head_fit: str = "logistic", stage2: str = "frozen",
                end_to_end_learn_rate: float = 1e-4,
                encoder: str | Path | None = None) -> dict[str, Any]:
    """Stage 1 on TRAIN's labels, then ``spacy train`` CONFIG from the tuned encoder.

    Writes ``OUTPUT/encoder`` (stage 1), ``OUTPUT/model-best`` / ``model-last`` (stage 2)
    and ``OUTPUT/fewshot.json`` (settings, pair counts, timings); returns that summary.
    head_fit: ``"logistic"`` (single-label heads: the chosen head's weights are refitted by
    :func:`fit_logistic_head`, SetFit's head; other heads keep the trained one) or
    ``"trained"`` (the head ``spacy train`` learnt). Over the unit-length features of
    ``configs/fewshot.cfg`` the logistic head is SetFit's exactly (bench_fewshot.py).
    stage2: ``"frozen"`` (CONFIG as written: configs/fewshot.cfg trains only the heads),
    ``"end-to-end"`` (CONFIG with :func:`end_to_end_overrides`: plain fine-tuning from the
    tuned encoder, the trained head kept) or ``"auto"`` (both, in ``OUTPUT/candidates``;
    :func:`choose_stage2` picks one on dev and it is copied to ``OUTPUT``). encoder: an
    earlier stage 1's ``OUTPUT/encoder`` to train from instead of running stage 1 again.
    """
    if head_fit not in ("logistic", "trained"):
        raise ConfigError(f"Unknown head fit {head_fit!r}: use 'logistic' or 'trained'.")
    if stage2 not in STAGE2_MODES:
        raise ConfigError(f"Unknown stage 2 {stage2!r}: use {', '.join(STAGE2_MODES)}.")
    import spacy

    settings = settings or ContrastiveSettings()
    settings.check()
    overrides = dict(overrides or {})
    config = spacy.util.load_config(Path(config_path), overrides=overrides, interpolate=False)
    docs = read_docs(train, what="TRAIN")
    read_docs(dev, what="DEV")  # fail before stage 1 on an unreadable dev set
    chosen = choose_head(config_heads(config), docs, head)
    texts, sets = labelled(docs, chosen)
    pairs = make_pairs(sets, settings.pairs_per_example, settings.seed, head=chosen.name,
                       single_label=chosen.single_label)
    backbone = str(config["paths"].get("backbone", "default"))
    out = Path(output)
    if encoder is None:
        encoder_dir = out / ENCODER_DIR
        device = f"cuda:{use_gpu}" if use_gpu >= 0 else "cpu"
        stage1 = tune_encoder(backbone, texts, pairs, encoder_dir, settings, device=device,
                              progress=progress)
    else:
        encoder_dir = Path(encoder)
        if not (encoder_dir / "config.json").exists():
            raise InputError(f"--encoder {encoder_dir}: not a tuned encoder (no config.json); "
                             "pass the encoder/ folder an earlier `spacy-senti fewshot` wrote.")
        stage1 = {"pairs": 0, "steps": 0, "first_loss": None, "last_loss": None,
                  "seconds": 0.0, "reused": str(encoder_dir)}
    stage1.update(head=chosen.name, docs=len(texts), backbone=backbone)

    base = {**overrides, "paths.train": str(train), "paths.dev": str(dev),
            "paths.backbone": str(encoder_dir.resolve()), "system.seed": settings.seed}
    e2e = {**base, **end_to_end_overrides(config, len(texts), end_to_end_learn_rate)}
    common = {"use_gpu": use_gpu, "texts": texts, "sets": sets, "head": chosen,
              "seed": settings.seed}
    frozen = "transformer" in config["training"].get("frozen_components", [])
    start = time.perf_counter()
    if stage2 == "auto":
        root = out / CANDIDATES_DIR
        runs = {"frozen": _train_stage2(config_path, root / "frozen", base, frozen=frozen,
                                        head_fit=head_fit, **common),
                "end-to-end": _train_stage2(config_path, root / "end-to-end", e2e,
                                            frozen=False, head_fit="trained", **common)}
        choice = choose_stage2(root, dev, seed=settings.seed)
        for name, info in runs.items():
            info["dev_score"] = choice["dev_scores"][name]
        pick = choice["chosen"]
        for folder in ("model-best", "model-last"):
            if (out / folder).exists():
                shutil.rmtree(out / folder)
            shutil.copytree(root / pick / folder, out / folder)
        stage2_info = {"mode": "auto", "chosen": pick, "candidates": runs,
                       "difference": choice["difference"],
                       "standard_error": choice["standard_error"],
                       "dev_docs": choice["dev_docs"], "head_fit": runs[pick]["head_fit"]}
    elif stage2 == "end-to-end":
        stage2_info = {"mode": stage2, **_train_stage2(config_path, out, e2e, frozen=False,
                                                       head_fit="trained", **common)}
    else:
        stage2_info = {"mode": stage2, **_train_stage2(config_path, out, base, frozen=frozen,
                                                       head_fit=head_fit, **common)}
    stage2_info.update(config=str(config_path), seconds=time.perf_counter() - start)
    summary = {"settings": asdict(settings), "stage1": stage1, "stage2": stage2_info}
    (out / SUMMARY_FILE).write_text(json.dumps(summary, indent=2), encoding="utf8")
    return summary


# --- stage 2b: the head as SetFit fits it --------------------------------------------------
def fit_logistic_head(pipeline_dir: str | Path, texts: Sequence[str],
                      sets: Sequence[frozenset[str]], head: Head, *, C: float = 1.0,
                      seed: int = 0) -> dict[str, Any]:
    """Refit ``head``'s rows of the output layer with scikit-learn's LogisticRegression on
    the pooled vectors of the training docs (SetFit's head), and save the pipeline again.

    SetFit fits the regression on unit-length sentence embeddings with ``C``. With
    ``normalize = true`` (configs/fewshot.cfg) the pooled vectors are unit-length too, so this
    is SetFit's fit exactly; for a model without it the penalty is rescaled by the mean squared
    norm (``C / r**2``), the same fit when the norms are about equal. Only single-label
    heads (softmax): for binary heads the first class keeps a zero row (softmax of
    ``[0, w.x + b]`` is the logistic). Returns what was fitted.
    """
    import spacy
    from sklearn.linear_model import LogisticRegression

    from ..active.select import pooled_embeddings
    from ..models.classifier import OUTPUT_LAYER
    from ..util import find_textcat

    if not head.single_label:
        raise ConfigError(f"The logistic head fit needs a single-label head; '{head.name}' is "
                          "not single-label. Use --head-fit trained.")
    nlp = spacy.load(pipeline_dir)
    textcat = find_textcat(nlp, head=head.name)
    docs = list(nlp.pipe(texts))
    X = pooled_embeddings(textcat, docs).astype("float64")
    y = [next(iter(labels)) for labels in sets]
    r2 = float(np.mean(np.sum(X * X, axis=1))) or 1.0
    clf = LogisticRegression(C=C / r2, max_iter=2000, random_state=seed).fit(X, y)
    labels = [str(x) for x in next(h for h in textcat.heads if h.name == head.name).labels]
    rows = textcat.head_slices()[head.name]
    output = textcat.model.get_ref(OUTPUT_LAYER)
    W = output.ops.to_numpy(output.get_param("W")).copy()
    b = output.ops.to_numpy(output.get_param("b")).copy()
    W[rows], b[rows] = 0.0, 0.0
    coef, intercept = clf.coef_, clf.intercept_
    if len(clf.classes_) == 2:  # one row: log-odds of classes_[1]
        coef, intercept = np.vstack([np.zeros_like(coef[0]), coef[0]]), [0.0, intercept[0]]
    for k, label in enumerate(clf.classes_):
        i = rows.start + labels.index(str(label))
        W[i], b[i] = coef[k], intercept[k]
    output.set_param("W", output.ops.asarray(W.astype("float32")))
    output.set_param("b", output.ops.asarray(b.astype("float32")))
    nlp.to_disk(pipeline_dir)
    return {"C": C, "C_rescaled": C / r2, "mean_sq_norm": r2, "docs": len(y),
            "classes": [str(c) for c in clf.classes_]}
