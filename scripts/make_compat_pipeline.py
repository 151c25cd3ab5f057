"""Save a tiny trained pipeline from the current release for the compatibility test.

Builds a tiny random BERT, trains ``transformer + senti_textcat`` (exclusive, multilabel and
grouped heads) for a few steps, sets per-label thresholds, adds ``senti_lexicon`` and a fitted
``senti_hybrid`` stacker, and writes the pipeline plus its predictions on 20 texts to
``tests/data/compat_v0_1/``. ``tests/test_compat.py`` loads it with the current code and
asserts the same ``doc.cats`` and ``doc._`` values. Run once per released format:

    python scripts/make_compat_pipeline.py
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import srsly
from spacy.tokens import Doc

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers import (  # noqa: E402
    build_tiny_bert,
    load_config,
    make_examples,
    nlp_from_config,
    train,
)

from spacy_senti.training.hybrid import fit_hybrid  # noqa: E402

OUT = REPO / "tests" / "data" / "compat_v0_1"
TRAIN = [
    ("i loved this film", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
    ("the plot was awful", {"sentiment/positive": 0.0, "sentiment/negative": 1.0}),
    ("great food and great staff", {"sentiment/positive": 1.0, "sentiment/negative": 0.0}),
    ("i hate this boring movie", {"sentiment/positive": 0.0, "sentiment/negative": 1.0}),
    ("so happy and fun", {"emotion/joy": 1.0, "emotion/anger": 0.0, "emotion/sadness": 0.0}),
    ("i am angry at the staff", {"emotion/joy": 0.0, "emotion/anger": 1.0,
                                 "emotion/sadness": 0.0}),
    ("sad and angry", {"emotion/joy": 0.0, "emotion/anger": 1.0, "emotion/sadness": 1.0}),
    ("the food was great", {"aspect/food/positive": 1.0}),
    ("the waiter was rude but the price was good",
     {"aspect/service/negative": 1.0, "aspect/price/positive": 1.0}),
    ("awful food", {"aspect/food/negative": 1.0}),
]
DEV = [
    ("i loved the food", "positive"), ("awful boring film", "negative"),
    ("great fun", "positive"), ("i hate the staff", "negative"),
    ("really excellent movie", "positive"), ("terrible and sad", "negative"),
    ("amazing plot", "positive"), ("the worst price", "negative"),
]
TEXTS = [
    "i loved this film", "the plot was awful", "great food but rude staff",
    "not good at all", "i am so happy", "sad and boring", "the price was fair",
    "The food was GREAT!!!", "worst service ever :(", "a wonderful fun movie",
    "it was ok", "we hated the ambience", "really really good", "the waiter was angry",
    "excellent", "boring plot, bad acting", "i love it 😀", "not bad", "so sad",
    "the food and the service were amazing",
]


def doc_values(doc: Doc) -> dict:
    ext = {name: doc._.get(name) for name in (
        "sentiment", "sentiment_scores", "emotions", "emotion_labels", "aspects",
        "aspect_scores", "lexicon_score", "lexicon_polarity", "sentiment_sources")}
    return {"text": doc.text, "cats": dict(doc.cats), "ext": ext,
            "valence": [t._.valence for t in doc]}


def main() -> None:
    import torch

    torch.set_num_threads(1)
    if OUT.exists():
        shutil.rmtree(OUT)
    tmp = OUT.parent / "_tiny_bert_tmp"
    backbone = build_tiny_bert(tmp)
    nlp = nlp_from_config(load_config("multitask", backbone))
    train(nlp, make_examples(nlp, TRAIN), n_iter=15, lr=1e-3)
    nlp.get_pipe("senti_textcat").set_thresholds(
        "emotion", {"joy": 0.4, "anger": 0.55, "sadness": 0.3})
    dev = [nlp.make_doc(t) for t, _ in DEV]
    for doc, (_, label) in zip(dev, DEV):
        doc.cats = {"sentiment/positive": float(label == "positive"),
                    "sentiment/negative": float(label == "negative")}
    fit_hybrid(nlp, dev, mode="stacker", head="sentiment")
    OUT.mkdir(parents=True)
    nlp.to_disk(OUT / "pipeline")
    shutil.rmtree(tmp)
    srsly.write_json(OUT / "predictions.json", [doc_values(d) for d in nlp.pipe(TEXTS)])
    print(f"saved {OUT} with pipeline {nlp.pipe_names}")


if __name__ == "__main__":
    main()
