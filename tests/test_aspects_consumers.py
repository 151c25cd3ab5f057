"""Aspect terms (senti_aspects) in everything that consumes a pipeline (issue 15):
``spacy-senti evaluate`` (report section, confusion PNG, displaCy sample page), ``spacy-senti
score`` (the ``aspect_terms`` column, local and Ray engines) and the service (``aspect_terms``
in each result). Pipelines without senti_aspects must not change; pipelines with senti_aspects
only (no senti_textcat) must work."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import spacy
import srsly
from fastapi.testclient import TestClient
from helpers import (
    ASPECT_ROWS,
    SENTIMENT_ROWS,
    aspect_doc,
    build_aspects_pipeline,
    sentiment_cats,
    write_docbin,
)
from score_helpers import read_output, write_input
from spacy.language import Language
from spacy.tokens import Doc
from typer.testing import CliRunner

from spacy_senti.batch import HeadColumns, score_local
from spacy_senti.cli import app
from spacy_senti.errors import InputError
from spacy_senti.evaluation.report import (
    check_gold,
    predict_examples,
    sample_term_examples,
    write_report,
)
from spacy_senti.serve import ServeSettings, create_app
from spacy_senti.serve.app import restore_offsets
from spacy_senti.serve.normalize import normalize_text
from spacy_senti.serve.schemas import AnalyzeResponse
from spacy_senti.util import aspect_term_components, find_aspects

SETTINGS = ServeSettings(max_batch=8, max_wait_ms=1, timeout_s=30)
TEXTS = [text for text, _, _ in ASPECT_ROWS]


@pytest.fixture(scope="module")
def aspects_only_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """transformer + senti_aspects (no senti_textcat), overfitted on ASPECT_ROWS."""
    return build_aspects_pipeline(tiny_bert, tmp_path_factory.mktemp("aspects_only") / "model",
                                  with_textcat=False)


@pytest.fixture(scope="module")
def aspects_nlp(aspects_pipeline) -> Language:
    return spacy.load(aspects_pipeline)


def term_docbin(nlp: Language, path: Path, rows=ASPECT_ROWS, with_sentiment: bool = True
                ) -> Path:
    """A DocBin of gold docs: terms in doc.spans["aspects"] (+ the sentence's sentiment)."""
    docs = []
    for text, spans, label in rows:
        doc = aspect_doc(nlp, text, spans)
        if with_sentiment:
            doc.cats = sentiment_cats(label)
        docs.append(doc)
    return write_docbin(path, docs)


def expected_terms(nlp: Language, texts: list[str]) -> list[list[dict]]:
    return [doc._.aspect_terms for doc in nlp.pipe(texts)]


def same_terms(found: list[dict], expected: list[dict]) -> bool:
    return [{**t, "score": pytest.approx(t["score"], abs=1e-5)} for t in expected] == found


# --- evaluate -------------------------------------------------------------------------------
def test_evaluate_cli_reports_aspect_terms(aspects_pipeline, aspects_nlp, tmp_path):
    data = term_docbin(aspects_nlp, tmp_path / "test.spacy")
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(aspects_pipeline), str(data),
                                      "--output", str(out), "--n-explained", "0"])
    assert result.exit_code == 0, result.output
    assert "aspect terms" in result.output
    metrics = srsly.read_json(out / "metrics.json")
    scores = metrics["scores"]
    n_terms = sum(len(spans) for _, spans, _ in ASPECT_ROWS)
    assert scores["aspect_terms_n_gold"] == scores["aspect_terms_n_pred"] == n_terms
    for key in ("aspect_terms_p", "aspect_terms_r", "aspect_terms_f", "aspect_pairs_f",
                "aspect_polarity_acc", "aspect_polarity_macro_f"):
        assert scores[key] == 1.0, key
    assert scores["aspect_polarity_on"] == "gold terms"
    assert scores["senti_sentiment_acc"] == 1.0  # the heads are still reported
    # the same numbers as spaCy's own evaluation through the component's scorer
    examples = predict_examples(aspects_nlp, list(spacy.tokens.DocBin().from_disk(data)
                                                  .get_docs(aspects_nlp.vocab)))
    spacy_scores = aspects_nlp.evaluate(examples)
    for key in ("aspect_terms_f", "aspect_pairs_f", "aspect_polarity_acc"):
        assert scores[key] == pytest.approx(spacy_scores[key])
    entry = metrics["aspect_terms"]
    labels = entry["confusion"]["labels"]
    assert labels == ["negative", "neutral", "positive"]
    matrix = np.array(entry["confusion"]["matrix"])
    assert matrix.sum() == n_terms and np.trace(matrix) == n_terms
    assert entry["errors"] == {"missed": 0, "spurious": 0, "wrong_polarity": 0,
                               "docs_correct": len(ASPECT_ROWS)}
    report = (out / "report.md").read_text(encoding="utf8")
    assert "## Aspect terms (`senti_aspects`)" in report
    assert "### Per polarity" in report and "### Confusion (gold terms)" in report
    assert "(aspect_terms_confusion.png)" in report and "(aspect_terms_sample.html)" in report
    assert "aspect terms: term F1 1.000" in report
    assert (out / "aspect_terms_confusion.png").read_bytes()[:4] == b"\x89PNG"
    html = (out / "aspect_terms_sample.html").read_text(encoding="utf8")
    assert html.count('<div class="spans"') == 4  # correct sentences only: at most 4
    for label in ("positive", "negative", "neutral"):  # displaCy's span labels
        assert f"\n        {label}\n" in html
    assert "“pad thai” (4-12) gold <b>positive</b>: found, right polarity" in html


