"""The service's web page (``GET /``) in a real headless browser (issue 16).

Debian's Chromium (``apt-get install chromium``; ``.ci/run`` installs it when missing), driven
by Playwright for Python with ``executable_path`` (never ``playwright install``: its download
is not needed and not reachable offline). The pages are served by uvicorn on 127.0.0.1:

* the tiny trained sentiment pipeline + senti_lexicon: type a sentence, submit with Enter,
  then the bars, the predicted label and the tokens tinted by attribution (with lexicon
  valences) must match what ``POST /v1/analyze`` answers; keyboard order, visible focus, a
  phone-width layout, an API error shown as text, no request leaving 127.0.0.1; a screenshot
  is saved in the test's tmp dir;
* a model-free fake backend with emotion and aspect heads and no explain: the labels over
  their thresholds, the aspect chips, an aspect term span highlighted, explain switched off.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest
import spacy
from serve_helpers import LiveServer

from spacy_senti.heads import HeadSpec
from spacy_senti.serve import ServeSettings, create_app

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason="needs Debian's Chromium for the browser test: apt-get install chromium",
)
sync_api = pytest.importorskip("playwright.sync_api",
                               reason="needs Playwright for Python (the dev extra)")

SETTINGS = ServeSettings(max_batch=8, max_wait_ms=1, timeout_s=30)
PHONE = {"width": 375, "height": 740}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def lexicon_pipeline(sentiment_pipeline, tmp_path_factory) -> Path:
    """The session's trained sentiment pipeline plus senti_lexicon (token valences)."""
    nlp = spacy.load(sentiment_pipeline)
    nlp.add_pipe("senti_lexicon")
    path = tmp_path_factory.mktemp("web_page") / "pipe"
    nlp.to_disk(path)
    return path


def open_page(browser, port: int, viewport: dict | None = None):
    """A new page at the service's ``/`` and the lists of every URL it requests and every
    script error or Content-Security-Policy violation it reports."""
    page = browser.new_page(viewport=viewport or {"width": 1000, "height": 900})
    requests: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda msg: problems.append(msg.text)
            if "Content Security Policy" in msg.text else None)
    page.goto(f"http://127.0.0.1:{port}/")
    return page, requests, problems


def active_id(page) -> str:
    return page.evaluate("document.activeElement && document.activeElement.id")


def test_page_analyses_a_sentence(browser, lexicon_pipeline, tmp_path):
    text = "i loved this film"
    with LiveServer(create_app(lexicon_pipeline, SETTINGS)) as server:
        base = f"http://127.0.0.1:{server.port}"
        info = httpx.get(f"{base}/v1/model").json()
        expected = httpx.post(f"{base}/v1/analyze", json={"text": text, "explain": True},
                              timeout=30).json()["results"][0]
        page, requests, problems = open_page(browser, server.port)
        sync_api.expect(page.locator("#model")).to_contain_text(info["name"])
        assert info["version"] in page.inner_text("#model")
        assert page.is_checked("#explain") and not page.is_disabled("#explain")

        # keyboard only: Tab reaches the text box, the explain switch, then the button
        page.keyboard.press("Tab")
        assert active_id(page) == "text"
        assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"
        page.keyboard.press("Tab")
        assert active_id(page) == "explain"
        page.keyboard.press("Tab")
        assert active_id(page) == "submit"
        page.keyboard.press("Shift+Tab")
        page.keyboard.press("Shift+Tab")
        page.keyboard.type(text)
        page.keyboard.press("Enter")  # submits (Shift+Enter would add a new line)
        page.wait_for_selector("#results:not([hidden]) .tok")
        assert page.input_value("#text") == text

        # the predicted label and one bar per label, each as long as its probability
        head = expected["heads"]["sentiment"]
        assert head["label"] == "positive"  # the pipeline is overfitted on this sentence
        assert page.inner_text("section[data-head=sentiment] .predicted") == "positive"
        tracks = page.locator("dl[data-head=sentiment] .track")
        assert tracks.count() == 2
        for i in range(2):
            label = tracks.nth(i).get_attribute("data-label")
            prob = float(tracks.nth(i).get_attribute("data-prob"))
            assert prob == pytest.approx(head["scores"][label], abs=1e-3)
            width = tracks.nth(i).locator(".fill").evaluate(
                "e => e.getBoundingClientRect().width / e.parentElement.clientWidth")
            assert width == pytest.approx(prob, abs=0.02)
        assert "positive (predicted)" in page.inner_text("dl[data-head=sentiment]")

        # every token tinted by its attribution; the lexicon word marked with its valence
        explain = expected["explain"]
        tokens = page.locator("#tokens .tok")
        assert tokens.count() == len(explain["tokens"]) == 4
        assert page.inner_text("#tokens") == text
        tinted = 0
        for i, token in enumerate(explain["tokens"]):
            span = tokens.nth(i)
            assert span.inner_text() == token["text"]
            assert float(span.get_attribute("data-attribution")) == pytest.approx(
                token["attribution"], abs=1e-3)
            colour = span.evaluate("e => getComputedStyle(e).backgroundColor")
            tinted += colour not in ("rgba(0, 0, 0, 0)", "transparent")
        assert tinted == sum(t["attribution"] != 0 for t in explain["tokens"]) > 0
        loved = page.locator("#tokens .tok.valence")
        assert loved.inner_text() == "loved" and float(loved.get_attribute("data-valence")) > 0
        assert explain["target"] in page.inner_text("#legend")
        assert "Most influential" in page.inner_text("#top")
        assert "sentiment positive" in page.inner_text("#status")
        page.screenshot(path=str(tmp_path / "web_page.png"), full_page=True)
        assert (tmp_path / "web_page.png").stat().st_size > 10_000

        # an API error is shown as text (a blank text: 422 empty_text), Ctrl+Enter submits
        page.fill("#text", "   ")
        page.press("#text", "Control+Enter")
        page.wait_for_selector("#error:not([hidden])")
        assert "empty_text" in page.inner_text("#error")

        # phone width: nothing wider than the screen
        page.set_viewport_size(PHONE)
        page.fill("#text", "the plot was awful")
        page.press("#text", "Enter")
        sync_api.expect(page.locator("#status")).to_contain_text("sentiment negative")
        assert page.is_hidden("#error")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(tmp_path / "web_page_phone.png"), full_page=True)
        assert all(url.startswith((base, "data:")) for url in requests), requests
        assert not problems, problems


