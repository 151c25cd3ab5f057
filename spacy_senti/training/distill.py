"""Logit distillation of a ``senti_textcat`` teacher into a smaller student pipeline.

The student's loss on a batch is (Hinton et al. 2015)::

    alpha * L_gold(z)  +  (1 - alpha) * T^2 * L_soft(z / T, softmax(z_teacher / T))

``L_gold`` is the component's own masked loss (``get_loss``: class weights, focal loss,
label smoothing, heads missing from a doc masked out); ``L_soft`` is cross-entropy against
the teacher's softened distribution (a per-group softmax for grouped heads, a sigmoid per
label for multilabel heads), which has the KL divergence's gradient. The student model is
updated directly (``begin_update`` on ``senti_textcat``'s model), so ``textcat.py`` is not
changed. The student must be a pipeline whose ``senti_textcat`` holds its own encoder
(``configs/cpu_fast.cfg``), not a transformer listener.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from spacy.language import Language
from spacy.training import Example
from spacy.util import minibatch
from thinc.api import Optimizer, fix_random_seed, set_dropout_rate
from tqdm import tqdm

from ..errors import ConfigError, InputError
from ..heads import Head
from .update import train_step

COMPONENT = "senti_textcat"


# --- teacher -----------------------------------------------------------------------------
def soften(heads: Sequence[Head], logits: np.ndarray, temperature: float) -> np.ndarray:
    """Per-head probabilities of ``logits / temperature`` (columns as the model's output)."""
    z = np.asarray(logits, dtype="f") / temperature
    out = np.empty_like(z)
    start = 0
    for head in heads:
        sl = slice(start, start + head.n_outputs)
        start += head.n_outputs
        out[:, sl] = head.activate(np, z[:, sl])
    return out


def teacher_logits(teacher: Language, texts: Sequence[str], *, component: str = COMPONENT,
                   batch_size: int = 64, progress: bool = True) -> np.ndarray:
    """The teacher's ``senti_textcat`` logits (n, n_outputs), upstream components run first."""
    pipe = teacher.get_pipe(component)
    rows: list[np.ndarray] = []
    docs_iter = teacher.pipe(texts, batch_size=batch_size, disable=[component])
    bar = tqdm(total=len(texts), desc="teacher", disable=not progress, leave=False)
    for batch in minibatch(docs_iter, batch_size):
        rows.append(pipe.model.ops.to_numpy(pipe.model.predict(list(batch))))
        bar.update(len(batch))
    bar.close()
    return np.concatenate(rows, axis=0) if rows else np.zeros((0, pipe.n_outputs), "f")


def check_compatible(teacher_heads: Sequence[Head], student_heads: Sequence[Head]
                     ) -> None:
    """Teacher and student must predict the same keys in the same order."""
    t = [k for h in teacher_heads for k in h.keys()]
    s = [k for h in student_heads for k in h.keys()]
    if t != s:
        raise ConfigError(
            f"Teacher and student heads differ: teacher predicts {t}, student {s}. Train the "
            "student on data with the teacher's labels, or list the labels in its config."
        )


# --- loss ----------------------------------------------------------------------------------
def distillation_loss(pipe: Any, examples: Sequence[Example], logits, soft, *, alpha: float,
                      temperature: float) -> tuple[float, Any]:
    """``alpha * gold + (1 - alpha) * T^2 * soft`` loss and its gradient on the logits."""
    ops = pipe.model.ops
    xp = ops.xp
    loss, d_logits = pipe.get_loss(examples, logits) if alpha > 0 else (0.0, None)
    d_total = ops.alloc2f(*logits.shape)
    if d_logits is not None:
        d_total += alpha * d_logits
    total = alpha * loss
    targets = ops.asarray2f(soft)
    t = temperature
    start = 0
    for head in pipe.heads:
        sl = slice(start, start + head.n_outputs)
        start += head.n_outputs
        kd, d_block = head.soft_target_loss(xp, logits[:, sl] / t, targets[:, sl])
        scale = (1.0 - alpha) * head.weight * t * t
        total += scale * kd
        d_total[:, sl] += scale * d_block / t
    return float(total), d_total


# --- training loop ---------------------------------------------------------------------------
@dataclass
class DistillResult:
    """Loss per epoch, dev scores per epoch and the best epoch's scores."""

    losses: list[float] = field(default_factory=list)
    dev_scores: list[dict[str, Any]] = field(default_factory=list)
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


def fit(
    nlp: Language,
    examples: Sequence[Example],
    *,
    soft: np.ndarray | None = None,
    alpha: float = 0.5,
    temperature: float = 2.0,
    epochs: int = 10,
    batch_size: int = 32,
    dropout: float = 0.1,
    dev: Sequence[Example] | None = None,
    metric: str = "senti_macro_f",
    seed: int = 0,
    optimizer: Optimizer | None = None,
    component: str = COMPONENT,
    progress: bool = True,
    initialize: bool = True,
    on_epoch: Callable[[int, dict], None] | None = None,
) -> DistillResult:
    """Train ``nlp`` on ``examples`` (with ``soft`` teacher targets: distillation).

    Keeps the weights of the best epoch on ``dev`` (by ``metric``) when ``dev`` is given.
    """
    fix_random_seed(seed)
    examples = list(examples)
    if initialize:
        opt = nlp.initialize(get_examples=lambda: examples)
        optimizer = optimizer or opt
    if optimizer is None:
        optimizer = nlp.resume_training()
    pipe = nlp.get_pipe(component)
    if soft is not None:
        _check_student(nlp, component)
        if len(soft) != len(examples) or soft.shape[1] != pipe.n_outputs:
            raise ValueError(f"soft targets {soft.shape} do not fit {len(examples)} examples "
                             f"x {pipe.n_outputs} outputs.")
    rng = random.Random(seed)
    order = list(range(len(examples)))
    result, best_bytes, started = DistillResult(), None, time.perf_counter()
    for epoch in tqdm(range(epochs), desc="epochs", disable=not progress, leave=False):
        rng.shuffle(order)
        epoch_loss = 0.0
        for batch in minibatch(order, batch_size):
            if soft is None:
                losses: dict[str, float] = {}
                train_step(nlp, [examples[i] for i in batch], optimizer, drop=dropout,
                           losses=losses)
                epoch_loss += losses.get(component, 0.0)
            else:
                epoch_loss += _distill_step(pipe, [examples[i] for i in batch], soft[batch],
                                            optimizer, alpha, temperature, dropout)
        result.losses.append(epoch_loss)
        if dev:
            scores = nlp.evaluate(list(dev))
            result.dev_scores.append(scores)
            if on_epoch:
                on_epoch(epoch, scores)
            if not result.best or (scores.get(metric) or 0.0) > (result.best.get(metric) or 0.0):
                result.best = {**scores, "epoch": epoch}
                best_bytes = pipe.model.to_bytes()
    if best_bytes is not None:
        pipe.model.from_bytes(best_bytes)
    result.seconds = time.perf_counter() - started
    return result


def _distill_step(pipe, batch: list[Example], soft: np.ndarray, optimizer: Optimizer,
                  alpha: float, temperature: float, dropout: float) -> float:
    set_dropout_rate(pipe.model, dropout)
    logits, backprop = pipe.model.begin_update([eg.predicted for eg in batch])
    loss, d_logits = distillation_loss(pipe, batch, logits, soft, alpha=alpha,
                                       temperature=temperature)
    backprop(d_logits)
    pipe.finish_update(optimizer)
    return loss


def _check_student(nlp: Language, component: str) -> None:
    others = [name for name, p in nlp.pipeline if name != component and hasattr(p, "model")]
    if others:
        raise ConfigError(
            f"The student pipeline has other trainable components {others}: distillation "
            f"updates only '{component}', so use a student whose senti_textcat holds its own "
            "encoder (configs/cpu_fast.cfg)."
        )


# --- measuring -------------------------------------------------------------------------------
def docs_per_second(nlp: Language, texts: Sequence[str], batch_size: int = 64,
                    repeats: int = 1) -> float:
    """Throughput of ``nlp.pipe`` over ``texts`` (best of ``repeats``)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _doc in nlp.pipe(texts, batch_size=batch_size):
            pass
        best = min(best, time.perf_counter() - start)
    return len(texts) / max(best, 1e-9)


# --- the command -----------------------------------------------------------------------------
def _gold_examples(nlp: Language, path, what: str) -> list[Example]:
    from ..util import read_docs

    docs = read_docs(path, nlp, what)
    return [Example.from_dict(nlp.make_doc(d.text), {"cats": dict(d.cats)}) for d in docs
            if d.text.strip()]


def _summary(nlp: Language, examples: list[Example]) -> dict[str, float]:
    scores = nlp.evaluate(examples)
    texts = [eg.reference.text for eg in examples]
    return {"acc": scores.get("senti_acc"), "macro_f": scores.get("senti_macro_f"),
            "docs_per_s": docs_per_second(nlp, texts, repeats=2)}


def run_distillation(teacher: Language, student_config, data, *, dev=None, output=None,
                     alpha: float = 0.5, temperature: float = 2.0, epochs: int = 10,
                     batch_size: int = 32, seed: int = 0, component: str = COMPONENT,
                     progress: bool = True) -> dict[str, Any]:
    """Distil ``teacher`` into a student built from ``student_config``; returns teacher and
    student accuracy, macro-F1 and docs/s on ``dev`` (when given) and saves the student."""
    import spacy
    from thinc.api import Config

    from ..util import find_textcat

    t_pipe = find_textcat(teacher, component)
    config = Config().from_disk(student_config)
    config["system"]["seed"] = seed
    student = spacy.util.load_model_from_config(config, auto_fill=True, validate=True)
    s_pipe = find_textcat(student, component)
    _check_student(student, component)
    t_heads = {h.name: h for h in t_pipe.heads}
    for head in s_pipe.heads:  # same labels, same order as the teacher
        if head.name not in t_heads:
            raise ConfigError(f"Student head {head.name!r} is not a teacher head "
                             f"({list(t_heads)}).")
        head.labels, head.groups = list(t_heads[head.name].labels), list(t_heads[head.name].groups)
    train = _gold_examples(student, data, "DATA")
    if not train:
        raise InputError(f"DATA {data} holds no non-empty docs.")
    texts = [eg.reference.text for eg in train]
    logits = teacher_logits(teacher, texts, component=component, progress=progress)
    soft_all = soften(t_pipe.heads, logits, temperature)
    dev_egs = _gold_examples(student, dev, "DEV") if dev is not None else None
    fix_random_seed(seed)
    optimizer = student.initialize(get_examples=lambda: train)
    check_compatible([t_heads[h.name] for h in s_pipe.heads], s_pipe.heads)
    soft = _align(t_pipe.heads, s_pipe.heads, soft_all)
    fitted = fit(student, train, soft=soft, alpha=alpha, temperature=temperature,
                 epochs=epochs, batch_size=batch_size, dev=dev_egs, seed=seed,
                 optimizer=optimizer, initialize=False, progress=progress)
    summary: dict[str, Any] = {"alpha": alpha, "temperature": temperature, "epochs": epochs,
                               "n_train": len(train), "train_seconds": fitted.seconds}
    if dev_egs:
        teacher_dev = [Example.from_dict(teacher.make_doc(eg.reference.text),
                                         {"cats": dict(eg.reference.cats)}) for eg in dev_egs]
        summary["teacher"] = _summary(teacher, teacher_dev)
        summary["student"] = _summary(student, dev_egs)
        summary["best_epoch"] = fitted.best.get("epoch")
    if output is not None:
        student.to_disk(output)
    return summary


def _align(teacher_heads: Sequence[Head], student_heads: Sequence[Head],
           soft: np.ndarray) -> np.ndarray:
    """Teacher columns re-ordered to the student's heads (which may be a subset)."""
    cols, start = {}, 0
    for head in teacher_heads:
        cols[head.name] = slice(start, start + head.n_outputs)
        start += head.n_outputs
    return np.concatenate([soft[:, cols[h.name]] for h in student_heads], axis=1)