def test_wrong_gold_polarity_missed_and_spurious_terms(aspects_pipeline, aspects_nlp,
                                                       tmp_path):
    rows = [
        *ASPECT_ROWS,
        ("battery life is awful", [(0, 2, "positive")], "negative"),  # wrong gold polarity
        ("we came here on a friday", [(5, 6, "neutral")], "positive"),  # a term not found
        ("i love the staff", [], "positive"),  # the model finds a term that is not gold
    ]
    docs = list(spacy.tokens.DocBin().from_disk(
        term_docbin(aspects_nlp, tmp_path / "t.spacy", rows)).get_docs(aspects_nlp.vocab))
    examples = predict_examples(aspects_nlp, docs)
    heads = aspects_nlp.get_pipe("senti_textcat").heads
    report = write_report(examples, heads, tmp_path / "r", aspects=find_aspects(aspects_nlp))
    terms = report.aspect_terms
    index = {label: i for i, label in enumerate(terms.confusion_labels)}
    assert terms.confusion[index["positive"], index["negative"]] == 1  # off the diagonal
    assert terms.confusion[index["neutral"]].sum() == 2  # "screen" and the missed "friday"
    assert terms.error_counts() == {"missed": 1, "spurious": 1, "wrong_polarity": 1,
                                    "docs_correct": len(ASPECT_ROWS)}
    assert report.metrics["scores"]["aspect_polarity_acc"] == pytest.approx(
        (terms.confusion.trace()) / terms.confusion.sum())
    html = (tmp_path / "r" / "aspect_terms_sample.html").read_text(encoding="utf8")
    errors, correct = html.split("<h2>Correct")
    assert "<h2>With errors (3)</h2>" in errors
    assert "“battery life” (0-12) gold <b>positive</b>: found as <b>negative</b>" in errors
    assert "“friday” (18-24) gold <b>neutral</b>: missed" in errors
    assert "“staff” (11-16) predicted <b>positive</b>: not a gold term" in errors
    assert errors.index("found as") < errors.index(": missed") < errors.index("not a gold")
    assert "found as" not in correct


