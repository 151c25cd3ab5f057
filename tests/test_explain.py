"""spacy_senti.explain: the rebuilt torch forward, attributions, token mapping, rendering,
the `spacy-senti explain` command and the explanations page of the evaluation report."""

from __future__ import annotations

import numpy as np
import pytest
import spacy
from helpers import (
    MULTITASK_TEXTCAT_ONLY,
    WORDS,
    load_config,
    make_examples,
    nlp_from_config,
    sentiment_cats,
)
from spacy.training import Example
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.errors import ConfigError, InputError
from spacy_senti.evaluation.report import EXPLANATIONS_FILE, write_report
from spacy_senti.explain import (
    DEFAULT_METHOD,
    METHODS,
    ExplainModel,
    explain_docs,
    render_explanation,
)
from spacy_senti.onnx.runner import strided_windows

TEXTS = ["i loved this film", "the plot was awful", "great food and great staff",
         "sad and boring plot"]
ODD_TEXTS = [
    "unbelievably xyzzyq good",  # out-of-vocabulary words: one wordpiece per character
    "so happy 😀🎉 with the food",  # emoji: [UNK]
    "  the\tfilm \n\n was   bad  ",  # leading, inner and trailing odd whitespace
    "can't won't it's",  # spaCy splits ca|n't, the wordpieces split differently
]
LONG_TEXT = " ".join(WORDS * 6)  # 282 tokens: three strided windows of 128, stride 96


@pytest.fixture(scope="module")
def nlp(sentiment_pipeline):
    return spacy.load(sentiment_pipeline)


def cats_matrix(docs, keys) -> np.ndarray:
    return np.asarray([[doc.cats[k] for k in keys] for doc in docs])


def initialised(tiny_bert, pooling: str, hidden: int):
    """An initialised multi-head pipeline with the given pooling (untrained: random heads)."""
    config = load_config("multitask", tiny_bert, **MULTITASK_TEXTCAT_ONLY)
    config["components"]["senti_textcat"]["model"]["pooling"] = pooling
    config["components"]["senti_textcat"]["model"]["hidden_width"] = hidden
    nlp = nlp_from_config(config)
    cats = {**sentiment_cats("positive"), "emotion/joy": 1.0, "emotion/anger": 0.0,
            "aspect/food/positive": 1.0, "aspect/food/negative": 0.0,
            "aspect/food/absent": 0.0}
    examples = make_examples(nlp, [("i loved the food", cats)])
    nlp.initialize(get_examples=lambda: examples)
    return nlp


# --- the rebuilt forward ------------------------------------------------------------------
def test_rebuilt_forward_matches_doc_cats(nlp):
    model = ExplainModel(nlp)
    docs = list(nlp.pipe(TEXTS + ODD_TEXTS + [LONG_TEXT]))
    assert docs[-1]._.trf_data.wordpieces.input_ids.shape[0] > 1  # several windows
    rebuilt = np.stack([model.predict(doc) for doc in docs])
    assert np.abs(rebuilt - cats_matrix(docs, model.keys)).max() <= 1e-5


@pytest.mark.parametrize("pooling,hidden", [("mean", 0), ("cls", 0), ("attention", 8)])
def test_rebuilt_forward_every_pooling_and_head_kind(tiny_bert, pooling, hidden):
    nlp = initialised(tiny_bert, pooling, hidden)
    model = ExplainModel(nlp)
    assert {h.kind for h in model.heads} == {"exclusive", "multilabel", "grouped"}
    docs = list(nlp.pipe([*TEXTS, LONG_TEXT]))
    rebuilt = np.stack([model.predict(doc) for doc in docs])
    assert np.abs(rebuilt - cats_matrix(docs, model.keys)).max() <= 1e-5


