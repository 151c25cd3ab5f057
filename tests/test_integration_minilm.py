"""A few real training steps with the offline all-MiniLM-L6-v2 backbone."""

from __future__ import annotations

import subprocess
import sys

import pytest
import spacy
import srsly
from helpers import write_docbin

pytestmark = pytest.mark.slow

POS = {"sentiment/positive": 1.0, "sentiment/negative": 0.0}
NEG = {"sentiment/positive": 0.0, "sentiment/negative": 1.0}
ROWS = [
    ("a gorgeous , witty , seductive movie .", POS),
    ("the plot is nothing but boilerplate clichés .", NEG),
    ("an utterly charming and hilarious film .", POS),
    ("a dull , lifeless mess .", NEG),
] * 4


def test_spacy_train_cli_with_minilm(tmp_path):
    write_docbin(tmp_path / "train.spacy", ROWS)
    out = tmp_path / "out"
    cmd = [
        sys.executable, "-m", "spacy", "train", "configs/sentiment.cfg", "--output", str(out),
        "--paths.train", str(tmp_path / "train.spacy"),
        "--paths.dev", str(tmp_path / "train.spacy"),
        "--training.max_steps", "4", "--training.eval_frequency", "2",
        "--nlp.batch_size", "8", "--training.batcher.size", "8",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "senti_textcat" in result.stdout  # spaCy's training table
    model_dir = out / "model-last"
    config_text = (model_dir / "config.cfg").read_text()
    assert 'backbone = "default"' in config_text and "site-packages" not in config_text
    meta = srsly.read_json(model_dir / "meta.json")
    assert "senti_macro_f" in meta["performance"]

    loaded = spacy.load(model_dir)
    doc = loaded("what a wonderful film")
    assert doc._.sentiment in ("positive", "negative")
    assert set(doc._.sentiment_scores) == {"positive", "negative"}
    assert loaded.get_pipe("transformer").model.get_dim("nO") == 384
