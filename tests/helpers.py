"""Builders and constants shared by the test modules (and scripts/make_compat_pipeline.py).

Fixtures and pytest hooks live in conftest.py; everything importable lives here, so that no
module needs ``from conftest import``.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.training import Example
from thinc.api import Config

from spacy_senti.training.update import train_step

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"
SHARED_DATA = REPO.parent / "shared" / "data"

WORDS = (
    "good great love loved happy wonderful excellent fun joy amazing bad awful hate hated "
    "terrible sad boring angry worst poor the a and but not very was is it this food service "
    "price ambience movie film plot staff waiter i we you they so really"
).split()


def build_tiny_bert(path: Path) -> Path:
    """Save a randomly initialised 2-layer BERT (hidden 32) with a small WordPiece vocab.

    Random, not pretrained: pipelines over it need a higher learning rate (about 1e-3 to
    3e-3) than fine-tuning a real backbone to overfit a few examples.
    """
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()\"")
    vocab = specials + chars + [f"##{c}" for c in chars] + WORDS
    (path / "vocab.txt").write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf8")
    tokenizer = BertTokenizerFast(vocab_file=str(path / "vocab.txt"), do_lower_case=True)
    tokenizer.save_pretrained(str(path))
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        # 512 like BERT: out-of-vocabulary words split into characters, so a 128-token
        # window of SST-2 text reaches 465 wordpieces here
        max_position_embeddings=512,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(path))
    return path


def load_config(name: str, backbone: Path, **overrides) -> Config:
    """A config from configs/ with the backbone pointed at a test model.

    Read without interpolation, so ``paths.backbone`` reaches every ``${paths.backbone}``
    (merging into an interpolated config would leave the default MiniLM in place).
    """
    config = Config().from_disk(CONFIGS / f"{name}.cfg", interpolate=False)
    flat = {"paths.backbone": str(backbone), **overrides}
    return config.merge(_nest(flat)).interpolate()


def _nest(flat: dict) -> dict:
    nested: dict = {}
    for dotted, value in flat.items():
        parts = dotted.split(".")
        node = nested
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return nested


def nlp_from_config(config: Config) -> Language:
    return spacy.util.load_model_from_config(config, auto_fill=True, validate=True)


def make_examples(nlp: Language, rows: list[tuple[str, dict[str, float]]]) -> list[Example]:
    return [Example.from_dict(nlp.make_doc(text), {"cats": cats}) for text, cats in rows]


def write_docbin(path: Path, rows: Iterable[Doc | tuple[str, dict[str, float]]],
                 nlp: Language | None = None) -> Path:
    """Write docs, or ``(text, cats)`` rows tokenised by ``nlp`` (default: a blank English
    pipeline), to a ``.spacy`` file; returns ``path``."""
    nlp = nlp if nlp is not None else spacy.blank("en")
    docbin = DocBin()
    for row in rows:
        if isinstance(row, Doc):
            doc = row
        else:
            text, cats = row
            doc = nlp.make_doc(text)
            doc.cats = dict(cats)
        docbin.add(doc)
    docbin.to_disk(path)
    return path


def write_jsonl(path: Path, texts: Iterable[str], field: str = "text") -> Path:
    """One JSON object ``{field: text}`` a line."""
    path.write_text("".join(json.dumps({field: t}) + "\n" for t in texts), encoding="utf8")
    return path


# --- pipelines shared by several modules (built once per session by conftest's fixtures) ---
SENTIMENT_ROWS = [
    ("i loved this film", "positive"),
    ("the plot was awful", "negative"),
    ("great food and great staff", "positive"),
    ("i hate this boring movie", "negative"),
    ("a wonderful fun movie", "positive"),
    ("the worst service", "negative"),
    ("happy with the food", "positive"),
    ("sad and boring plot", "negative"),
]
# configs/multitask.cfg without senti_aspects (whose initialize needs gold aspect terms)
MULTITASK_TEXTCAT_ONLY = {"nlp.pipeline": ["transformer", "senti_textcat"]}
CPU_FAST_SMALL = {
    "components.senti_textcat.model.tok2vec.embed.width": 32,
    "components.senti_textcat.model.tok2vec.embed.rows": [500, 100, 200, 200],
    "components.senti_textcat.model.tok2vec.encode.width": 32,
    "components.senti_textcat.model.tok2vec.encode.depth": 1,
}


def sentiment_cats(label: str, labels=("negative", "positive")) -> dict[str, float]:
    return {f"sentiment/{lab}": float(lab == label) for lab in labels}


def build_sentiment_pipeline(backbone: Path, path: Path) -> Path:
    """transformer + senti_textcat (one exclusive sentiment head) overfitted on
    SENTIMENT_ROWS, saved to ``path``: every training text is then predicted right."""
    nlp = nlp_from_config(load_config("sentiment", backbone))
    examples = make_examples(nlp, [(t, sentiment_cats(lab)) for t, lab in SENTIMENT_ROWS])
    losses = train(nlp, examples, n_iter=40, lr=2e-3)
    assert losses[-1] < 0.05, losses[-5:]
    predicted = [doc._.sentiment for doc in nlp.pipe([text for text, _ in SENTIMENT_ROWS])]
    assert predicted == [label for _, label in SENTIMENT_ROWS]
    nlp.to_disk(path)
    return path


def build_cpu_fast_pipeline(path: Path) -> Path:
    """A small tok2vec (configs/cpu_fast.cfg) sentiment pipeline trained on a few texts."""
    nlp = nlp_from_config(load_config("cpu_fast", path / "no_backbone", **CPU_FAST_SMALL))
    pos, neg = ["good great love happy", "wonderful fun joy"], ["bad awful hate",
                                                                "terrible sad worst"]
    rows = [(t, sentiment_cats("positive")) for t in pos]
    rows += [(t, sentiment_cats("negative")) for t in neg]
    train(nlp, make_examples(nlp, rows), n_iter=10)
    nlp.to_disk(path)
    return path


def train(nlp: Language, examples: list[Example], n_iter: int = 60, lr: float = 0.005,
          seed: int = 0) -> list[float]:
    """Overfit a pipeline on a few examples; returns the loss per iteration."""
    from thinc.api import Adam, fix_random_seed

    fix_random_seed(seed)
    optimizer = nlp.initialize(get_examples=lambda: examples)
    optimizer = Adam(lr)
    history = []
    rng = random.Random(seed)
    for _ in range(n_iter):
        batch = list(examples)
        rng.shuffle(batch)
        losses: dict[str, float] = {}
        train_step(nlp, batch, optimizer, losses=losses)
        history.append(losses["senti_textcat"])
    return history


# --- aspect terms (senti_aspects) ----------------------------------------------------------
# (text, [(start_token, end_token, polarity)], sentence sentiment)
ASPECT_ROWS = [
    ("the pad thai was great but the waiter was rude", [(1, 3, "positive"), (7, 8, "negative")],
     "positive"),
    ("battery life is awful", [(0, 2, "negative")], "negative"),
    ("we came here on a friday", [], "positive"),
    ("the screen is fine", [(1, 2, "neutral")], "positive"),
    ("i love the staff", [(3, 4, "positive")], "positive"),
    ("the price was terrible", [(1, 2, "negative")], "negative"),
]


def aspect_doc(nlp: Language, text: str, spans, key: str = "aspects") -> Doc:
    """A doc with gold aspect terms in ``doc.spans[key]`` (an empty group when none)."""
    from spacy.tokens import Span, SpanGroup

    doc = nlp.make_doc(text)
    doc.spans[key] = SpanGroup(doc, name=key, spans=[Span(doc, s, e, label=lab)
                                                     for s, e, lab in spans])
    return doc


def aspect_examples(nlp: Language, rows=ASPECT_ROWS, with_sentiment: bool = False
                    ) -> list[Example]:
    examples = []
    for text, spans, label in rows:
        ref = aspect_doc(nlp, text, spans)
        if with_sentiment:
            ref.cats = sentiment_cats(label)
        examples.append(Example(nlp.make_doc(text), ref))
    return examples


def build_aspects_pipeline(backbone: Path, path: Path, with_textcat: bool = True,
                           n_iter: int = 60) -> Path:
    """transformer (+ senti_textcat, one sentiment head) + senti_aspects from
    configs/aspect_terms.cfg, overfitted on ASPECT_ROWS: every training text's terms and
    polarities are then predicted exactly. Saved to ``path``."""
    from thinc.api import Adam, fix_random_seed

    nlp = nlp_from_config(load_config("aspect_terms", backbone))
    if with_textcat:
        nlp.add_pipe("senti_textcat", before="senti_aspects",
                     config={"heads": {"sentiment": {"kind": "exclusive"}}})
    examples = aspect_examples(nlp, with_sentiment=with_textcat)
    fix_random_seed(0)
    nlp.initialize(get_examples=lambda: examples)
    optimizer = Adam(5e-3)
    rng = random.Random(0)
    for _ in range(n_iter):
        batch = list(examples)
        rng.shuffle(batch)
        train_step(nlp, batch, optimizer)
    for doc, (_, spans, _) in zip(nlp.pipe([r[0] for r in ASPECT_ROWS]), ASPECT_ROWS):
        found = [(s.start, s.end, s.label_) for s in doc.spans["aspects"]]
        assert found == spans, (doc.text, found, spans)
    nlp.to_disk(path)
    return path


def load_bench_script(name: str):
    """``bench/<name>.py`` imported as a module (``bench/_common.py`` importable, as when it
    runs as a script)."""
    import importlib.util
    import sys

    repo = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location(name, repo / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses resolve annotations via sys.modules
    sys.path.insert(0, str(repo / "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(repo / "bench"))
    return module
