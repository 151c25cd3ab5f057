"""spacy-senti distill: the distillation loss and gradient, and a tiny teacher -> student run."""

from __future__ import annotations

import json

import numpy as np
import pytest
import spacy
from helpers import CONFIGS, write_docbin
from thinc.api import Adam, Config
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.heads import HeadSpec
from spacy_senti.training.distill import distillation_loss, soften


class _Pipe:
    """The part of senti_textcat that distillation_loss uses (gold loss switched off)."""

    def __init__(self, heads):
        from thinc.api import NumpyOps

        self.heads = heads
        self.model = type("M", (), {"ops": NumpyOps()})()

    def get_loss(self, examples, logits):
        return 0.0, np.zeros_like(logits)


def test_soften_and_kd_gradient_matches_finite_differences():
    heads = [HeadSpec("sentiment", "exclusive", labels=["neg", "pos", "neu"]),
             HeadSpec("emotion", "multilabel", labels=["joy", "anger"])]
    rng = np.random.RandomState(0)
    teacher = soften(heads, rng.normal(size=(4, 5)), 2.0)
    assert np.allclose(teacher[:, :3].sum(axis=1), 1.0)
    assert np.allclose(soften(heads, np.zeros((1, 5)), 5.0), [[1 / 3] * 3 + [0.5] * 2])
    pipe, logits = _Pipe(heads), rng.normal(size=(4, 5)).astype("f")

    def loss(z):
        return distillation_loss(pipe, [], z, teacher, alpha=0.0, temperature=2.0)[0]

    _, grad = distillation_loss(pipe, [], logits, teacher, alpha=0.0, temperature=2.0)
    eps = 1e-2
    for i, j in [(0, 0), (1, 2), (2, 3), (3, 4)]:
        up, down = logits.copy(), logits.copy()
        up[i, j] += eps
        down[i, j] -= eps
        assert grad[i, j] == pytest.approx((loss(up) - loss(down)) / (2 * eps), rel=0.05,
                                           abs=1e-4)


def _docbin(path, n=12):
    rows = [("good great love fun" if i % 2 == 0 else "bad awful hate sad",
             {"sentiment/positive": float(i % 2 == 0), "sentiment/negative": float(i % 2 == 1)})
            for i in range(n)]
    return write_docbin(path, rows)


def test_distill_command(cpu_fast_pipeline, tmp_path):
    teacher = cpu_fast_pipeline
    config = Config().from_disk(CONFIGS / "cpu_fast.cfg", interpolate=False)
    encode = config["components"]["senti_textcat"]["model"]["tok2vec"]["encode"]
    encode["depth"], encode["width"] = 1, 32
    config["components"]["senti_textcat"]["model"]["tok2vec"]["embed"]["width"] = 32
    config.to_disk(tmp_path / "student.cfg")
    data = _docbin(tmp_path / "train.spacy")
    out = tmp_path / "student"
    res = CliRunner().invoke(app, ["distill", str(teacher), str(tmp_path / "student.cfg"),
                                   str(data), "--dev", str(data), "--output", str(out),
                                   "--epochs", "3", "--alpha", "0.3"])
    assert res.exit_code == 0, res.output
    summary = json.loads((out / "distill.json").read_text())
    assert summary["student"]["acc"] is not None and summary["teacher"]["docs_per_s"] > 0
    student = spacy.load(out)
    assert student.get_pipe("senti_textcat").labels == teacher_labels(teacher)


def teacher_labels(path):
    return spacy.load(path).get_pipe("senti_textcat").labels


def test_distill_rejects_missing_files(tmp_path):
    res = CliRunner().invoke(app, ["distill", str(tmp_path / "t"), str(CONFIGS / "cpu_fast.cfg"),
                                   str(tmp_path / "none.spacy")])
    assert res.exit_code == 1 and "not found" in res.output


def _transformer_weights(nlp) -> dict[str, np.ndarray]:
    torch_model = nlp.get_pipe("transformer").model.transformer
    return {k: v.detach().numpy().copy() for k, v in torch_model.state_dict().items()}


@pytest.mark.parametrize("step", ["train_step", "nlp.update"])
def test_one_step_moves_the_shared_transformer(tiny_bert, step):
    """spaCy's nlp.update(sgd=...) finishes the transformer before its listeners backprop
    (explosion/spaCy#12136): one step leaves it untouched. train_step (used by
    distill.fit) moves it in the same step, as spacy train does."""
    from helpers import load_config, make_examples, nlp_from_config

    from spacy_senti.training.update import train_step

    nlp = nlp_from_config(load_config("sentiment", tiny_bert))
    rows = [("i loved it", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
            ("i hated it", {"sentiment/positive": 0.0, "sentiment/negative": 1.0})]
    examples = make_examples(nlp, rows)
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-3)  # the config's warm-up schedule starts at rate 0
    before = _transformer_weights(nlp)
    if step == "train_step":
        train_step(nlp, examples, optimizer)
    else:
        nlp.update(examples, sgd=optimizer)
    after = _transformer_weights(nlp)
    moved = max(float(np.abs(after[k] - before[k]).max()) for k in before)
    assert (moved > 0) == (step == "train_step")


def test_distill_fit_without_teacher_trains_the_transformer(tiny_bert):
    """fit() on hard labels with a transformer student: one epoch of one batch moves it."""
    from helpers import load_config, make_examples, nlp_from_config

    from spacy_senti.training.distill import fit

    nlp = nlp_from_config(load_config("sentiment", tiny_bert))
    rows = [("i loved it", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
            ("i hated it", {"sentiment/positive": 0.0, "sentiment/negative": 1.0})]
    examples = make_examples(nlp, rows)
    nlp.initialize(lambda: examples)
    before = _transformer_weights(nlp)
    fit(nlp, examples, epochs=1, batch_size=8, progress=False, initialize=False,
        optimizer=Adam(1e-3))
    after = _transformer_weights(nlp)
    assert max(float(np.abs(after[k] - before[k]).max()) for k in before) > 0
