"""spacy-senti cv: stratified folds and a 2-fold run through spaCy's training loop."""

from __future__ import annotations

import json

import pytest
import spacy
from helpers import CONFIGS, write_docbin
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.training.cv import make_folds, strat_label

SMALL = ["--components.senti_textcat.model.tok2vec.encode.depth", "1",
         "--components.senti_textcat.model.tok2vec.encode.width", "32",
         "--components.senti_textcat.model.tok2vec.embed.width", "32",
         "--training.max_steps", "3", "--training.eval_frequency", "3"]


def docs(n=24, multilabel=False):
    nlp = spacy.blank("en")
    out = []
    for i in range(n):
        doc = nlp.make_doc(["good great fun", "bad awful sad", "fine ok plot"][i % 3] + f" {i}")
        if multilabel:
            doc.cats = {"emotion/joy": float(i % 2), "emotion/anger": float(i % 3 == 0)}
        else:
            label = ["positive", "negative", "neutral"][i % 3]
            doc.cats = {f"sentiment/{lab}": float(lab == label)
                        for lab in ("positive", "negative", "neutral")}
        out.append(doc)
    return out


@pytest.mark.parametrize("multilabel", [False, True])
def test_make_folds_are_disjoint_and_stratified(multilabel):
    data = docs(30, multilabel)
    folds = make_folds(data, 3, seed=0)
    assert sorted(i for f in folds for i in f) == list(range(30))
    if not multilabel:
        for fold in folds:
            assert [strat_label(data[i]) for i in fold].count("sentiment/positive") in (3, 4)
    with pytest.raises(ValueError, match="folds"):
        make_folds(data[:2], 3)


def test_cv_command_two_folds(tmp_path):
    write_docbin(tmp_path / "data.spacy", docs())
    out = tmp_path / "cv"
    res = CliRunner().invoke(app, ["cv", str(CONFIGS / "cpu_fast.cfg"),
                                   str(tmp_path / "data.spacy"), "--folds", "2",
                                   "--output", str(out), *SMALL])
    assert res.exit_code == 0, res.output
    result = json.loads((out / "cv.json").read_text())
    assert len(result["folds"]) == 2
    assert [s["test"] for s in result["sizes"]] == [12, 12]
    summary = result["summary"]["senti_sentiment_acc"]
    assert 0.0 <= summary["mean"] <= 1.0 and summary["std"] >= 0.0
    assert "senti_sentiment_macro_f" in (out / "cv.md").read_text()
    assert not (out / "fold0" / "model").exists()  # models dropped without --keep-models


def test_cv_command_errors(tmp_path):
    res = CliRunner().invoke(app, ["cv", str(CONFIGS / "cpu_fast.cfg"),
                                   str(tmp_path / "none.spacy")])
    assert res.exit_code == 1 and "not found" in res.output
    (tmp_path / "bad.spacy").write_text("not a docbin")
    res = CliRunner().invoke(app, ["cv", str(CONFIGS / "cpu_fast.cfg"),
                                   str(tmp_path / "bad.spacy")])
    assert res.exit_code == 1 and "not a spaCy DocBin" in res.output
