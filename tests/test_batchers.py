"""spacy_senti.batch_by_length.v1 (length-bucketed batches) and the configs that use it."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import spacy
from helpers import CONFIGS, load_config
from spacy.training import Example
from spacy.util import registry
from transformers import AutoTokenizer

from spacy_senti.errors import BackboneNotFound, ConfigError, InputError
from spacy_senti.training.batchers import (
    WordpieceLength,
    batch_by_length,
    configure_batch_by_length,
)

CONFIG_NAMES = ["sentiment", "emotion", "absa", "aspect_terms", "fewshot", "multitask"]


def items(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct strings of random lengths 1-60 (``len`` is the length)."""
    rng = random.Random(seed)
    return [f"{i:05d}" + "x" * rng.randint(0, 55) for i in range(n)]


@pytest.mark.parametrize("n", [0, 1, 7, 32, 200, 32 * 4 * 3 + 5])
def test_every_item_once_batches_of_size(n):
    data = items(n)
    batches = list(batch_by_length(data, 32, buffer=4, rng=random.Random(0)))
    assert Counter(x for b in batches for x in b) == Counter(data)
    sizes = [len(b) for b in batches]
    assert sizes.count(32) >= len(sizes) - 1  # at most one short batch: the last window's
    assert all(0 < s <= 32 for s in sizes)
    if n % 32 == 0:
        assert set(sizes) <= {32}


def test_batches_are_sorted_buckets_of_each_window():
    """Within a window, the batches are consecutive runs of the length-sorted items: no two
    batches' length ranges overlap, and far less padding than consecutive random batches."""
    data = items(32 * 10)
    batches = list(batch_by_length(data, 32, buffer=10, rng=random.Random(0)))
    ranges = sorted((min(map(len, b)), max(map(len, b))) for b in batches)
    assert all(hi <= next_lo for (_, hi), (next_lo, _) in zip(ranges, ranges[1:]))

    def padded(bs):
        return sum(max(map(len, b)) * len(b) for b in bs)

    random_batches = [data[i : i + 32] for i in range(0, len(data), 32)]
    assert padded(batches) < 0.75 * padded(random_batches)


def test_windows_keep_the_incoming_order_between_them():
    """Sorting never crosses a window: the epoch's shuffle still decides what is batched
    together, and the first window's items come out first."""
    data = items(32 * 6)
    batches = list(batch_by_length(data, 32, buffer=3, rng=random.Random(0)))
    first = {x for b in batches[:3] for x in b}
    assert first == set(data[: 32 * 3])


def test_batch_order_is_shuffled_and_seeded():
    data = items(32 * 20)

    def run(seed):
        return list(batch_by_length(data, 32, buffer=20, rng=random.Random(seed)))

    assert run(0) == run(0)
    assert run(0) != run(1)
    lows = [min(map(len, b)) for b in run(0)]
    assert lows != sorted(lows)  # not long-to-short or short-to-long in the epoch


def test_registered_batcher_follows_spacys_random_seed():
    """``spacy train`` seeds Python's ``random`` ([training] seed): same seed, same batches."""
    batcher = registry.resolve({"b": {"@batchers": "spacy_senti.batch_by_length.v1",
                                      "size": 8}})["b"]
    data = items(100)
    spacy.util.fix_random_seed(3)
    first = list(batcher(data))
    spacy.util.fix_random_seed(3)
    assert list(batcher(data)) == first
    assert [len(b) for b in first].count(8) == 12


def test_custom_length():
    """``get_length`` decides the order: with minus ``len``, one batch holds the 32 longest."""
    data = items(64)
    batches = list(configure_batch_by_length(32, buffer=2, get_length=lambda s: -len(s))(data))
    longest = set(sorted(data, key=lambda s: -len(s))[:32])
    assert longest in [set(b) for b in batches]


@pytest.mark.parametrize("size,buffer", [(0, 50), (-1, 50), (32, 0), (2.5, 50), ("32", 50),
                                         (True, 50)])
def test_bad_sizes(size, buffer):
    with pytest.raises(ConfigError, match="positive integer"):
        configure_batch_by_length(size, buffer=buffer)


def test_wordpiece_length_counts_the_backbones_wordpieces(tiny_bert):
    nlp = spacy.blank("en")
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    length = WordpieceLength(str(tiny_bert))
    for text in ["good", "the food was great but the waiter xyzzy ignored us !", ""]:
        expected = len(tokenizer(text)["input_ids"])
        doc = nlp.make_doc(text)
        assert length(text) == length(doc) == length(Example(doc, doc)) == expected
    assert len(length.cache) == 3
    with pytest.raises(InputError, match="Example, a Doc or a str"):
        length(42)


def test_wordpiece_length_loads_the_tokenizer_on_first_use(tmp_path):
    """Resolving the config must not need the backbone; measuring does, with a clear error."""
    length = registry.resolve({"f": {"@misc": "spacy_senti.wordpiece_length.v1",
                                     "name": str(tmp_path / "missing")}})["f"]
    with pytest.raises(BackboneNotFound):
        length("text")
    with pytest.raises(ConfigError, match="name a backbone"):
        WordpieceLength("")


@pytest.mark.parametrize("name", CONFIG_NAMES)
def test_configs_batch_by_wordpiece_length(name, tiny_bert):
    """Every transformer config resolves its [training.batcher]: fixed-size batches of
    examples, sorted by the backbone's wordpieces, each example once."""
    config = load_config(name, tiny_bert)
    block = config["training"]["batcher"]
    assert block["@batchers"] == "spacy_senti.batch_by_length.v1"
    assert block["get_length"]["name"] == str(tiny_bert)  # follows paths.backbone
    batcher = registry.resolve({"b": block})["b"]
    size = block["size"]
    nlp = spacy.blank("en")
    texts = [" ".join(["good"] * random.Random(i).randint(1, 30)) for i in range(size * 3)]
    examples = [Example(nlp.make_doc(t), nlp.make_doc(t)) for t in texts]
    spacy.util.fix_random_seed(0)
    batches = list(batcher(examples))
    assert [len(b) for b in batches] == [size] * 3
    assert sorted(id(eg) for b in batches for eg in b) == sorted(map(id, examples))
    spans = sorted((min(len(eg) for eg in b), max(len(eg) for eg in b)) for b in batches)
    assert all(hi <= lo for (_, hi), (lo, _) in zip(spans, spans[1:]))


def test_every_transformer_config_is_covered():
    """A new transformer config gets the length-bucketed batcher too (or a reason here)."""
    names = {p.stem for p in CONFIGS.glob("*.cfg")}
    assert set(CONFIG_NAMES) | {"cpu_fast", "logging_mlflow"} == names