# --- attributions -------------------------------------------------------------------------
def test_integrated_gradients_completeness(nlp):
    docs = explain_docs(nlp, nlp.pipe(TEXTS + ODD_TEXTS), method="ig")
    for doc in docs:
        (key, entry), = doc._.attributions.items()
        assert key == f"sentiment/{doc._.sentiment}"  # the predicted label by default
        assert entry["method"] == "ig" and len(entry["scores"]) == len(doc)
        assert entry["target_prob"] == pytest.approx(doc.cats[key], abs=1e-5)
        expected = entry["target_prob"] - entry["baseline_prob"]
        assert abs(sum(entry["scores"]) - expected) <= 0.05 * abs(expected) + 1e-4, doc.text


@pytest.mark.parametrize("method", METHODS)
def test_attributions_are_deterministic_and_leave_predictions_alone(nlp, method):
    before = list(nlp.pipe(TEXTS + [LONG_TEXT]))
    cats = [dict(doc.cats) for doc in before]
    encoder = ExplainModel(nlp).encoder
    training = encoder.training
    first = [doc._.attributions["sentiment/positive"]["scores"] for doc in
             explain_docs(nlp, before, label="positive", method=method)]
    assert [dict(doc.cats) for doc in before] == cats
    assert [doc._.sentiment for doc in before] == [max(c, key=c.get).split("/")[1]
                                                  for c in cats]
    again = explain_docs(nlp, nlp.pipe(TEXTS + [LONG_TEXT]), label="positive", method=method)
    assert [doc._.attributions["sentiment/positive"]["scores"] for doc in again] == first
    assert [dict(doc.cats) for doc in again] == cats  # the pipeline predicts as before
    assert not encoder.get_input_embeddings()._forward_hooks
    assert encoder.training == training  # restored after dropout was switched off
    for doc in before:
        scores = doc._.attributions["sentiment/positive"]["scores"]
        assert [t._.attribution for t in doc] == scores
        assert all(np.isfinite(scores))
        if method == "attention":
            assert min(scores) >= 0.0


def test_attributions_accumulate_per_target(nlp):
    doc = nlp("i loved this film")
    explain_docs(nlp, [doc], label="positive")
    explain_docs(nlp, [doc], label="sentiment/negative", method="grad")
    assert list(doc._.attributions) == ["sentiment/positive", "sentiment/negative"]
    assert doc._.attributions["sentiment/positive"]["method"] == DEFAULT_METHOD == "ig"
    assert [t._.attribution for t in doc] == doc._.attributions["sentiment/negative"]["scores"]
    # two labels of one softmax: p(negative) = 1 - p(positive), their attributions are opposite
    for method in ("grad", "ig"):
        explain_docs(nlp, [doc], label="positive", method=method)
        explain_docs(nlp, [doc], label="negative", method=method)
        pos, neg = (np.asarray(doc._.attributions[f"sentiment/{lab}"]["scores"])
                    for lab in ("positive", "negative"))
        assert np.allclose(pos, -neg, atol=1e-6), method


def test_wordpieces_are_summed_onto_spacy_tokens(nlp):
    """With a score of 1 per wordpiece, a token gets its number of wordpieces: subwords add
    up, emoji are one [UNK], whitespace tokens and [CLS]/[SEP] get nothing."""
    model = ExplainModel(nlp)
    tokenizer = model.tokenizer
    for doc in nlp.pipe(ODD_TEXTS):
        inputs = model.inputs(doc)
        ones = np.ones(tuple(inputs.input_ids.shape))
        counts = inputs.token_scores(ones)
        assert len(counts) == len(doc)
        for token, count in zip(doc, counts):
            if token.is_space:
                assert count == 0.0, repr(token.text)
            elif token.text.isalpha() and token.text.isascii():
                assert count == len(tokenizer.tokenize(token.text)), token.text
            else:
                assert count > 0.0, token.text  # emoji, punctuation, split contractions
        n_content = int(inputs.attention_mask.sum()) - 2  # [CLS] and [SEP]
        assert sum(counts) == pytest.approx(n_content)
    emoji = nlp("so happy 😀 with the food")
    inputs = model.inputs(emoji)
    assert inputs.token_scores(np.ones(tuple(inputs.input_ids.shape)))[2] == 1.0


