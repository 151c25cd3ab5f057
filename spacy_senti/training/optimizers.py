"""Fine-tuning levers Thinc lacks for PyTorch weights: layer-wise LR decay, averaged weights.

``spacy_senti.AdamLLRD.v1`` (a Thinc optimizer) is Thinc's Adam with layer-wise learning-rate
decay (Howard & Ruder 2018; Clark et al. 2020, ELECTRA): the transformer's layer ``i`` (0 at
the bottom) trains at ``learn_rate * layer_decay ** (n_layers - 1 - i)``, its embeddings at
``learn_rate * layer_decay ** n_layers``; everything else (the pooler, Thinc's head layers)
at ``learn_rate``. Thinc calls the optimizer once per parameter with ``key = (id, name)``;
``PyTorchShim.finish_update`` passes ``(shim id, torch parameter name)``, so the depth comes
from the name: ``...embeddings.*`` and ``...layer.<i>.*`` (``layers.<i>``), as BERT, RoBERTa,
DistilBERT, XLM-R and DeBERTa name them. The scale goes through Adam's ``lr_scale``, which
also scales the decoupled weight decay, as a per-group ``lr`` does in PyTorch's AdamW.

``spacy_senti.torch_averages.v1`` (an ``[initialize.after_init]`` callback) makes Thinc's
``use_averages = true`` reach the transformer. Thinc keeps an average of every parameter it
updates, the PyTorch ones included, keyed ``(shim id, name)``; spaCy evaluates and saves
inside ``nlp.use_params(optimizer.averages)``; but ``PyTorchShim.use_params`` only reads keys
``"pytorch_<shim id>_<name>"``, which nothing writes, so the transformer is evaluated and
saved with its last raw weights while the Thinc head uses its averages. The callback gives
each PyTorch shim a ``use_params`` that loads the averages under the keys Thinc writes
(parameters the optimizer never updated, e.g. an unused pooler, keep their current values).

Thinc's average is not a plain running mean: after update ``t`` of a parameter
``avg = d * avg + (1 - d) * w`` with ``d = min((1 + t) / (10 + t), 0.9999)`` (``avg`` starts
at zero), so after ``T`` updates the weights of step ``t`` count
``9 (t+2)(t+3)...(t+9) / ((T+2)(T+3)...(T+10))``: a degree-8 polynomial-decay average that puts
about 61% of its mass on the last 10% of the steps and 92% on the last 25% (the cap binds
only after ~90,000 updates).
"""

from __future__ import annotations

import contextlib
import re
import types
from collections.abc import Callable, Iterator, Mapping
from typing import Any, cast

from spacy.language import Language
from spacy.util import registry
from thinc.api import Optimizer
from thinc.optimizers import ADAM_DEFAULTS, FloatOrSeq, KeyT
from thinc.shims import PyTorchShim
from thinc.types import FloatsXd
from thinc.util import xp2torch

from ..errors import ConfigError

_EMBEDDINGS = re.compile(r"(?:^|\.)embeddings\.")
_LAYER = re.compile(r"(?:^|\.)layers?\.(\d+)\.")


def layer_depth(name: str) -> int | None:
    """Depth of a transformer parameter from its torch name: 0 for the embeddings, ``i + 1``
    for encoder layer ``i``; None for anything else (pooler, Thinc parameters such as ``W``)."""
    match = _LAYER.search(name)
    if match:
        return int(match.group(1)) + 1
    return 0 if _EMBEDDINGS.search(name) else None


