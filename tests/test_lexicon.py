"""Tests of the ``senti_lexicon`` component, its lexicons and ``spacy_senti.lexicon.render``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import spacy
from helpers import SHARED_DATA
from spacy.language import Language
from spacy.tokens import Doc
from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

from spacy_senti.components.lexicon import SentiLexicon
from spacy_senti.lexicon import render
from spacy_senti.lexicon.rules import normalize, punctuation_emphasis
from spacy_senti.lexicon.user import available_domains, domain_lexicon, parse_valence_tsv

SAMPLE = Path(__file__).parent / "data" / "vader_tweets_sample.tsv"
GROUND_TRUTH = SHARED_DATA / "vader_groundtruth" / "tweets_GroundTruth.txt"

# VADER's own demo sentences: the scores must be identical.
VADER_DEMO = [
    "VADER is smart, handsome, and funny.",
    "VADER is smart, handsome, and funny!",
    "VADER is very smart, handsome, and funny.",
    "VADER is VERY SMART, handsome, and FUNNY.",
    "VADER is VERY SMART, uber handsome, and FRIGGIN FUNNY!!!",
    "VADER is not smart, handsome, nor funny.",
    "The book was good.",
    "At least it isn't a horrible book.",
    "The book was only kind of good.",
    "The plot was good, but the characters are uncompelling and the dialog is not great.",
    "Today SUX!",
    "Today only kinda sux! But I'll get by, lol",
    "Make sure you :) or :D today!",
    "Catch utf-8 emoji such as 💘 and 💋 and 😁",
    "Not bad at all",
    "Sentiment analysis has never been good.",
    "Sentiment analysis has never been this good!",
    "Most automated sentiment analysis tools are shit.",
    "With VADER, sentiment analysis is the shit!",
    "Other sentiment analysis tools can be quite bad.",
    "On the other hand, VADER is quite bad ass",
    "Without a doubt, excellent idea.",
    "Roger Dodger is one of the most compelling variations on this theme.",
    "Roger Dodger is at least compelling as a variation on the theme.",
    "Roger Dodger is one of the least compelling variations on this theme.",
    "Not such a badass after all.",
]


@pytest.fixture(scope="module")
def nlp() -> Language:
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon")
    return nlp


@pytest.fixture(scope="module")
def vader() -> SentimentIntensityAnalyzer:
    return SentimentIntensityAnalyzer()


def score(nlp: Language, text: str) -> float:
    return nlp(text)._.lexicon_score


def valence(doc: Doc, text: str) -> float:
    return next(t._.valence for t in doc if t.text == text)


def read_rows(path: Path) -> list[tuple[float, str]]:
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            _, mean, text = line.split("\t", 2)
            rows.append((float(mean), text))
    return rows


def test_outputs_on_blank_pipeline(nlp: Language) -> None:
    doc = nlp("The food was good.")
    assert nlp.pipe_names == ["senti_lexicon"]
    assert isinstance(nlp.get_pipe("senti_lexicon"), SentiLexicon)
    assert set(doc._.lexicon_polarity) == {"neg", "neu", "pos", "compound"}
    assert doc._.lexicon_score == doc._.lexicon_polarity["compound"]
    assert -1.0 <= doc._.lexicon_score <= 1.0
    assert valence(doc, "good") == pytest.approx(1.9)
    assert valence(doc, "food") is None
    assert math.isclose(
        sum(doc._.lexicon_polarity[k] for k in ("neg", "neu", "pos")), 1.0, abs_tol=2e-3
    )


def test_token_contributions_add_up_to_the_compound(nlp: Language) -> None:
    text = "I really like this phone, but the battery is awful and the screen is not great?!"
    doc = nlp(text)
    total = sum(t._.valence or 0.0 for t in doc)
    total += math.copysign(punctuation_emphasis(text), total)
    assert doc._.lexicon_score == pytest.approx(normalize(total), abs=1e-4)


@pytest.mark.parametrize("text", VADER_DEMO)
def test_identical_to_vader_on_its_demo_sentences(
    nlp: Language, vader: SentimentIntensityAnalyzer, text: str
) -> None:
    assert nlp(text)._.lexicon_polarity == vader.polarity_scores(text)


def test_negation_flips_sign(nlp: Language) -> None:
    assert score(nlp, "good") > 0
    assert score(nlp, "not good") < 0
    assert score(nlp, "The movie was not good at all") < 0
    assert score(nlp, "I don't like it") < 0 < score(nlp, "I like it")
    assert score(nlp, "This isn't a bad idea") > 0


def test_but_clause_dominates(nlp: Language) -> None:
    doc = nlp("The food was great but the service was horrible")
    assert doc._.lexicon_score < 0
    assert valence(doc, "great") == pytest.approx(3.1 * 0.5)
    assert valence(doc, "horrible") == pytest.approx(-2.5 * 1.5)
    assert score(nlp, "The service was horrible but the food was great") > 0
    assert score(nlp, "The food was great however the service was horrible") < 0


def test_concessive_clause_is_down_weighted(nlp: Language) -> None:
    assert score(nlp, "Although the food was great, the service was horrible") < 0
    assert score(nlp, "The service was horrible, although the food was great") < 0
    assert score(nlp, "Although the service was slow, the food was excellent") > 0


def test_caps_and_exclamation_intensify(nlp: Language) -> None:
    assert abs(score(nlp, "GREAT!!!")) > abs(score(nlp, "great"))
    assert score(nlp, "The food was GREAT") > score(nlp, "The food was great")
    assert score(nlp, "The food was bad!!") < score(nlp, "The food was bad")
    # four "!" at most
    assert score(nlp, "good!!!!!!!!") == score(nlp, "good!!!!")


def test_emoji_count(nlp: Language) -> None:
    doc = nlp("I passed my exam 😀")
    assert doc._.lexicon_score > 0
    assert valence(doc, "😀") > 0
    assert score(nlp, "my flight got cancelled 😡") < 0


def test_booster_and_dampener(nlp: Language) -> None:
    assert score(nlp, "very good") > score(nlp, "good")
    assert score(nlp, "extremely bad") < score(nlp, "bad")
    assert 0 < score(nlp, "The movie was kind of good") < score(nlp, "The movie was good")
    assert score(nlp, "The movie was bad") < score(nlp, "The movie was sort of bad") < 0


def test_special_cases(nlp: Language) -> None:
    assert score(nlp, "Sentiment analysis has never been this good!") > 0
    assert score(nlp, "Without a doubt, excellent idea.") > 0
    assert score(nlp, "It was one of the least compelling films") < 0
    assert score(nlp, "No problems at all") > 0


def test_dependency_negation_scope() -> None:
    nlp = spacy.blank("en")
    scorer = nlp.add_pipe("senti_lexicon")
    words = ["I", "do", "n't", "think", "the", "movie", "is", "good"]
    spaces = [True, False, True, True, True, True, True, False]
    heads = [3, 3, 3, 3, 5, 6, 3, 6]
    deps = ["nsubj", "aux", "neg", "ROOT", "det", "nsubj", "ccomp", "acomp"]
    window = scorer(Doc(nlp.vocab, words=words, spaces=spaces))
    parsed = scorer(Doc(nlp.vocab, words=words, spaces=spaces, heads=heads, deps=deps))
    assert window._.lexicon_score > 0  # "n't" is more than three words before "good"
    assert parsed._.lexicon_score < 0  # "good" -> "is" -> "think", which has a neg child
    # a negation does not cross a conjunct
    words = "I did n't like the plot but the acting was great".split()
    spaces = [True, False] + [True] * 8 + [False]
    heads = [3, 3, 3, 3, 5, 3, 3, 8, 9, 3, 9]
    deps = ["nsubj", "aux", "neg", "ROOT", "det", "dobj", "cc", "det", "nsubj", "conj", "acomp"]
    doc = scorer(Doc(nlp.vocab, words=words, spaces=spaces, heads=heads, deps=deps))
    assert valence(doc, "like") < 0 < valence(doc, "great")
    # nor reach into the subject
    words, spaces = ["Good", "people", "do", "n't", "lie"], [True, True, False, True, False]
    heads, deps = [1, 4, 4, 4, 4], ["amod", "nsubj", "aux", "neg", "ROOT"]
    doc = scorer(Doc(nlp.vocab, words=words, spaces=spaces, heads=heads, deps=deps))
    assert valence(doc, "Good") > 0
    off = spacy.blank("en").add_pipe("senti_lexicon", config={"dep_negation": False})
    assert off(parsed)._.lexicon_score == window._.lexicon_score


def test_user_lexicon_changes_score_and_survives_serialisation(tmp_path: Path) -> None:
    lexicon = tmp_path / "mine.tsv"
    lexicon.write_text("# my terms\nspacy\t3.0\ngood\t-1.0\nbattery life\t2.0\n", "utf-8")
    override = tmp_path / "later.tsv"
    override.write_text("good\t-2.0\n", "utf-8")
    text = "spacy is good and the battery life is long"
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon", config={"lexicon_paths": [str(lexicon), str(override)]})
    doc = nlp(text)
    assert valence(doc, "spacy") == pytest.approx(3.0)
    assert valence(doc, "good") == pytest.approx(-2.0)  # later files override
    assert valence(doc, "battery") == pytest.approx(2.0)  # multi-word term, on its first token
    assert valence(doc, "life") is None
    assert doc._.lexicon_score != score(_default(), text)
    expected = doc._.lexicon_polarity

    nlp.to_disk(tmp_path / "pipeline")
    lexicon.unlink()
    override.unlink()
    reloaded = spacy.load(tmp_path / "pipeline")
    assert reloaded(text)._.lexicon_polarity == expected

    fresh = spacy.blank("en")
    fresh.add_pipe("senti_lexicon").from_bytes(nlp.get_pipe("senti_lexicon").to_bytes())
    assert fresh(text)._.lexicon_polarity == expected


def test_add_terms_and_zero_removes(nlp: Language) -> None:
    scorer = spacy.blank("en").add_pipe("senti_lexicon")
    scorer.add_terms({"meh": -1.5, "good": 0})
    doc = scorer(spacy.blank("en")("meh, good"))
    assert valence(doc, "meh") == pytest.approx(-1.5)
    assert valence(doc, "good") is None
    assert "good" not in scorer.lexicon


def test_bad_user_lexicon_line_is_reported() -> None:
    with pytest.raises(ValueError, match="mine.tsv:2"):
        parse_valence_tsv("ok\t1\nbroken line\n", "mine.tsv")


def test_finance_domain() -> None:
    assert "finance" in available_domains()
    entries = domain_lexicon("finance")
    assert entries["profit warning"] < 0 < entries["beat expectations"]
    assert all(-4 <= v <= 4 for v in entries.values())
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon", config={"domain": "finance"})
    warning = nlp("The company issued a profit warning on Monday")
    assert warning._.lexicon_score < 0
    assert score(_default(), "The company issued a profit warning on Monday") >= 0
    assert score(nlp, "Shares rose after the bank beat expectations") > 0
    assert score(nlp, "Shares fell sharply") < 0
    assert valence(nlp("Shares of the fund"), "Shares") is None  # neutral in finance
    with pytest.raises(ValueError, match="unknown lexicon domain"):
        spacy.blank("en").add_pipe("senti_lexicon", config={"domain": "astrology"})


def test_emotion_lexicon_hook(tmp_path: Path) -> None:
    path = tmp_path / "emotions.tsv"
    path.write_text(
        "happy\tjoy\nhappy\ttrust\t0.5\nscared\tfear\t1\nbad news\tsadness\t2\ncalm\tfear\t0\n",
        "utf-8",
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon", config={"emotion_lexicon_path": str(path)})
    doc = nlp("Happy but scared after the bad news, yet calm")
    assert doc._.lexicon_emotions == {"joy": 1.0, "trust": 0.5, "fear": 1.0, "sadness": 2.0}
    assert _default()("Happy")._.lexicon_emotions is None
    nlp.to_disk(tmp_path / "pipeline")
    path.unlink()
    assert spacy.load(tmp_path / "pipeline")("so happy")._.lexicon_emotions == {
        "joy": 1.0,
        "trust": 0.5,
    }


def test_pipe_equals_call_and_rescoring_is_clean(nlp: Language) -> None:
    texts = ["good", "not good", "The food was great but the service was horrible", ""]
    piped = [d._.lexicon_polarity for d in nlp.pipe(texts)]
    assert piped == [nlp(t)._.lexicon_polarity for t in texts]
    assert nlp("")._.lexicon_score == 0.0
    doc = nlp("good")
    scorer = spacy.blank("en").add_pipe("senti_lexicon")
    scorer.add_terms({"good": 0})
    assert scorer(doc)._.lexicon_score == 0.0
    assert doc[0]._.valence is None


def test_render_returns_html_with_tokens(nlp: Language) -> None:
    doc = nlp("The food was great but the <service> was horrible 😀")
    html = render(doc, jupyter=False)
    for token in ("The", "food", "great", "horrible", "😀", "&lt;service&gt;"):
        assert token in html
    assert 'title="valence +1.550"' in html
    assert "rgba(22, 163, 74" in html and "rgba(220, 38, 38" in html
    assert "compound" in html
    assert render([doc, nlp("ok")], jupyter=False).count('class="senti-lexicon"') == 2


def test_scorer_reports_accuracy(nlp: Language) -> None:
    from spacy.training import Example

    examples = []
    for text, label in [("great", "positive"), ("awful", "negative"), ("good", "negative")]:
        reference = spacy.blank("en")(text)
        reference.cats = {
            "sentiment/positive": float(label == "positive"),
            "sentiment/negative": float(label == "negative"),
        }
        examples.append(Example(nlp(text), reference))
    assert nlp.get_pipe("senti_lexicon").score(examples)["lexicon_acc"] == pytest.approx(2 / 3)
    assert nlp.evaluate(examples)["lexicon_acc"] == pytest.approx(2 / 3)


def _parity(nlp: Language, vader: SentimentIntensityAnalyzer, texts: list[str]) -> tuple:
    ours = np.array([d._.lexicon_score for d in nlp.pipe(texts)])
    theirs = np.array([vader.polarity_scores(t)["compound"] for t in texts])
    return np.corrcoef(ours, theirs)[0, 1], np.mean(np.sign(ours) == np.sign(theirs))


def test_parity_smoke_on_shipped_sample(nlp: Language, vader: SentimentIntensityAnalyzer) -> None:
    rows = read_rows(SAMPLE)
    assert len(rows) == 50
    r, sign = _parity(nlp, vader, [text for _, text in rows])
    assert r >= 0.95
    assert sign >= 0.94


@pytest.mark.skipif(not GROUND_TRUTH.exists(), reason="VADER ground truth not available")
def test_parity_on_200_tweets(nlp: Language, vader: SentimentIntensityAnalyzer) -> None:
    rows = read_rows(GROUND_TRUTH)[:200]
    r, sign = _parity(nlp, vader, [text for _, text in rows])
    assert r >= 0.95
    assert sign >= 0.95
    human = np.array([mean for mean, _ in rows])
    ours = np.array([d._.lexicon_score for d in nlp.pipe(text for _, text in rows)])
    assert np.corrcoef(ours, human)[0, 1] > 0.7


_DEFAULT: list[Language] = []


def _default() -> Language:
    """A default ``senti_lexicon`` pipeline, built once."""
    if not _DEFAULT:
        nlp = spacy.blank("en")
        nlp.add_pipe("senti_lexicon")
        _DEFAULT.append(nlp)
    return _DEFAULT[0]