def test_a_wordpiece_shared_by_two_tokens_is_split_between_them():
    """spaCy's "ca|n't" against a wordpiece "can": each token gets half of its score."""
    import torch

    from spacy_senti.explain.model import DocInputs

    ids = torch.zeros((1, 4), dtype=torch.long)
    inputs = DocInputs(input_ids=ids, attention_mask=torch.ones_like(ids), token_type_ids=None,
                       padded_width=6, align_data=np.array([1, 1, 2]),
                       align_lengths=np.array([1, 2, 0]), content=ids.bool())
    scores = inputs.token_scores(np.array([[9.0, 2.0, 4.0, 7.0]]))  # [CLS] can 't [SEP]
    assert scores == [1.0, 1.0 + 4.0, 0.0]


def test_long_docs_use_every_window(nlp):
    doc = nlp(LONG_TEXT)
    model = ExplainModel(nlp)
    inputs = model.inputs(doc)
    assert inputs.n_windows == len(strided_windows(len(doc), 128, 96)) == 3
    counts = inputs.token_scores(np.ones(tuple(inputs.input_ids.shape)))
    # tokens in two overlapping windows are counted in both
    assert max(counts) == 2.0 and min(counts) == 1.0
    assert sum(counts) == pytest.approx(int(inputs.attention_mask.sum()) - 2 * 3)
    explain_docs(nlp, [doc], method="ig", n_steps=8)
    entry = doc._.attributions[f"sentiment/{doc._.sentiment}"]
    expected = entry["target_prob"] - entry["baseline_prob"]
    assert abs(sum(entry["scores"]) - expected) <= 0.05 * abs(expected) + 1e-4


def test_docs_without_transformer_data_and_empty_docs(nlp):
    doc = nlp("the plot was awful")
    expected = dict(doc.cats)
    doc._.trf_data = None  # e.g. a doc read back from a DocBin
    explain_docs(nlp, [doc])
    assert doc._.attributions["sentiment/negative"]["target_prob"] == pytest.approx(
        expected["sentiment/negative"], abs=1e-5)
    assert doc.cats == expected
    empty = explain_docs(nlp, [nlp("")])[0]
    assert empty._.attributions == {} and empty.cats == {}


def test_every_head_kind_can_be_explained(multitask_pipeline):
    nlp = spacy.load(multitask_pipeline)
    doc = nlp("great food but awful service")
    explain_docs(nlp, [doc], head="aspect", label="service/negative", method="ig", n_steps=16)
    explain_docs(nlp, [doc], head="emotion", label="joy")
    explain_docs(nlp, [doc], head="aspect")  # predicted: the most probable non-absent key
    assert "aspect/service/negative" in doc._.attributions
    assert "emotion/joy" in doc._.attributions
    default = list(doc._.attributions)[-1]
    assert default.startswith("aspect/") and not default.endswith("/absent")
    entry = doc._.attributions["aspect/service/negative"]
    assert entry["target_prob"] == pytest.approx(doc.cats["aspect/service/negative"], abs=1e-5)


def test_errors_say_how_to_fix(nlp, cpu_fast_pipeline):
    doc = nlp("i loved this film")
    with pytest.raises(ConfigError, match="no head 'emotion'.*heads: \\['sentiment'\\]"):
        explain_docs(nlp, [doc], head="emotion")
    with pytest.raises(ConfigError, match="no label 'neutral'.*'negative', 'positive'"):
        explain_docs(nlp, [doc], label="neutral")
    with pytest.raises(ConfigError, match="Unknown explanation method 'shap'"):
        explain_docs(nlp, [doc], method="shap")
    tok2vec = spacy.load(cpu_fast_pipeline)
    with pytest.raises(ConfigError, match="need a transformer pipeline.*cpu_fast"):
        explain_docs(tok2vec, [tok2vec("good film")])
    assert doc._.attributions is None


