"""The FastAPI service: every route, input errors, micro-batching, overload, model errors."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakeBackend, free_port, serve_pipeline

from spacy_senti.serve import ServeSettings, create_app
from spacy_senti.serve.app import SpacyBackend
from spacy_senti.serve.batching import MicroBatcher, QueueFullError

SETTINGS = ServeSettings(max_batch=8, max_wait_ms=2, max_texts=3, max_chars=20, max_queue=4)


@pytest.fixture()
def fake():
    return FakeBackend()


@pytest.fixture()
def client(fake):
    with TestClient(create_app(settings=SETTINGS, backend=fake)) as c:
        yield c


def error_of(response) -> dict:
    return response.json()["error"]


def test_analyze_text_and_texts(client):
    r = client.post("/v1/analyze", json={"text": "good film"})
    assert r.status_code == 200
    body = r.json()
    assert body["model"] == "fake"
    assert body["results"][0]["heads"]["sentiment"]["label"] == "positive"
    r = client.post("/v1/analyze", json={"texts": ["good", "bad"]})
    assert [x["heads"]["sentiment"]["label"] for x in r.json()["results"]] == [
        "positive", "negative"]


def test_health_model_docs(client):
    assert client.get("/health").json() == {"status": "ok", "backend": "fake", "queued": 0,
                                            "running_s": 0.0}
    info = client.get("/v1/model").json()
    assert info["labels"] == ["sentiment/negative", "sentiment/positive"]
    assert info["heads"][0]["kind"] == "exclusive" and info["explain_available"] is False
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert "/v1/analyze" in schema["paths"]


@pytest.mark.parametrize("body, status, field, code", [
    ({"text": ""}, 422, "text", "empty_text"),
    ({"text": "   "}, 422, "text", "empty_text"),
    ({"text": "x" * 21}, 422, "text", "text_too_long"),
    ({"texts": ["ok", "y" * 21]}, 422, "texts[1]", "text_too_long"),
    ({"texts": ["a", "b", "c", "d"]}, 422, "texts", "too_many_texts"),
    ({"texts": []}, 422, "texts", "empty"),
    ({"text": 5}, 422, "text", "invalid_field"),
    ({"texts": "abc"}, 422, "texts", "invalid_field"),
    ({"texts": ["a", 1]}, 422, "texts.1", "invalid_field"),
    ({"text": "a", "texts": ["b"]}, 422, None, "invalid_field"),
    ({}, 422, None, "invalid_field"),
    ({"text": "a", "explain": "yes"}, 422, "explain", "invalid_field"),
    ({"text": "a", "colour": 1}, 422, "colour", "invalid_field"),
    ({"text": "a", "explain": True}, 422, "explain", "explain_unavailable"),
    (["a"], 422, "body", "invalid_field"),
])
def test_bad_input(client, body, status, field, code):
    r = client.post("/v1/analyze", json=body)
    assert r.status_code == status, r.text
    err = error_of(r)
    assert err["code"] == code and err["field"] == field, err
    if code in ("text_too_long", "too_many_texts"):
        assert err["limit"] == (20 if code == "text_too_long" else 3)


def test_invalid_json_and_encoding(client):
    r = client.post("/v1/analyze", content=b'{"text": "a"', headers={"content-type":
                                                                      "application/json"})
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_json"
    r = client.post("/v1/analyze", content='{"text": "caf\u00e9"}'.encode("latin-1"))
    assert r.status_code == 400 and error_of(r)["code"] == "invalid_encoding"
    r = client.post("/v1/analyze", content=b"x" * 10_000)
    assert r.status_code == 413 and error_of(r)["field"] == "body"


def test_model_error_fails_only_that_request(client, fake):
    fake.gate = threading.Event()
    results: dict[str, int] = {}

    def post(name: str, text: str) -> None:
        results[name] = client.post("/v1/analyze", json={"text": text}).status_code

    threads = [threading.Thread(target=post, args=(n, t))
               for n, t in [("bad", "boom"), ("good", "good one")]]
    for t in threads:
        t.start()
    time.sleep(0.2)
    fake.gate.set()
    for t in threads:
        t.join(10)
    assert results == {"bad": 500, "good": 200}
    fake.gate = None
    r = client.post("/v1/analyze", json={"text": "boom"})
    assert r.status_code == 500 and error_of(r)["code"] == "model_error"
    assert client.post("/v1/analyze", json={"text": "good"}).status_code == 200


def test_queue_full_returns_503(fake):
    settings = ServeSettings(max_batch=1, max_wait_ms=0, max_queue=1)
    fake.gate = threading.Event()
    with TestClient(create_app(settings=settings, backend=fake)) as client:
        codes: list[int] = []
        first = threading.Thread(target=lambda: codes.append(
            client.post("/v1/analyze", json={"text": "a"}).status_code))
        first.start()
        assert fake.started.wait(5)  # the worker holds request 1
        second = threading.Thread(target=lambda: codes.append(
            client.post("/v1/analyze", json={"text": "b"}).status_code))
        second.start()
        deadline = time.time() + 5
        while client.app.state.batcher.queued < 1 and time.time() < deadline:
            time.sleep(0.01)
        r = client.post("/v1/analyze", json={"text": "c"})
        assert r.status_code == 503 and r.headers["retry-after"] == "1"
        fake.gate.set()
        first.join(10)
        second.join(10)
        assert codes == [200, 200]


def test_micro_batching_groups_concurrent_requests(fake):
    async def scenario() -> list:
        batcher = MicroBatcher(fake.predict, max_batch=8, max_wait_ms=50, max_queue=10)
        await batcher.start()
        try:
            return await asyncio.gather(*[batcher.submit([f"t{i}", "good"]) for i in range(4)])
        finally:
            await batcher.stop()

    results = asyncio.run(scenario())
    assert len(fake.calls) == 1 and len(fake.calls[0]) == 8
    assert [len(r) for r in results] == [2, 2, 2, 2]
    assert results[0][1]["heads"]["sentiment"]["label"] == "positive"


def test_batcher_queue_full():
    async def scenario() -> None:
        batcher = MicroBatcher(lambda t, e: [], max_queue=1)  # worker not started
        task = asyncio.ensure_future(batcher.submit(["a"]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFullError):
            await batcher.submit(["b"])
        task.cancel()

    asyncio.run(scenario())


# --- a real (tiny) spaCy pipeline -----------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_pipeline(tiny_bert, tmp_path_factory) -> Path:
    return serve_pipeline(tiny_bert, tmp_path_factory.mktemp("serve_pipe"))


def test_spacy_backend_with_explain(tiny_pipeline):
    with TestClient(create_app(tiny_pipeline, ServeSettings())) as client:
        r = client.post("/v1/analyze", json={"texts": ["i loved this film", "awful"],
                                             "explain": True})
        assert r.status_code == 200, r.text
        results = r.json()["results"]
        assert set(results[0]["cats"]) == {"sentiment/negative", "sentiment/positive"}
        explain = results[0]["explain"]
        # every token: the model's attribution towards the predicted label, the lexicon's
        # valence where the word has one
        tokens = explain["tokens"]
        assert [t["text"] for t in tokens] == ["i", "loved", "this", "film"]
        assert [(t["start"], t["end"]) for t in tokens] == [(0, 1), (2, 7), (8, 12), (13, 17)]
        assert [t["text"] for t in tokens if t["valence"] is not None] == ["loved"]
        assert tokens[1]["valence"] > 0
        assert all(isinstance(t["attribution"], float) for t in tokens)
        label = results[0]["heads"]["sentiment"]["label"]
        assert explain["method"] == "ig" and explain["target"] == f"sentiment/{label}"
        assert explain["target_prob"] == pytest.approx(results[0]["cats"][explain["target"]],
                                                       abs=1e-4)
        assert results[1]["explain"]["lexicon_score"] < 0
        plain = client.post("/v1/analyze", json={"text": "i loved this film"}).json()
        assert plain["results"][0]["explain"] is None
        assert client.get("/v1/model").json()["explain_available"] is True
    assert isinstance(client.app.state.backend, SpacyBackend)


def test_explain_is_bounded_and_paid_only_where_asked(tiny_pipeline):
    settings = ServeSettings(max_explain_texts=2, max_wait_ms=50)
    with TestClient(create_app(tiny_pipeline, settings)) as client:
        r = client.post("/v1/analyze", json={"texts": ["good", "bad", "ok"], "explain": True})
        assert r.status_code == 422 and error_of(r) == {
            "code": "too_many_explain_texts", "field": "texts", "limit": 2,
            "message": "texts holds 3 texts; with explain the limit is 2"}
        assert client.post("/v1/analyze", json={"texts": ["good", "bad", "ok"]}
                           ).status_code == 200
        schema = client.get("/openapi.json").json()
        body = schema["paths"]["/v1/analyze"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]
        assert body["then"] == {"properties": {"texts": {"maxItems": 2}}}
        assert "(2 with `explain: true`" in " ".join(schema["info"]["description"].split())
        # the backend explains only the texts whose flag is set
        results = client.app.state.backend.predict(["good", "bad"], [False, True])
        assert "explain" not in results[0] and results[1]["explain"]["tokens"][0]["text"] == "bad"


def test_batcher_passes_explain_per_text():
    """A model call shared by requests with and without explain explains only the former."""
    calls = []

    def predict(texts, explain):
        calls.append((list(texts), list(explain)))
        return [{"cats": {}, "heads": {}} for _ in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=0)
        plain = asyncio.ensure_future(batcher.submit(["a", "b"]))
        explained = asyncio.ensure_future(batcher.submit(["c"], explain=True))
        await asyncio.sleep(0)  # both queued before the worker starts: one call
        await batcher.start()
        await asyncio.gather(plain, explained)
        await batcher.stop()

    asyncio.run(scenario())
    assert calls == [(["a", "b", "c"], [False, False, True])]


def test_web_page_is_served(client):
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert '<label for="text">' in r.text
    for name, kind in [("app.js", "javascript"), ("style.css", "text/css")]:
        asset = client.get(f"/static/{name}")
        assert asset.status_code == 200 and kind in asset.headers["content-type"]
    assert "http" not in client.get("/static/style.css").text  # no web fonts, no CDN
    assert client.get("/static/nope.js").json()["error"]["code"] == "not_found"
    assert "/" not in client.get("/openapi.json").json()["paths"]


def test_real_server_over_http(tiny_pipeline):
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "spacy_senti.cli", "serve", str(tiny_pipeline), "--host",
         "127.0.0.1", "--port", str(port), "--threads", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.time() < deadline, "server did not start"
            time.sleep(0.3)
        r = httpx.post(f"{base}/v1/analyze", json={"text": "i loved this film"}, timeout=10)
        assert r.status_code == 200
        assert r.json()["results"][0]["heads"]["sentiment"]["label"] in ("negative", "positive")
        bad = httpx.post(f"{base}/v1/analyze", content=b"\xff\xfe", timeout=10)
        assert bad.status_code == 400
    finally:
        proc.terminate()
        proc.wait(15)


def test_lone_request_does_not_wait(fake):
    async def scenario() -> float:
        batcher = MicroBatcher(fake.predict, max_batch=8, max_wait_ms=2000, max_queue=10)
        await batcher.start()
        try:
            start = time.perf_counter()
            await batcher.submit(["good"])
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) < 1.0


def test_burst_over_does_not_wait_for_more(fake):
    """After a call of several requests, the next request waits for company only while
    requests keep arriving (max_gap_ms), not the whole max_wait_ms."""
    async def scenario() -> float:
        batcher = MicroBatcher(fake.predict, max_batch=8, max_wait_ms=3000, max_gap_ms=10,
                               max_queue=10)
        await batcher.start()
        try:
            await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
            start = time.perf_counter()
            await batcher.submit(["good"])  # alone after a call of two requests
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) < 1.5
    assert fake.calls == [["a", "b"], ["good"]]


def test_a_burst_still_shares_one_call(fake):
    """Requests arriving one after the other within max_gap_ms go into one call."""
    async def scenario() -> None:
        batcher = MicroBatcher(fake.predict, max_batch=8, max_wait_ms=3000, max_gap_ms=1000,
                               max_queue=10)
        await batcher.start()
        try:
            await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
            first = asyncio.ensure_future(batcher.submit(["c"]))
            await asyncio.sleep(0.05)
            await asyncio.gather(first, batcher.submit(["d"]))
        finally:
            await batcher.stop()

    asyncio.run(scenario())
    assert fake.calls == [["a", "b"], ["c", "d"]]


def test_answers_match_the_response_model(client, tiny_pipeline):
    """Answers are serialised without pydantic: they must equal AnalyzeResponse's dump."""
    from spacy_senti.serve.schemas import AnalyzeResponse

    answers = [client.post("/v1/analyze", json={"texts": ["good", "bad film"]}).json()]
    with TestClient(create_app(tiny_pipeline, ServeSettings())) as spacy_client:
        for explain in (False, True):
            r = spacy_client.post("/v1/analyze", json={"texts": ["i loved it", "awful"],
                                                       "explain": explain})
            answers.append(r.json())
    for body in answers:
        assert AnalyzeResponse.model_validate(body).model_dump(mode="json") == body
    assert answers[0]["results"][0]["explain"] is None