class LayerDecayAdam(Optimizer):
    """Thinc's Adam with the learning rate of each transformer layer scaled by its depth."""

    __slots__ = ["layer_decay", "n_layers", "_deepest", "_checked"]

    def __init__(self, learn_rate: FloatOrSeq, *, layer_decay: float, n_layers: int,
                 **kwargs: Any) -> None:
        if isinstance(n_layers, bool) or not isinstance(n_layers, int) or n_layers < 1:
            raise ConfigError(
                f"spacy_senti.AdamLLRD.v1: n_layers must be a positive integer (the "
                f"backbone's num_hidden_layers, 6 for all-MiniLM-L6-v2), not {n_layers!r}."
            )
        if isinstance(layer_decay, bool) or not 0.0 < layer_decay <= 1.0:
            raise ConfigError(
                f"spacy_senti.AdamLLRD.v1: layer_decay must be in (0, 1] (1.0 = plain Adam), "
                f"not {layer_decay!r}."
            )
        super().__init__(learn_rate, **kwargs)
        self.layer_decay = float(layer_decay)
        self.n_layers = n_layers
        self._deepest: dict[int, int] = {}  # shim id -> highest layer index seen
        self._checked: set[int] = set()

    def layer_scale(self, key: KeyT) -> float:
        """The factor on the learning rate of the parameter ``key`` = (id, name)."""
        depth = layer_depth(key[1]) if isinstance(key[1], str) else None
        if depth is None:
            return 1.0
        if depth > self.n_layers:
            raise ConfigError(
                f"spacy_senti.AdamLLRD.v1: parameter {key[1]!r} is in layer {depth - 1} but "
                f"n_layers = {self.n_layers}: set [training.optimizer] n_layers to the "
                "backbone's number of layers."
            )
        return self.layer_decay ** (self.n_layers - depth)

    def _check_depth(self, key: KeyT) -> None:
        """On a parameter's second update (one full pass done), the deepest layer seen in its
        model must be the last one ``n_layers`` promises."""
        owner, depth = key[0], layer_depth(key[1]) if isinstance(key[1], str) else None
        if depth is None:
            return
        if depth > 0:
            self._deepest[owner] = max(self._deepest.get(owner, 0), depth)
        if self.nr_update[key] >= 1 and owner not in self._checked:
            self._checked.add(owner)
            deepest = self._deepest.get(owner, 0)
            if deepest != self.n_layers:
                raise ConfigError(
                    f"spacy_senti.AdamLLRD.v1: the transformer has {deepest} layers but "
                    f"n_layers = {self.n_layers}: set [training.optimizer] n_layers to "
                    f"{deepest}."
                )

    def __call__(self, key: KeyT, weights: FloatsXd, gradient: FloatsXd, *,
                 lr_scale: float = 1.0) -> tuple[FloatsXd, FloatsXd]:
        """Thinc's Adam step with ``lr_scale`` multiplied by the parameter's layer scale."""
        self._check_depth(key)
        scale = self.layer_scale(key)
        return cast(tuple[FloatsXd, FloatsXd],
                    super().__call__(key, weights, gradient, lr_scale=lr_scale * scale))


@registry.optimizers("spacy_senti.AdamLLRD.v1")
def configure_adam_llrd(
    learn_rate: FloatOrSeq = cast(float, ADAM_DEFAULTS["learn_rate"]),
    *,
    layer_decay: float,
    n_layers: int,
    L2: FloatOrSeq = cast(float, ADAM_DEFAULTS["L2"]),
    beta1: FloatOrSeq = cast(float, ADAM_DEFAULTS["beta1"]),
    beta2: FloatOrSeq = cast(float, ADAM_DEFAULTS["beta2"]),
    eps: FloatOrSeq = cast(float, ADAM_DEFAULTS["eps"]),
    grad_clip: FloatOrSeq = cast(float, ADAM_DEFAULTS["grad_clip"]),
    L2_is_weight_decay: bool = True,
    use_averages: bool = True,
) -> LayerDecayAdam:
    """``Adam.v1`` (same arguments and defaults) with layer-wise learning-rate decay.

    layer_decay: factor per layer going down from the top encoder layer (full rate) to the
        embeddings (``layer_decay ** n_layers``); 1.0 is ``Adam.v1`` exactly. ELECTRA used 0.8
        for its Base and Small models, 0.9 for Large.
    n_layers: the backbone's number of encoder layers (``num_hidden_layers``); checked
        against the parameter names on the first updates.
    """
    return LayerDecayAdam(
        learn_rate, layer_decay=layer_decay, n_layers=n_layers, L2=L2, beta1=beta1,
        beta2=beta2, eps=eps, grad_clip=grad_clip, L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
    )


@contextlib.contextmanager
def use_params(self: PyTorchShim, params: Mapping[Any, FloatsXd]) -> Iterator[None]:
    """``PyTorchShim.use_params`` reading the keys Thinc's optimizer writes: (shim id, name)."""
    model = self._model
    current = model.state_dict()
    averaged = {name: params[(self.id, name)] for name in current if (self.id, name) in params}
    if not averaged:
        with PyTorchShim.use_params(self, params):
            yield
        return
    backup = {name: value.clone() for name, value in current.items()}
    device = self.device
    model.load_state_dict(
        {**current, **{name: xp2torch(value, device=device) for name, value in averaged.items()}}
    )
    try:
        yield
    finally:
        model.load_state_dict(backup)


def pytorch_shims(nlp: Language) -> list[PyTorchShim]:
    """Every PyTorch shim in the pipeline's models, once each."""
    found: dict[int, PyTorchShim] = {}
    for _, pipe in nlp.components:
        model = getattr(pipe, "model", None)
        if model is None or isinstance(model, bool):
            continue
        for node in model.walk():
            for shim in node.shims:
                if isinstance(shim, PyTorchShim):
                    found.setdefault(id(shim), shim)
    return list(found.values())


@registry.callbacks("spacy_senti.torch_averages.v1")
def make_torch_averages() -> Callable[[Language], Language]:
    """An ``[initialize.after_init]`` callback: with ``[training.optimizer] use_averages =
    true``, evaluate and save the transformer with its averaged weights too (see the module
    docstring); without averages it changes nothing."""

    def torch_averages(nlp: Language) -> Language:
        for shim in pytorch_shims(nlp):
            shim.use_params = types.MethodType(use_params, shim)  # type: ignore[method-assign]
        return nlp

    return torch_averages