# --- rendering ------------------------------------------------------------------------------
def test_render_explanation_html(nlp):
    doc = nlp("i <b>loved</b> this film")
    explain_docs(nlp, [doc], label="positive", method="grad")
    html = render_explanation(doc, jupyter=False)
    assert html.startswith('<div class="senti-explain"') and "<b>" not in html
    assert "sentiment/positive" in html and "gradient × input" in html
    marks = html.count('class="senti-attribution"')
    assert marks == sum(1 for t in doc if t._.attribution)
    assert 'class="senti-token"' not in html  # no lexicon row without senti_lexicon
    nlp.add_pipe("senti_lexicon")  # the module's pipeline: removed again below
    try:
        doc = nlp("i loved this awful film")
        explain_docs(nlp, [doc])
        html = render_explanation([doc], key=list(doc._.attributions)[0], jupyter=False)
        assert 'class="senti-token"' in html and ">lexicon<" in html
    finally:
        nlp.remove_pipe("senti_lexicon")
    with pytest.raises(InputError, match="run spacy_senti.explain.explain_docs"):
        render_explanation(nlp.make_doc("no attributions"), jupyter=False)


# --- command line ---------------------------------------------------------------------------
def test_cli_explain_prints_probabilities_and_token_scores(sentiment_pipeline):
    result = CliRunner().invoke(app, ["explain", str(sentiment_pipeline),
                                      "the plot was awful", "--method", "ig", "--steps", "20"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "Probabilities" in out and "negative" in out and "positive" in out
    assert "sentiment/negative" in out and "integrated gradients" in out
    assert "awful(" in out and "baseline p" in out


@pytest.mark.parametrize("args,expected", [
    (["--head", "emotion"], "no head 'emotion'"),
    (["--label", "neutral"], "no label 'neutral'"),
    (["--method", "lime"], "Unknown explanation method"),
])
def test_cli_explain_errors(sentiment_pipeline, args, expected):
    result = CliRunner().invoke(app, ["explain", str(sentiment_pipeline), "a film", *args])
    assert result.exit_code == 1 and result.output.startswith("Error: ")
    assert expected in result.output


def test_cli_explain_refuses_a_tok2vec_pipeline(cpu_fast_pipeline):
    result = CliRunner().invoke(app, ["explain", str(cpu_fast_pipeline), "good film"])
    assert result.exit_code == 1 and "need a transformer pipeline" in result.output


# --- evaluation report ----------------------------------------------------------------------
def test_report_explains_the_most_confident_errors(nlp, cpu_fast_pipeline, tmp_path):
    heads = nlp.get_pipe("senti_textcat").heads
    wrong = {"positive": "negative", "negative": "positive"}
    examples = []
    for doc in nlp.pipe(TEXTS):
        gold = nlp.make_doc(doc.text)
        gold.cats = sentiment_cats(wrong[doc._.sentiment])
        examples.append(Example(doc, gold))
    report = write_report(examples, heads, tmp_path / "r", explain_nlp=nlp, n_explained=2)
    page = tmp_path / "r" / EXPLANATIONS_FILE
    assert page in report.files
    html = page.read_text(encoding="utf8")
    assert html.count('class="senti-explain"') == 2 and 'id="sentiment"' in html
    md = (tmp_path / "r" / "report.md").read_text(encoding="utf8")
    assert f"[{EXPLANATIONS_FILE}]({EXPLANATIONS_FILE}#sentiment)" in md
    # off for a pipeline without a transformer, and with n_explained=0
    tok2vec = spacy.load(cpu_fast_pipeline)
    examples = [Example(tok2vec(t), tok2vec.make_doc(t)) for t in TEXTS]
    for eg in examples:
        eg.reference.cats = sentiment_cats("negative")
    write_report(examples, tok2vec.get_pipe("senti_textcat").heads, tmp_path / "t",
                 explain_nlp=tok2vec)
    assert not (tmp_path / "t" / EXPLANATIONS_FILE).exists()
    assert EXPLANATIONS_FILE not in (tmp_path / "t" / "report.md").read_text(encoding="utf8")