def test_polarity_on_extracted_terms_without_encoder_output(aspects_nlp, tmp_path):
    """Docs without doc._.trf_data: polarity metrics and confusion fall back to the gold terms
    the extractor found exactly, and the report says so."""
    rows = [*ASPECT_ROWS, ("battery life is awful", [(0, 2, "positive")], "negative"),
            ("we came here on a friday", [(5, 6, "neutral")], "positive")]
    docs = [aspect_doc(aspects_nlp, text, spans) for text, spans, _ in rows]
    examples = predict_examples(aspects_nlp, docs)
    for eg in examples:
        eg.predicted._.trf_data = None
    report = write_report(examples, [], tmp_path / "r", aspects=find_aspects(aspects_nlp))
    terms = report.aspect_terms
    assert terms.score("polarity_on") == "extracted gold terms"
    n_found = sum(len(spans) for _, spans, _ in ASPECT_ROWS) + 1  # "friday" is not found
    assert terms.confusion.sum() == n_found == len(terms.polarity_pairs)
    assert terms.confusion.trace() == n_found - 1
    text = (tmp_path / "r" / "report.md").read_text(encoding="utf8")
    assert "Polarity on the extracted gold terms" in text
    html = (tmp_path / "r" / "aspect_terms_sample.html").read_text(encoding="utf8")
    assert "“friday” (18-24) gold <b>neutral</b>: missed</li>" in html  # nothing to say


def test_sample_takes_each_kind_of_error_in_turn():
    from spacy_senti.evaluation.report import TermDiff

    wrong = [TermDiff(i, {(0, 1, "positive")}, {(0, 1, "negative")}) for i in range(3)]
    missed = [TermDiff(3 + i, {(0, 1, "positive")}, set()) for i in range(3)]
    spurious = [TermDiff(6, set(), {(0, 1, "positive")})]
    ok = [TermDiff(7, set(), set()), TermDiff(8, {(0, 1, "neutral")}, {(0, 1, "neutral")})]
    errors, correct = sample_term_examples(wrong + missed + spurious + ok, n_errors=4,
                                           n_correct=1)
    assert errors == [0, 3, 6, 1]
    assert correct == [8]  # a sentence with gold terms before one without


