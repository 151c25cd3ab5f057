"""spacy_senti.AdamLLRD.v1 (layer-wise LR decay) and spacy_senti.torch_averages.v1 (Thinc's
use_averages reaching the transformer), on the tiny random BERT (2 layers)."""

from __future__ import annotations

import functools
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import (
    REPO,
    SENTIMENT_ROWS,
    load_bench_script,
    load_config,
    make_examples,
    nlp_from_config,
    sentiment_cats,
    write_docbin,
)
from spacy.cli._util import parse_config_overrides
from spacy.util import registry
from thinc.api import Adam, fix_random_seed

from spacy_senti.errors import ConfigError
from spacy_senti.training.optimizers import (
    LayerDecayAdam,
    configure_adam_llrd,
    layer_depth,
    make_torch_averages,
    pytorch_shims,
)

LR = 1e-3
ADAM = {"L2": 0.01, "L2_is_weight_decay": True, "grad_clip": 1.0, "use_averages": False}


def _pipeline(tiny_bert: Path):
    nlp = nlp_from_config(load_config("sentiment", tiny_bert))
    examples = make_examples(nlp, [(t, sentiment_cats(lab)) for t, lab in SENTIMENT_ROWS])
    fix_random_seed(0)
    nlp.initialize(get_examples=lambda: examples)
    return nlp, examples


def _weights(nlp) -> dict:
    """Every trainable weight, keyed as Thinc's optimizer keys it: (model or shim id, name)."""
    out = {}
    for shim in pytorch_shims(nlp):
        for name, value in shim._model.state_dict().items():
            out[(shim.id, name)] = value.detach().cpu().numpy().copy()
    for _, pipe in nlp.components:
        for node in pipe.model.walk():
            for name in node.param_names:
                if node.has_param(name):
                    out[(node.id, name)] = np.array(node.get_param(name), copy=True)
    return out


def _update(nlp, examples, optimizer, steps: int = 1) -> None:
    """Training steps as spaCy's loop makes them: ``nlp.update(sgd=False)``, then
    ``finish_update`` on every pipe. (``nlp.update(sgd=optimizer)`` runs the transformer's
    finish_update before its listener has backpropagated, so spaCy 3.8 applies the
    transformer's gradient one call late: explosion/spaCy#12136, fixed for v4 only.)"""
    for step in range(steps):
        fix_random_seed(step)  # the same HF dropout masks in every run
        nlp.update(examples, sgd=False, drop=0.0)
        for _, pipe in nlp.pipeline:
            pipe.finish_update(optimizer)


# --- layer-wise learning-rate decay ----------------------------------------------------------

@pytest.mark.parametrize("name,depth", [
    ("embeddings.word_embeddings.weight", 0),
    ("embeddings.LayerNorm.bias", 0),
    ("roberta.embeddings.position_embeddings.weight", 0),
    ("encoder.layer.0.attention.self.query.weight", 1),
    ("encoder.layer.11.output.dense.bias", 12),
    ("transformer.layer.5.ffn.lin1.weight", 6),  # DistilBERT
    ("encoder.layers.2.fc1.weight", 3),
    ("pooler.dense.weight", None),
    ("W", None),
    ("b", None),
])
def test_layer_depth_from_the_torch_name(name, depth):
    assert layer_depth(name) == depth


