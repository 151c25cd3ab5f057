"""Registry names and entry points: what users' configs and spacy.load rely on."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points

import pytest

EXPECTED = {
    "spacy_factories": {
        "senti_textcat", "senti_aspects", "senti_lexicon", "senti_hybrid", "senti_onnx",
        "senti_transformer",
    },
    "spacy_architectures": {
        "spacy_senti.MultiHeadClassifier.v1",
        "spacy_senti.WordpieceListener.v1",
        "spacy_senti.TransformerModel.v1",
        "spacy_senti.AspectTagger.v1",
    },
    "spacy_scorers": {"spacy_senti.scorer.v1", "spacy_senti.lexicon_scorer.v1",
                      "spacy_senti.aspects_scorer.v1"},
    "spacy_callbacks": {"spacy_senti.initialize_frozen.v1", "spacy_senti.torch_averages.v1"},
    "thinc_optimizers": {"spacy_senti.AdamLLRD.v1"},
    "spacy_batchers": {"spacy_senti.batch_by_length.v1"},
    "spacy_misc": {"spacy_senti.wordpiece_length.v1"},
}


@pytest.mark.parametrize("group", list(EXPECTED))
def test_entry_points_declared(group):
    names = {ep.name for ep in entry_points(group=group) if ep.value.startswith("spacy_senti")}
    assert EXPECTED[group] <= names
    for ep in entry_points(group=group):
        if ep.value.startswith("spacy_senti"):
            assert callable(ep.load())


def test_add_pipe_without_importing_spacy_senti():
    code = (
        "import sys, spacy\n"
        "nlp = spacy.blank('en')\n"
        "pipe = nlp.add_pipe('senti_textcat')\n"
        "from spacy.util import registry\n"
        "registry.get('architectures', 'spacy_senti.MultiHeadClassifier.v1')\n"
        "registry.get('scorers', 'spacy_senti.scorer.v1')\n"
        "print(type(pipe).__name__, nlp.pipe_names)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "SentiTextCategorizer ['senti_textcat']" in out.stdout