class MultiHeadBackend:
    """Emotion and aspect heads without a model; no explain (like the ONNX backend); the
    aspect head's answer carries a term span, as a future aspect-term head would."""

    kind = "fake"
    explain_available = False
    emotion = HeadSpec(name="emotion", kind="multilabel", labels=["anger", "joy", "sadness"],
                       thresholds={"sadness": 0.3})

    def predict(self, texts: list[str], explain: bool) -> list[dict]:
        results = []
        for text in texts:
            emotion = [0.05, 0.8, 0.4]
            start = text.find("food")
            terms = [{"start": start, "end": start + 4, "aspect": "food",
                      "polarity": "positive"}] if start >= 0 else []
            aspect = {"aspects": {"food": "positive"}, "terms": terms,
                      "scores": {"food": {"absent": 0.1, "negative": 0.1, "positive": 0.8},
                                 "service": {"absent": 0.7, "negative": 0.2, "positive": 0.1}}}
            results.append({"cats": dict(zip(self.emotion.keys(), emotion)),
                            "heads": {"emotion": self.emotion.decode(emotion),
                                      "aspect": aspect}})
        return results

    def info(self) -> dict:
        return {"name": "fake_multi", "version": "1.2.3", "backend": "fake", "labels": [],
                "heads": [{"name": "emotion", "kind": "multilabel", "groups": [],
                           "labels": self.emotion.labels, "threshold": 0.5,
                           "thresholds": {"sadness": 0.3}},
                          {"name": "aspect", "kind": "grouped", "labels": [],
                           "groups": ["food", "service"], "threshold": 0.5, "thresholds": {}}]}


def test_page_emotions_aspects_without_explain(browser, tmp_path):
    with LiveServer(create_app(settings=SETTINGS, backend=MultiHeadBackend())) as server:
        page, _, problems = open_page(browser, server.port, PHONE)
        sync_api.expect(page.locator("#model")).to_contain_text("fake_multi 1.2.3")
        assert page.is_disabled("#explain") and not page.is_checked("#explain")
        page.fill("#text", "The food was lovely")
        page.click("#submit")
        page.wait_for_selector("#results:not([hidden])")
        # labels over their thresholds (sadness: 0.4 over its own 0.3), with threshold ticks
        chips = page.locator("section[data-head=emotion] .chip")
        assert chips.all_inner_texts() == ["joy", "sadness"]
        assert page.locator("dl[data-head=emotion] .threshold").count() == 3
        # aspects: the category found, and its term span highlighted in the text
        assert page.locator("section[data-head=aspect] .chip.positive").inner_text() == (
            "food: positive")
        assert page.locator("#tokens mark.term").inner_text() == "food"
        assert page.inner_text("#tokens") == "The food was lovely"
        assert page.locator("#tokens .tok").count() == 0  # no attributions asked for
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        page.screenshot(path=str(tmp_path / "web_page_multi.png"), full_page=True)
        assert not problems, problems