def test_evaluate_aspects_only_pipeline(aspects_only_pipeline, tmp_path):
    nlp = spacy.load(aspects_only_pipeline)
    data = term_docbin(nlp, tmp_path / "test.spacy", with_sentiment=False)
    out = tmp_path / "report"
    result = CliRunner().invoke(app, ["evaluate", str(aspects_only_pipeline), str(data),
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    metrics = srsly.read_json(out / "metrics.json")
    assert metrics["heads"] == {} and metrics["scores"]["aspect_pairs_f"] == 1.0
    report = (out / "report.md").read_text(encoding="utf8")
    assert "## Summary" not in report and "## Aspect terms" in report
    assert "- overall:" not in report
    assert not (out / "explanations.html").exists()


def test_evaluate_without_gold_terms_or_without_senti_aspects(aspects_pipeline, aspects_nlp,
                                                              sentiment_pipeline, tmp_path):
    sentences = write_docbin(tmp_path / "sent.spacy",
                             [(t, sentiment_cats(lab)) for t, lab in SENTIMENT_ROWS])
    # senti_aspects, data without gold terms: said so, no aspect files
    result = CliRunner().invoke(app, ["evaluate", str(aspects_pipeline), str(sentences),
                                      "--output", str(tmp_path / "a"), "--n-explained", "0"])
    assert result.exit_code == 0, result.output
    assert "aspect terms not evaluated" in " ".join(result.output.split())
    metrics = srsly.read_json(tmp_path / "a" / "metrics.json")
    assert metrics["aspect_terms"] is None
    assert not any(k.startswith("aspect_") for k in metrics["scores"])
    assert not list((tmp_path / "a").glob("aspect_terms*"))
    # no senti_aspects: the report is as before
    result = CliRunner().invoke(app, ["evaluate", str(sentiment_pipeline), str(sentences),
                                      "--output", str(tmp_path / "s"), "--n-explained", "0"])
    assert result.exit_code == 0, result.output
    assert "aspect_terms" not in srsly.read_json(tmp_path / "s" / "metrics.json")
    assert "Aspect terms" not in (tmp_path / "s" / "report.md").read_text(encoding="utf8")


def test_check_gold_accepts_gold_terms_and_names_both_kinds(aspects_nlp):
    heads = aspects_nlp.get_pipe("senti_textcat").heads
    terms_only = [aspect_doc(aspects_nlp, "battery life is awful", [(0, 2, "negative")])]
    check_gold(terms_only, heads, spans_key="aspects")
    with pytest.raises(InputError, match="no gold annotations for the pipeline's heads"):
        check_gold(terms_only, heads)
    with pytest.raises(InputError, match=r"doc\.spans\['aspects'\].*found span groups none"):
        check_gold([aspects_nlp.make_doc("no gold")], heads, spans_key="aspects")


# --- score ----------------------------------------------------------------------------------
@pytest.mark.parametrize("in_suffix,out_suffix", [(".csv", ".jsonl"), (".jsonl", ".parquet")])
def test_score_writes_aspect_terms(aspects_pipeline, aspects_nlp, tmp_path, in_suffix,
                                   out_suffix):
    rows = [{"id": i, "text": t} for i, t in enumerate(TEXTS)] + [{"id": 99, "text": " "}]
    src = write_input(tmp_path / f"in{in_suffix}", rows)
    out = tmp_path / f"out{out_suffix}"
    score_local(aspects_pipeline, src, out, batch_size=4, nlp=aspects_nlp, progress=False)
    found = read_output(out)
    assert list(found[0]) == ["id", "text", "sentiment", "sentiment_scores", "aspect_terms",
                              "error"]
    for row, terms in zip(found, expected_terms(aspects_nlp, TEXTS)):
        assert row["error"] is None
        assert same_terms(row["aspect_terms"], terms), (row["aspect_terms"], terms)
    assert found[0]["aspect_terms"][0]["text"] == "pad thai"
    assert found[2]["aspect_terms"] == []  # a sentence without terms
    assert found[-1]["aspect_terms"] is None and found[-1]["error"] == "empty text"
    if out_suffix == ".parquet":  # a JSON string, like the other structured columns
        import pyarrow.parquet as pq

        raw = pq.read_table(out).column("aspect_terms").to_pylist()
        assert json.loads(raw[1]) == found[1]["aspect_terms"]


def test_score_aspects_only_and_without_aspects(aspects_only_pipeline, sentiment_pipeline,
                                                tmp_path):
    src = write_input(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS[:2]])
    score_local(aspects_only_pipeline, src, tmp_path / "a.jsonl", progress=False)
    rows = read_output(tmp_path / "a.jsonl")
    assert list(rows[0]) == ["text", "aspect_terms", "error"]
    nlp = spacy.load(aspects_only_pipeline)
    assert all(same_terms(r["aspect_terms"], t)
               for r, t in zip(rows, expected_terms(nlp, TEXTS[:2])))
    score_local(sentiment_pipeline, src, tmp_path / "s.jsonl", progress=False)
    assert "aspect_terms" not in read_output(tmp_path / "s.jsonl")[0]


def test_ray_scorer_writes_aspect_terms_as_json(aspects_pipeline, aspects_nlp):
    """The Ray engine's per-actor callable (run directly: no cluster needed)."""
    import pyarrow as pa

    from spacy_senti.batch.ray_engine import SentiScorer

    scorer = SentiScorer(str(aspects_pipeline), "text", batch_size=4)
    table = scorer(pa.table({"text": TEXTS[:2]}))
    assert table.schema.field("aspect_terms").type == pa.string()
    values = [json.loads(v) for v in table.column("aspect_terms").to_pylist()]
    assert all(same_terms(v, t) for v, t in zip(values, expected_terms(aspects_nlp, TEXTS[:2])))


@Language.factory("test_fake_terms")
def _fake_terms(nlp: Language, name: str) -> FakeTerms:
    return FakeTerms()


class FakeTerms:
    """An ONNX-like component: sets doc._.aspect_terms and says so with has_aspect_terms."""

    has_aspect_terms = True

    def __call__(self, doc: Doc) -> Doc:
        doc._.aspect_terms = [{"text": doc[0].text, "start": 0, "end": len(doc[0].text),
                               "polarity": "positive", "score": 0.75}]
        return doc


def test_aspect_terms_column_from_any_component_that_sets_them():
    from spacy_senti.extensions import register_aspect_term_extensions

    register_aspect_term_extensions()
    nlp = spacy.blank("en")
    assert aspect_term_components(nlp) == []
    with pytest.raises(InputError, match="no senti_aspects"):
        HeadColumns.from_nlp(nlp)
    nlp.add_pipe("test_fake_terms")
    columns = HeadColumns.from_nlp(nlp)
    assert columns.names == ["aspect_terms", "error"]
    assert columns.from_doc(nlp("food rocks")) == {
        "aspect_terms": [{"text": "food", "start": 0, "end": 4, "polarity": "positive",
                          "score": 0.75}], "error": None}
    FakeTerms.has_aspect_terms = False
    try:
        assert aspect_term_components(nlp) == []
    finally:
        FakeTerms.has_aspect_terms = True


# --- the service ----------------------------------------------------------------------------
def test_service_returns_aspect_terms(aspects_pipeline, aspects_nlp):
    with TestClient(create_app(aspects_pipeline, SETTINGS)) as client:
        response = client.post("/v1/analyze", json={"texts": TEXTS[:3]})
        assert response.status_code == 200, response.text
        body = response.json()
        assert AnalyzeResponse.model_validate(body).model_dump(mode="json") == body
        for result, terms in zip(body["results"], expected_terms(aspects_nlp, TEXTS[:3])):
            assert same_terms(result["aspect_terms"], terms)
            assert "sentiment" in result["heads"]
        assert body["results"][2]["aspect_terms"] == []
        assert client.get("/v1/model").json()["aspect_terms"] is True
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert set(schema["AspectTerm"]["required"]) == {"text", "start", "end", "polarity",
                                                         "score"}


def test_service_aspects_only_and_without_aspects(aspects_only_pipeline, tiny_bert, tmp_path):
    from serve_helpers import serve_pipeline

    with TestClient(create_app(aspects_only_pipeline, SETTINGS)) as client:
        body = client.post("/v1/analyze", json={"text": TEXTS[1]}).json()
        AnalyzeResponse.model_validate(body)
        assert body["results"][0]["heads"] == {} and body["results"][0]["cats"] == {}
        assert [t["text"] for t in body["results"][0]["aspect_terms"]] == ["battery life"]
        info = client.get("/v1/model").json()
        assert info["heads"] == [] and info["aspect_terms"] is True
    with TestClient(create_app(serve_pipeline(tiny_bert, tmp_path), SETTINGS)) as client:
        body = client.post("/v1/analyze", json={"text": "i loved it"}).json()
        assert body["results"][0]["aspect_terms"] is None
        assert AnalyzeResponse.model_validate(body).model_dump(mode="json") == body
        assert client.get("/v1/model").json()["aspect_terms"] is False


def test_aspect_term_offsets_refer_to_the_text_as_sent():
    sent = "!!!!!!!!!!!! the pad thai was great"
    norm = normalize_text(sent, max_repeat=8)
    assert norm.changed and norm.text.startswith("!" * 8 + " ")
    start = norm.text.index("pad thai")
    results = [{"aspect_terms": [{"text": "pad thai", "start": start, "end": start + 8,
                                  "polarity": "positive", "score": 0.9}]}]
    restore_offsets([norm], results, [sent])
    term = results[0]["aspect_terms"][0]
    assert (term["start"], term["end"]) == (sent.index("pad thai"), sent.index("pad thai") + 8)
    assert sent[term["start"]:term["end"]] == term["text"] == "pad thai"


def test_service_answers_match_the_openapi_schema(aspects_pipeline):
    """schemathesis (as tests/test_serve_schema.py): schema-valid requests to the aspects
    pipeline get 200 answers matching the published response schema, aspect_terms included."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.generation.modes import GenerationMode

    limits = ServeSettings(max_texts=3, max_explain_texts=1, max_chars=48, max_batch=8,
                           max_wait_ms=1, timeout_s=30)
    schema = schemathesis.openapi.from_asgi("/openapi.json",
                                            create_app(aspects_pipeline, limits))

    @settings(max_examples=25, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(case=schema["/v1/analyze"]["POST"].as_strategy(GenerationMode.POSITIVE))
    def check(case) -> None:
        case.call_and_validate()

    check()


def test_web_page_highlights_aspect_terms(aspects_pipeline, tmp_path):
    """The page (GET /) in headless Chromium, as tests/test_web_page.py drives it: the terms
    as chips coloured by polarity and outlined in the text."""
    import shutil

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs Debian's Chromium: apt-get install chromium")
    sync_api = pytest.importorskip("playwright.sync_api")
    from serve_helpers import LiveServer

    text = TEXTS[0]
    with LiveServer(create_app(aspects_pipeline, SETTINGS)) as server, \
            sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium)
        page = browser.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.goto(f"http://127.0.0.1:{server.port}/")
        sync_api.expect(page.locator("#model")).to_contain_text("aspect terms")
        page.uncheck("#explain")
        page.fill("#text", text)
        page.click("#submit")
        page.wait_for_selector("#results:not([hidden]) #tokens mark.term")
        chips = page.locator("section[data-head=aspect_terms] .chip")
        assert chips.all_inner_texts() == ["pad thai: positive", "waiter: negative"]
        assert page.locator("section[data-head=aspect_terms] .chip.negative").count() == 1
        marks = page.locator("#tokens mark.term")
        assert marks.all_inner_texts() == ["pad thai", "waiter"]
        assert marks.first.get_attribute("data-polarity") == "positive"
        assert page.inner_text("#tokens") == text
        assert "aspect terms pad thai positive, waiter negative" in page.inner_text("#status")
        page.screenshot(path=str(tmp_path / "web_page_terms.png"), full_page=True)
        browser.close()
        assert not problems, problems


def test_onnx_export_with_aspects_in_score_and_service(aspects_pipeline, aspects_nlp,
                                                        tmp_path):
    """An ONNX export of the pipeline (senti_onnx sets doc._.aspect_terms): score gets the
    column through the generic check, the service runs it through spaCy's tokens."""
    from spacy_senti.onnx.export import export_onnx

    export = export_onnx(aspects_pipeline, tmp_path / "onnx")
    expected = expected_terms(aspects_nlp, TEXTS[:2])

    def close(found: list[dict], terms: list[dict]) -> bool:  # onnxruntime vs torch
        return [{**t, "score": pytest.approx(t["score"], abs=1e-4)} for t in terms] == found

    src = write_input(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS[:2]])
    score_local(export, src, tmp_path / "o.jsonl", progress=False)
    rows = read_output(tmp_path / "o.jsonl")
    assert all(close(r["aspect_terms"], t) for r, t in zip(rows, expected))
    with TestClient(create_app(export, SETTINGS)) as client:
        body = client.post("/v1/analyze", json={"texts": TEXTS[:2]}).json()
        assert all(close(r["aspect_terms"], t) for r, t in zip(body["results"], expected))
        info = client.get("/v1/model").json()
        assert info["backend"] == "onnx-fp32" and info["aspect_terms"] is True
        assert client.get("/health").json()["backend"] == "onnx"
