"""GPU path: run with `pytest --gpu` on a CUDA machine with `pip install spacy-senti[cuda]`."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import load_config, make_examples, nlp_from_config, train
from test_textcat import CASES, LR

pytestmark = pytest.mark.gpu


@pytest.fixture
def gpu():
    import spacy
    from thinc.api import get_current_ops, set_current_ops
    from thinc.backends import NumpyOps

    assert spacy.require_gpu(), "no GPU"
    yield get_current_ops()
    set_current_ops(NumpyOps())


@pytest.mark.parametrize("kind", list(CASES))
def test_train_and_predict_on_gpu(tiny_bert, gpu, kind, tmp_path):
    import cupy

    heads, rows = CASES[kind]
    config = load_config("sentiment", tiny_bert)
    config["components"]["senti_textcat"]["heads"] = heads
    nlp = nlp_from_config(config)
    examples = make_examples(nlp, rows)
    losses = train(nlp, examples, n_iter=80, lr=LR)  # as test_overfitting_IO on CPU
    assert losses[-1] < 0.05
    textcat = nlp.get_pipe("senti_textcat")
    probs = textcat.predict([eg.predicted for eg in examples])
    assert isinstance(probs, cupy.ndarray)
    docs = list(nlp.pipe([t for t, _ in rows]))
    for doc, (_, gold) in zip(docs, rows):
        for key, value in gold.items():
            assert abs(doc.cats[key] - value) < 0.5
    nlp.to_disk(tmp_path / "m")
    import spacy

    reloaded = spacy.load(tmp_path / "m")
    np.testing.assert_allclose(
        list(reloaded(rows[0][0]).cats.values()), list(docs[0].cats.values()), atol=1e-4
    )
