"""spacy-senti convert -f semeval14 --level terms|both: aspect TERM spans -> doc.spans."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path
from xml.sax.saxutils import quoteattr

import pytest
import spacy
import typer
from spacy.tokens import DocBin
from typer.testing import CliRunner

from spacy_senti.cli.convert import convert_command
from spacy_senti.data.clean import CleanConfig
from spacy_senti.data.convert import (
    DUPLICATE,
    TERM_BAD_OFFSETS,
    TERM_DUPLICATE,
    TERM_EXPANDED,
    TERM_LOST,
    TERM_MALFORMED,
    TERM_NULL,
    TERM_TEXT_DIFFERS,
    UNKNOWN_LABEL,
    ConvertOptions,
    cleaned_offsets,
    convert,
    polarity_reason,
    sentence_reason,
    write_docbins,
)
from spacy_senti.errors import InputError
from spacy_senti.extensions import ASPECTS_SPANS_KEY

SEMEVAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "semeval2014_absa"
needs_semeval = pytest.mark.skipif(not SEMEVAL.is_dir(), reason="SemEval-2014 data missing")
THREE = ["positive", "negative", "neutral"]
# file -> (terms, terms expanded to token boundaries, sentences)
REAL = {"Restaurants_Train_v2.xml": (3693, 9, 3041), "Restaurants_Test_Gold.xml": (1134, 2, 800),
        "Laptop_Train_v2.xml": (2358, 13, 3045), "Laptops_Test_Gold.xml": (654, 6, 800)}

_app = typer.Typer()
_app.command()(convert_command)


def load(path: Path) -> list:
    return list(DocBin().from_disk(path).get_docs(spacy.blank("en").vocab))


def assert_terms_balanced(result) -> None:
    for st in result.inputs:
        assert st.terms is not None
        assert st.terms.n_in == st.terms.n_out + st.terms.n_skipped
    assert sum(st.terms.n_out for st in result.inputs) == sum(
        len(ex.terms) for docs in result.splits.values() for ex in docs)


# --- a hand-written file with every kind of term ------------------------------------------
def term(text: str, piece: str, polarity: str, start: int | None = None,
         end: int | None = None, name: str | None = None) -> str:
    """An aspectTerm element; offsets default to where ``piece`` occurs in ``text``."""
    start = text.index(piece) if start is None else start
    end = start + len(piece) if end is None else end
    return (f"<aspectTerm term={quoteattr(name or piece)} polarity={quoteattr(polarity)} "
            f'from="{start}" to="{end}"/>')


PAD = "The pad thai was great but the wine-list was short."
NULLS = "Everything was overpriced."
MIXED = "The food was fine but the service was slow."
NONE = "We went there on a Sunday."
TWICE = "Great sushi, really great sushi."
BAD = "Cheap beer."
SPACES = "\xa0 The  battery life is  great."
SENTENCES = {
    "1": (PAD, [term(PAD, "pad thai", "positive", start=PAD.index("pad") + 1),  # mid-word
                term(PAD, "wine-lis", "negative")]),                              # partly
    "2": (NULLS, ['<aspectTerm term="NULL" polarity="negative" from="0" to="0"/>',
                  '<aspectTerm term="prices" polarity="negative"/>']),
    "3": (MIXED, [term(MIXED, "food", "positive"), term(MIXED, "service", "conflict")]),
    "4": (NONE, []),
    "5": (TWICE, [term(TWICE, "sushi", "positive"), term(TWICE, "sushi", "positive")]),
    "6": (BAD, [term(BAD, "beer", "positive", end=99),
                '<aspectTerm term="beer" polarity="positive" from="x" to="10"/>',
                '<aspectTerm term="beer" from="6" to="10"/>']),
    "7": (SPACES, [term(SPACES, "battery life", "positive"),
                   term(SPACES, "  ", "neutral", start=SPACES.index("  great"))]),
}


def write_xml(path: Path, sentences: dict, categories: bool = False) -> Path:
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<sentences>"]
    for sid, (text, terms) in sentences.items():
        parts.append(f'<sentence id="{sid}"><text>{text}</text>')
        if terms:
            parts += ["<aspectTerms>", *terms, "</aspectTerms>"]
        if categories:
            parts.append('<aspectCategories><aspectCategory category="food" '
                         'polarity="positive"/></aspectCategories>')
        parts.append("</sentence>")
    parts.append("</sentences>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path


@pytest.fixture
def handmade(tmp_path) -> Path:
    return write_xml(tmp_path / "handmade.xml", SENTENCES)


def spans_of(result) -> dict[str, list[tuple[str, str]]]:
    """{sentence text: [(span text, polarity)]} of a single-split result."""
    (docs,) = result.splits.values()
    return {ex.text: [(ex.text[t.start:t.end], t.label) for t in ex.terms] for ex in docs}


def test_handmade_terms_every_case(handmade):
    result = convert(handmade, ConvertOptions("semeval14", level="terms", labels=THREE),
                     progress=False)
    assert result.head is None and result.term_labels == THREE
    spans = spans_of(result)
    assert spans[PAD] == [("pad thai", "positive"), ("wine-list", "negative")]  # expanded
    assert spans[NULLS] == [] and spans[NONE] == []
    assert spans[MIXED] == [("food", "positive")]  # the conflict term is dropped
    assert spans[TWICE] == [("sushi", "positive")]  # the same offsets twice: kept once
    assert spans[BAD] == []
    assert spans["The battery life is great."] == [("battery life", "positive")]  # cleaned
    stats = result.inputs[0].terms
    assert stats.n_in == 13 and stats.n_out == 5
    assert stats.skipped == {TERM_NULL: 2, polarity_reason("conflict"): 1, TERM_DUPLICATE: 1,
                             TERM_BAD_OFFSETS: 1, TERM_MALFORMED: 2, TERM_LOST: 1}
    assert stats.notes == {TERM_EXPANDED: 2, TERM_TEXT_DIFFERS: 1}
    assert stats.locations[TERM_EXPANDED][0] == "handmade.xml:5 'ad thai' -> 'pad thai'"
    assert stats.locations[TERM_TEXT_DIFFERS] == ["handmade.xml:5 'ad thai ' vs 'pad thai'"]
    assert_terms_balanced(result)
    assert result.n_out == 7 and result.n_skipped == 0  # no sentence is lost for its terms


def test_conflict_kept_without_labels(handmade):
    result = convert(handmade, ConvertOptions("semeval14", level="terms"), progress=False)
    assert spans_of(result)[MIXED] == [("food", "positive"), ("service", "conflict")]
    assert result.term_labels == ["conflict", "negative", "positive"]
    assert_terms_balanced(result)


def test_docbin_round_trip_keeps_empty_groups(handmade, tmp_path):
    result = convert(handmade, ConvertOptions("semeval14", level="terms", labels=THREE),
                     progress=False)
    write_docbins(result, tmp_path / "out.spacy", progress=False)
    docs = {doc.text: doc for doc in load(tmp_path / "out.spacy")}
    assert len(docs) == 7
    for doc in docs.values():
        assert ASPECTS_SPANS_KEY in doc.spans  # annotated for terms, even when empty
        assert doc.cats == {}
    assert len(docs[NONE].spans[ASPECTS_SPANS_KEY]) == 0
    assert [(s.text, s.label_) for s in docs[PAD].spans[ASPECTS_SPANS_KEY]] == [
        ("pad thai", "positive"), ("wine-list", "negative")]


def test_spans_key_option(handmade, tmp_path):
    opts = ConvertOptions("semeval14", level="terms", spans_key="gold_terms")
    write_docbins(convert(handmade, opts, progress=False), tmp_path / "o.spacy", progress=False)
    docs = load(tmp_path / "o.spacy")
    assert all("gold_terms" in d.spans and ASPECTS_SPANS_KEY not in d.spans for d in docs)


def test_both_skips_terms_with_their_sentence(tmp_path):
    sentences = {"1": (MIXED, [term(MIXED, "food", "positive")]), "2": (NONE, [])}
    path = write_xml(tmp_path / "cats.xml", sentences, categories=True)
    text = path.read_text(encoding="utf-8").replace('polarity="positive"/></aspectCat',
                                                    'polarity="conflict"/></aspectCat', 1)
    path.write_text(text, encoding="utf-8")
    result = convert(path, ConvertOptions("semeval14", level="both", labels=THREE),
                     progress=False)
    assert result.inputs[0].skipped == {UNKNOWN_LABEL: 1}  # the sentence: as --level categories
    assert result.inputs[0].terms.skipped == {sentence_reason(UNKNOWN_LABEL): 1}
    assert_terms_balanced(result)


def test_strict_fails_on_malformed_terms(handmade):
    with pytest.raises(InputError, match="malformed aspectTerm"):
        convert(handmade, ConvertOptions("semeval14", level="terms", strict=True),
                progress=False)


def test_cleaned_offsets_follow_the_cleaning():
    raw = "Fish &amp; chips  <b>rock</b>"
    cleaned = "Fish & chips rock"
    to_clean = cleaned_offsets(raw, cleaned)
    for piece in ("Fish", "chips", "rock"):
        start = raw.index(piece)
        s, e = to_clean(start, start + len(piece))
        assert cleaned[s:e] == piece
    assert cleaned_offsets("same", "same")(1, 3) == (1, 3)


def test_html_cleaning_keeps_terms_aligned(tmp_path):
    text = "Fish &amp;amp; chips  &lt;b&gt;rock&lt;/b&gt;"  # XML-escaped HTML
    raw = "Fish &amp; chips  <b>rock</b>"
    path = write_xml(tmp_path / "html.xml", {"1": (text, [term(raw, "chips", "positive")])})
    opts = ConvertOptions("semeval14", level="terms", clean=CleanConfig(html=True))
    result = convert(path, opts, progress=False)
    assert spans_of(result) == {"Fish & chips rock": [("chips", "positive")]}


def test_bad_level_options(handmade):
    with pytest.raises(InputError, match="--level"):
        ConvertOptions("semeval14", level="sentences")
    with pytest.raises(InputError, match="--format semeval14"):
        ConvertOptions("csv", level="terms")
    with pytest.raises(InputError, match="--groups"):
        ConvertOptions("semeval14", level="terms", groups=["food"])
    with pytest.raises(InputError, match="aspect terms only.*--level terms"):
        convert(handmade, ConvertOptions("semeval14", level="both"), progress=False)
    with pytest.raises(InputError, match="aspect terms only"):
        convert(handmade, ConvertOptions("semeval14"), progress=False)  # today's error


# --- the real SemEval-2014 files ----------------------------------------------------------
def raw_terms(path: Path) -> dict[str, list[str]]:
    """{sentence id: [term text, whitespace collapsed]} in text order, read independently
    with ElementTree."""
    out = {}
    for sent in ET.parse(path).getroot().iter("sentence"):
        terms = sorted(sent.iter("aspectTerm"),
                       key=lambda t: (int(t.get("from")), int(t.get("to"))))
        out[sent.get("id")] = [" ".join(t.get("term").split()) for t in terms]
    return out


def sentence_ids(path: Path) -> list[str]:
    return [s.get("id") for s in ET.parse(path).getroot().iter("sentence")]


@needs_semeval
@pytest.mark.parametrize("name", list(REAL))
def test_real_files_offsets_give_the_terms(name):
    path = SEMEVAL / name
    n_terms, n_expanded, n_sentences = REAL[name]
    result = convert(path, ConvertOptions("semeval14", level="terms"), progress=False)
    stats = result.inputs[0].terms
    assert (stats.n_in, stats.n_out, stats.n_skipped) == (n_terms, n_terms, 0)
    assert stats.notes == {TERM_EXPANDED: n_expanded}  # the files' offsets all match the term
    (docs,) = result.splits.values()
    assert len(docs) == n_sentences
    expected = raw_terms(path)
    differ = 0
    for sid, ex in zip(sentence_ids(path), docs, strict=True):
        got = [ex.text[t.start:t.end] for t in ex.terms]  # sorted by offsets
        want = expected[sid]
        differ += sum(1 for g, w in zip(got, want, strict=True) if g != w)
        for g, w in zip(got, want, strict=True):
            assert g == w or w in g  # an expanded span holds the term
    assert differ == n_expanded
    assert_terms_balanced(result)


@needs_semeval
def test_real_laptops_docbin_and_labels(tmp_path):
    opts = ConvertOptions("semeval14", level="terms", labels=THREE)
    result = convert(SEMEVAL / "Laptops_Test_Gold.xml", opts, progress=False)
    stats = result.inputs[0].terms
    assert stats.skipped == {polarity_reason("conflict"): 16}
    assert result.term_counts("Laptops_Test_Gold") == {"positive": 341, "negative": 128,
                                                        "neutral": 169}
    write_docbins(result, tmp_path / "test.spacy", progress=False)
    docs = load(tmp_path / "test.spacy")
    assert len(docs) == 800 and all(ASPECTS_SPANS_KEY in d.spans and not d.cats for d in docs)
    assert sum(len(d.spans[ASPECTS_SPANS_KEY]) for d in docs) == 638
    assert sum(1 for d in docs if len(d.spans[ASPECTS_SPANS_KEY]) == 0) > 300
    first = docs[0]  # "Boot time is super fast, around anywhere from 35 seconds to 1 minute."
    assert [(s.text, s.label_) for s in first.spans[ASPECTS_SPANS_KEY]] == [
        ("Boot time", "positive")]


@needs_semeval
def test_real_restaurants_both_has_cats_and_spans(tmp_path):
    path = SEMEVAL / "Restaurants_Test_Gold.xml"
    cats_only = convert(path, ConvertOptions("semeval14", labels=THREE), progress=False)
    both = convert(path, ConvertOptions("semeval14", level="both", labels=THREE),
                   progress=False)
    assert both.head.keys() == cats_only.head.keys()
    (old,), (new,) = cats_only.splits.values(), both.splits.values()
    assert [(ex.text, ex.labels) for ex in new] == [(ex.text, ex.labels) for ex in old]
    assert all(ex.terms is None for ex in old)
    assert both.inputs[0].skipped == cats_only.inputs[0].skipped
    assert_terms_balanced(both)
    write_docbins(both, tmp_path / "out", progress=False)
    docs = load(tmp_path / "out" / "Restaurants_Test_Gold.spacy")
    assert all(list(d.cats) == both.head.keys() and ASPECTS_SPANS_KEY in d.spans for d in docs)
    assert sum(len(d.spans[ASPECTS_SPANS_KEY]) for d in docs) == both.inputs[0].terms.n_out


@needs_semeval
def test_real_split_and_dedupe_keep_terms(tmp_path):
    opts = ConvertOptions("semeval14", level="terms", labels=THREE)
    result = convert(SEMEVAL / "Laptop_Train_v2.xml", opts, split=[0.9, 0.1], seed=0,
                     dedupe_splits=True, progress=False)
    assert list(result.splits) == ["train", "dev"]
    assert_terms_balanced(result)
    stats = result.inputs[0]
    assert stats.skipped[DUPLICATE] == 17  # 12 repeats in the file + 5 train/dev overlaps
    assert stats.terms.skipped[sentence_reason(DUPLICATE)] > 0
    train, dev = ({ex.text for ex in result.splits[s]} for s in ("train", "dev"))
    assert not train & dev and len(train) == len(result.splits["train"])
    share = {s: result.docs_with_terms(s) / len(result.splits[s]) for s in result.splits}
    assert abs(share["train"] - share["dev"]) < 0.05  # stratified on has-terms / polarities
    for s in result.splits:
        assert set(result.term_counts(s)) == set(THREE)


@needs_semeval
def test_cli_prints_the_terms_report(tmp_path):
    out = tmp_path / "corpus"
    res = CliRunner().invoke(_app, [
        str(SEMEVAL / "Laptops_Test_Gold.xml"), str(out), "-f", "semeval14", "--level",
        "terms", "--labels", "positive,negative,neutral", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "aspect terms -> doc.spans['aspects']" in res.output
    assert "terms in = out + skipped: ok" in res.output
    assert re.search(r"Laptops_Test_Gold\.xml\s+654\s+638\s+16\s+6", res.output)
    assert "polarity 'conflict' not in --labels: 16" in res.output
    assert re.search(r"positive\s+341", res.output)
    assert len(load(out / "Laptops_Test_Gold.spacy")) == 800