def test_layer_scale_goes_down_from_the_top_layer():
    opt = LayerDecayAdam(LR, layer_decay=0.5, n_layers=2)
    scale = {name: opt.layer_scale((1, name)) for name in (
        "embeddings.word_embeddings.weight", "encoder.layer.0.output.dense.weight",
        "encoder.layer.1.output.dense.weight", "pooler.dense.weight", "W")}
    assert list(scale.values()) == [0.25, 0.5, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("kwargs,match", [
    ({"layer_decay": 0.0, "n_layers": 6}, "layer_decay"),
    ({"layer_decay": 1.5, "n_layers": 6}, "layer_decay"),
    ({"layer_decay": 0.8, "n_layers": 0}, "n_layers"),
    ({"layer_decay": 0.8, "n_layers": True}, "n_layers"),
])
def test_bad_settings_are_config_errors(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        configure_adam_llrd(LR, **kwargs)


def test_one_update_scales_each_step_by_its_layer(tiny_bert):
    """Adam's step is linear in its learning rate (weight decay included), so from the same
    weights and gradients each parameter moves exactly layer_scale x what plain Adam moves it:
    embeddings 0.25x, layer 0 0.5x, layer 1 and the Thinc head 1x (decay 0.5, 2 layers)."""
    nlp, examples = _pipeline(tiny_bert)
    start = nlp.to_bytes()
    before = _weights(nlp)
    _update(nlp, examples, Adam(LR, **ADAM))
    plain = _weights(nlp)
    nlp.from_bytes(start)
    assert all(np.array_equal(before[k], v) for k, v in _weights(nlp).items())
    llrd = configure_adam_llrd(LR, layer_decay=0.5, n_layers=2, **ADAM)
    _update(nlp, examples, llrd)
    decayed = _weights(nlp)
    scales_seen = set()
    for key, w0 in before.items():
        step_plain, step_llrd = plain[key] - w0, decayed[key] - w0
        if not step_plain.any():  # not updated (the pooler: no gradient reaches it)
            assert not step_llrd.any(), key
            continue
        scale = llrd.layer_scale(key)
        scales_seen.add(scale)
        np.testing.assert_allclose(step_llrd, scale * step_plain, rtol=1e-3, atol=1e-8,
                                   err_msg=str(key))
    assert scales_seen == {0.25, 0.5, 1.0}
    # Adam's first step is about lr x sign(gradient) where the gradient is not tiny (weight
    # decay adds lr x L2 x w: 1% here, LayerNorm weights are about 1)
    key = (pytorch_shims(nlp)[0].id, "embeddings.LayerNorm.weight")
    assert np.median(np.abs(decayed[key] - before[key])) == pytest.approx(0.25 * LR, rel=0.05)


def test_decay_one_is_adam_bit_for_bit(tiny_bert):
    nlp, examples = _pipeline(tiny_bert)
    start = nlp.to_bytes()
    adam = registry.resolve({"o": {"@optimizers": "Adam.v1", "learn_rate": LR, **ADAM}})["o"]
    _update(nlp, examples, adam, steps=3)
    plain = _weights(nlp)
    nlp.from_bytes(start)
    _update(nlp, examples, configure_adam_llrd(LR, layer_decay=1.0, n_layers=2, **ADAM), 3)
    same = _weights(nlp)
    assert plain.keys() == same.keys()
    assert all(np.array_equal(plain[k], same[k]) for k in plain)


@pytest.mark.parametrize("n_layers,match", [(1, "is in layer 1"), (3, "has 2 layers")])
def test_n_layers_must_match_the_backbone(tiny_bert, n_layers, match):
    nlp, examples = _pipeline(tiny_bert)
    opt = configure_adam_llrd(LR, layer_decay=0.8, n_layers=n_layers, **ADAM)
    with pytest.raises(ConfigError, match=match):
        _update(nlp, examples, opt, steps=2)  # too many layers shows on the second update


# --- spacy train with these settings ----------------------------------------------------------

CAPTURED: list = []


def _capturing(func):
    """``func`` with its own signature (confection validates against it), keeping what it
    returns in CAPTURED: spaCy's training loop does not hand its optimizer out."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        CAPTURED.append(func(*args, **kwargs))
        return CAPTURED[-1]
    return wrapper


registry.optimizers.register("test_senti.captured_adam_llrd.v1",
                             func=_capturing(configure_adam_llrd))
registry.optimizers.register("test_senti.captured_adam.v1", func=_capturing(Adam))


def _spacy_train(tiny_bert: Path, tmp_path: Path, steps: int, **overrides):
    """spaCy's own training loop (as `spacy train` runs it) on configs/sentiment.cfg;
    returns the trained nlp, the optimizer it used and the output folder."""
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    data = write_docbin(tmp_path / "data.spacy",
                        [(t, sentiment_cats(lab)) for t, lab in SENTIMENT_ROWS])
    config = load_config("sentiment", tiny_bert, **{
        "paths.train": str(data), "paths.dev": str(data),
        "training.max_steps": steps, "training.max_epochs": 0,
        "training.eval_frequency": steps, "training.batcher.size": 4,
        "training.optimizer.learn_rate.warmup_steps": 1,
        "training.optimizer.learn_rate.initial_rate": LR})
    for dotted, value in overrides.items():  # set in place: merging a new @function
        *path, leaf = dotted.split(".")      # would replace the whole block
        node = config
        for part in path:
            node = node[part]
        node[leaf] = value
    CAPTURED.clear()
    nlp = init_nlp(config, use_gpu=-1)
    out = tmp_path / "out"
    out.mkdir()
    nlp, _ = train(nlp, out, use_gpu=-1, stdout=sys.stdout, stderr=sys.stderr)
    optimizer = CAPTURED[-1]  # init_nlp resolved one too; train() uses the last
    return nlp, optimizer, out


def test_a_config_with_adam_llrd_trains(tiny_bert, tmp_path):
    nlp, optimizer, out = _spacy_train(tiny_bert, tmp_path, steps=2, **{
        "training.optimizer.@optimizers": "test_senti.captured_adam_llrd.v1",
        "training.optimizer.layer_decay": 0.8, "training.optimizer.n_layers": 2})
    assert isinstance(optimizer, LayerDecayAdam)
    assert optimizer.layer_scale((0, "embeddings.word_embeddings.weight")) == 0.8 ** 2
    counts = set(optimizer.nr_update.values())  # every weight, each step (max_steps + 1)
    assert len(counts) == 1 and counts.pop() >= 2 and len(optimizer.nr_update) > 30
    assert spacy.load(out / "model-last")("i loved this film").cats


# --- weight averaging: Thinc's use_averages and the transformer -------------------------------

def _thinc_average(history: list[np.ndarray]) -> np.ndarray:
    """Thinc's ops.update_averages over a parameter's values after each update."""
    avg = np.zeros_like(history[0])
    for t, w in enumerate(history, start=1):
        decay = min((1 + t) / (10 + t), 0.9999)
        avg -= (1 - decay) * (avg - w)
    return avg


def test_thinc_average_is_a_polynomial_decay_average():
    """The weights the module docstring gives: 9 (t+2)...(t+9) / ((T+2)...(T+10))."""
    rng = np.random.default_rng(0)
    history = [rng.normal(size=3).astype("float64") for _ in range(40)]
    T = len(history)
    weights = [9 * math.prod(t + k for k in range(2, 10)) / math.prod(T + k for k in range(2, 11))
               for t in range(1, T + 1)]
    np.testing.assert_allclose(_thinc_average(history),
                               sum(c * w for c, w in zip(weights, history)), rtol=1e-9)
    # over the 400 steps of a TweetEval run: 61% on the last 40 steps, 92% on the last 100
    T = 400
    weights = [9 * math.prod(t + k for k in range(2, 10)) / math.prod(T + k for k in range(2, 11))
               for t in range(1, T + 1)]
    assert (round(sum(weights[-40:]), 2), round(sum(weights[-100:]), 2)) == (0.61, 0.92)


def test_thinc_alone_leaves_the_transformer_unaveraged(tiny_bert):
    """Why the callback exists: Thinc averages the torch weights under (shim id, name), but
    PyTorchShim.use_params reads "pytorch_<id>_<name>" keys, so inside nlp.use_params the
    transformer keeps its raw weights while the Thinc head switches to its averages. If
    Thinc fixes this, this test fails and the callback is no longer needed."""
    nlp, examples = _pipeline(tiny_bert)
    opt = Adam(LR, **{**ADAM, "use_averages": True})
    _update(nlp, examples, opt, steps=3)
    raw = _weights(nlp)
    shim = pytorch_shims(nlp)[0]
    key = (shim.id, "encoder.layer.1.output.dense.weight")
    assert key in opt.averages and not np.allclose(opt.averages[key], raw[key])
    with nlp.use_params(opt.averages):
        inside = _weights(nlp)
    assert np.array_equal(inside[key], raw[key])
    head = [k for k in opt.averages if k[1] == "W"]
    assert head and all(np.array_equal(inside[k], opt.averages[k]) for k in head)


def test_torch_averages_callback_evaluates_with_the_averages(tiny_bert):
    nlp, examples = _pipeline(tiny_bert)
    nlp = make_torch_averages()(nlp)
    opt = Adam(LR, **{**ADAM, "use_averages": True})
    history: list[dict] = []
    for _ in range(4):
        _update(nlp, examples, opt)
        history.append(_weights(nlp))
    raw = history[-1]
    shim = pytorch_shims(nlp)[0]
    updated = [k for k in opt.averages if k[0] == shim.id]
    assert len(updated) > 10 and (shim.id, "pooler.dense.weight") not in opt.averages
    with nlp.use_params(opt.averages):
        inside = _weights(nlp)
        texts = [t for t, _ in SENTIMENT_ROWS]
        averaged_cats = [doc.cats for doc in nlp.pipe(texts)]
    for key in updated:
        np.testing.assert_array_equal(inside[key], opt.averages[key])
        np.testing.assert_allclose(opt.averages[key],
                                   _thinc_average([h[key] for h in history]), rtol=1e-5,
                                   atol=1e-7)
        assert not np.array_equal(inside[key], raw[key]), key
    pooler = (shim.id, "pooler.dense.weight")
    assert np.array_equal(inside[pooler], raw[pooler])  # never updated: kept as it is
    after = _weights(nlp)  # leaving the block restores the raw weights
    assert all(np.array_equal(after[k], raw[k]) for k in raw)
    assert [doc.cats for doc in nlp.pipe(texts)] != averaged_cats


def test_spacy_train_saves_the_averaged_transformer(tiny_bert, tmp_path):
    """model-last on disk holds Thinc's averages for every updated torch weight and for the
    head, while the nlp left in memory holds the raw last weights."""
    nlp, optimizer, out = _spacy_train(tiny_bert, tmp_path, steps=3, **{
        "training.optimizer.@optimizers": "test_senti.captured_adam.v1",
        "training.optimizer.use_averages": True,
        "initialize.after_init": {"@callbacks": "spacy_senti.torch_averages.v1"}})
    raw = _weights(nlp)
    saved = spacy.load(out / "model-last")
    shim, saved_shim = pytorch_shims(nlp)[0], pytorch_shims(saved)[0]
    on_disk = saved_shim._model.state_dict()
    updated = [name for (owner, name) in optimizer.averages if owner == shim.id]
    assert len(updated) > 10
    for name in updated:
        np.testing.assert_array_equal(on_disk[name].numpy(), optimizer.averages[(shim.id, name)])
        assert not np.array_equal(on_disk[name].numpy(), raw[(shim.id, name)]), name
    textcat, saved_textcat = nlp.get_pipe("senti_textcat"), saved.get_pipe("senti_textcat")
    for node, saved_node in zip(textcat.model.walk(), saved_textcat.model.walk()):
        for name in node.param_names:
            if (node.id, name) in optimizer.averages:
                np.testing.assert_array_equal(saved_node.get_param(name),
                                              optimizer.averages[(node.id, name)])


def test_callback_without_a_transformer_changes_nothing():
    nlp = spacy.blank("en")
    assert make_torch_averages()(nlp) is nlp


# --- the benchmark's experiment definitions ----------------------------------------------------

@pytest.fixture(scope="module")
def bq():
    return load_bench_script("bench_quality")


@pytest.mark.parametrize("run_id", ["tweeteval-ema", "tweeteval-llrd"])
def test_bench_experiments_resolve_to_the_new_settings(bq, run_id):
    from spacy import util

    run = bq.RUNS[run_id]
    cmd = bq.train_command(run_id, run, gpu_id=-1)
    flags = cmd[cmd.index("--paths.train"):]
    flags = [f for i, f in enumerate(flags) if f != "--gpu-id" and flags[i - 1] != "--gpu-id"]
    config = util.load_config(REPO / cmd[cmd.index("train") + 1],
                              overrides=parse_config_overrides(flags), interpolate=True)
    resolved = registry.resolve({"optimizer": config["training"]["optimizer"],
                                 "after_init": config["initialize"]["after_init"]})
    optimizer = resolved["optimizer"]
    assert run.seeds == (0, 1, 2) and run.baseline == "tweeteval"
    if run_id == "tweeteval-ema":
        assert type(optimizer).__name__ == "Optimizer" and optimizer.averages is not None
        assert resolved["after_init"].__qualname__.startswith("make_torch_averages")
    else:
        assert isinstance(optimizer, LayerDecayAdam) and optimizer.averages is None
        assert (optimizer.layer_decay, optimizer.n_layers) == (0.8, 6)
        assert resolved["after_init"] is None