def test_timing_header_only_when_asked(fake):
    stages = {"read", "parse", "norm", "queue", "handoff", "model", "wake", "resp", "app"}
    with TestClient(create_app(settings=SETTINGS, backend=fake)) as plain:
        assert "server-timing" not in plain.post("/v1/analyze", json={"text": "good"}).headers
    timed = SETTINGS.model_copy(update={"timing": True})
    with TestClient(create_app(settings=timed, backend=fake)) as client:
        r = client.post("/v1/analyze", json={"texts": ["good", "bad"]})
    metrics = dict(m.strip().split(";", 1) for m in r.headers["server-timing"].split(","))
    assert set(metrics) == stages | {"batch", "calls"}
    assert metrics["batch"] == "desc=2" and metrics["calls"] == "desc=1"
    durations = {k: float(v.removeprefix("dur=")) for k, v in metrics.items() if k in stages}
    assert all(v >= 0 for v in durations.values())
    assert durations["app"] >= durations["model"]


def test_lone_short_request_runs_on_the_loop_thread():
    """inline_chars: a lone short request skips the hand-off to the model thread; explain,
    longer texts and concurrent requests still go to the model thread."""
    threads: list[tuple[list[str], str]] = []

    def predict(texts, explain):
        threads.append((list(texts), threading.current_thread().name))
        return [{"cats": {}, "heads": {}} for _ in texts]

    async def scenario() -> str:
        batcher = MicroBatcher(predict, max_batch=8, max_wait_ms=0, inline_chars=10)
        await batcher.start()
        try:
            await batcher.submit(["short"])
            await batcher.submit(["short"], explain=True)
            await batcher.submit(["much too long"])
            await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
        finally:
            await batcher.stop()
        return threading.current_thread().name

    loop_thread = asyncio.run(scenario())
    assert threads[0] == (["short"], loop_thread)
    assert all(name.startswith("senti-model") for _, name in threads[1:])
    assert [t for t, _ in threads[1:]] == [["short"], ["much too long"], ["a", "b"]]


def test_only_backends_that_opt_in_run_inline(fake):
    """The ONNX backend opts in (``inline``); others (spaCy, here the fake) never run inline."""
    from spacy_senti.serve.app import OnnxBackend

    assert OnnxBackend.inline is True
    with TestClient(create_app(settings=SETTINGS, backend=fake)) as client:
        assert client.app.state.batcher.inline_chars == 0
    fake.inline = True
    with TestClient(create_app(settings=SETTINGS, backend=fake)) as client:
        assert client.app.state.batcher.inline_chars == SETTINGS.inline_chars
        assert client.post("/v1/analyze", json={"text": "good"}).status_code == 200


def test_half_full_call_starts_at_once(fake):
    """Once a call holds half of max_batch, it does not wait for more (the other clients
    turn around while it runs)."""
    async def scenario() -> float:
        batcher = MicroBatcher(fake.predict, max_batch=4, max_wait_ms=3000, max_gap_ms=2500,
                               max_queue=10)
        await batcher.start()
        try:
            await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]))
            start = time.perf_counter()
            await asyncio.gather(batcher.submit(["c"]), batcher.submit(["d"]))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert asyncio.run(scenario()) < 1.5
    assert fake.calls == [["a", "b"], ["c", "d"]]
