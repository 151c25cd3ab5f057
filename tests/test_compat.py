"""A pipeline saved by spacy-senti 0.1 keeps loading and predicting the same values.

``tests/data/compat_v0_1`` was written by ``scripts/make_compat_pipeline.py`` from the 0.1
code (transformer + senti_textcat with exclusive, multilabel and grouped heads and tuned
thresholds, senti_lexicon, a fitted senti_hybrid stacker), with its predictions on 20 texts.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import spacy
import srsly

DATA = Path(__file__).parent / "data" / "compat_v0_1"


def assert_close(actual, expected, where: str) -> None:
    if isinstance(expected, dict):
        assert isinstance(actual, dict) and set(actual) == set(expected), where
        for key in expected:
            assert_close(actual[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, list):
        assert isinstance(actual, list | tuple) and len(actual) == len(expected), where
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_close(a, e, f"{where}[{i}]")
    elif isinstance(expected, float):
        assert actual is not None and math.isclose(actual, expected, abs_tol=1e-6), (
            f"{where}: {actual} != {expected}")
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


@pytest.fixture(scope="module")
def legacy():
    nlp = spacy.load(DATA / "pipeline")
    return nlp, srsly.read_json(DATA / "predictions.json")


def test_legacy_pipeline_loads_with_every_component(legacy):
    nlp, _ = legacy
    assert nlp.pipe_names == ["transformer", "senti_textcat", "senti_lexicon", "senti_hybrid"]
    heads = nlp.get_pipe("senti_textcat").cfg["heads"]
    expected = {"joy": 0.4, "anger": 0.55, "sadness": 0.3}
    assert heads["emotion"]["thresholds"] == pytest.approx(expected)


def test_legacy_pipeline_predicts_the_saved_values(legacy):
    nlp, expected = legacy
    docs = list(nlp.pipe([row["text"] for row in expected]))
    for doc, row in zip(docs, expected):
        assert_close(dict(doc.cats), row["cats"], f"{doc.text!r} cats")
        for name, value in row["ext"].items():
            assert_close(doc._.get(name), value, f"{doc.text!r} doc._.{name}")
        assert_close([t._.valence for t in doc], row["valence"], f"{doc.text!r} valence")
