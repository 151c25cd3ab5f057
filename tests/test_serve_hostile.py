"""A hostile client against the service (issue 13, rows 8-14): each test failed on the old app.

Row 8 deep JSON, 9 lone surrogates, 10 endless chunked bodies, 11 pathological punctuation,
time budget and stuck batches, 12 the published schema, 14 the error body on every route.
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time
from pathlib import Path

import jsonschema
import pytest
from fastapi.testclient import TestClient
from serve_helpers import FakeBackend, LiveServer, serve_pipeline

from spacy_senti.serve import ServeSettings, create_app
from spacy_senti.serve.batching import MicroBatcher
from spacy_senti.serve.normalize import normalize_text
from spacy_senti.serve.schemas import NOT_BLANK

SMALL = ServeSettings(max_batch=8, max_wait_ms=2, max_texts=3, max_chars=20, max_queue=4)


@pytest.fixture()
def fake():
    return FakeBackend()


@pytest.fixture()
def client(fake):
    with TestClient(create_app(settings=SMALL, backend=fake)) as c:
        yield c


@pytest.fixture(scope="module")
def tiny_pipeline(tiny_bert, tmp_path_factory) -> Path:
    return serve_pipeline(tiny_bert, tmp_path_factory.mktemp("serve_pipe"))


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "field",
                                                             "limit"}, body
    return body["error"]


# --- row 8: 100,000-deep JSON ------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"[" * 100_000 + b"]" * 100_000,
                                  b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                                  b'{"a":' * 50_000 + b"1" + b"}" * 50_000])
def test_deeply_nested_json_is_400(fake, body):
    with TestClient(create_app(settings=ServeSettings(), backend=fake)) as client:
        r = client.post("/v1/analyze", content=body,
                        headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    err = error_of(r)
    assert err["code"] == "invalid_json" and err["field"] == "body"
    assert "nested" in err["message"]


# --- row 9: lone surrogates --------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    (b'{"text": "\\ud800"}', "text"),
    (b'{"text": "ok \\udfff ok"}', "text"),
    (b'{"texts": ["fine", "a\\udc00b"]}', "texts[1]"),
])
def test_lone_surrogate_is_422_naming_the_field(client, fake, body, field):
    r = client.post("/v1/analyze", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    err = error_of(r)
    assert err["code"] == "invalid_text" and err["field"] == field
    assert "surrogate" in err["message"]
    assert fake.calls == []  # the model never saw it
    # a surrogate *pair* is a valid astral character
    assert client.post("/v1/analyze", content=b'{"text": "\\ud83d\\ude00 good"}').status_code == 200


def test_lone_surrogate_on_spacy_backend(tiny_pipeline):
    with TestClient(create_app(tiny_pipeline, ServeSettings())) as client:
        r = client.post("/v1/analyze", content=b'{"text": "bad \\ud800 film"}')
    assert r.status_code == 422 and error_of(r)["field"] == "text"


# --- row 10: bodies over the limit are not read ------------------------------------------------
def _send_chunked(port: int, total: int, chunk: int = 1 << 16) -> tuple[int, bytes]:
    """POST an endless chunked body over a raw socket until the server answers; returns the
    bytes sent and the start of the response."""
    frame = f"{chunk:x}\r\n".encode() + b"a" * chunk + b"\r\n"
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: test\r\nContent-Type: application/json"
                 b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    sock.setblocking(False)
    sent = offset = 0
    reply = b""
    try:
        deadline = time.time() + 60
        while sent < total and time.time() < deadline:
            readable, writable, _ = select.select([sock], [sock], [], 1.0)
            if readable:
                break
            if writable:
                try:
                    n = sock.send(frame[offset:])
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:  # the server closed the connection
                    break
                sent += n
                offset = (offset + n) % len(frame)
        sock.setblocking(True)
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in reply:
                data = sock.recv(65536)
                if not data:
                    break
                reply += data
        except OSError:
            pass
    finally:
        sock.close()
    return sent, reply


def test_chunked_body_stops_at_the_limit(fake):
    settings = ServeSettings(max_texts=2, max_chars=100)  # max_body: 2 * 1208 + 4096 bytes
    total = 200 * 2**20
    with LiveServer(create_app(settings=settings, backend=fake)) as live:
        sent, reply = _send_chunked(live.port, total)
        assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert b"connection: close" in reply.lower()
        # what the kernel's socket buffers hold, not 200 MB: the server stopped reading
        assert sent < 32 * 2**20, sent
        # a declared Content-Length over the limit is refused before any body is read
        sock = socket.create_connection(("127.0.0.1", live.port))
        sock.settimeout(10)
        sock.sendall(b"POST /v1/analyze HTTP/1.1\r\nHost: t\r\nContent-Length: 209715200\r\n\r\n")
        head = b""
        while data := sock.recv(65536):  # the server closes the connection after the reply
            head += data
        sock.close()
        assert head.startswith(b"HTTP/1.1 413"), head[:200]
        body = json.loads(head.split(b"\r\n\r\n", 1)[1])
        assert body["error"]["code"] == "body_too_large"
        assert body["error"]["limit"] == settings.max_body
    assert fake.calls == []


# --- row 11: pathological punctuation, time budget, stuck batches ------------------------------
def test_normalize_bounds_runs_and_stretches():
    assert normalize_text("i loved it!!! really").text == "i loved it!!! really"
    assert not normalize_text("a normal sentence, isn't it? hahahahahahahaha 0000000000").changed
    assert normalize_text("wow" + "!" * 5000).text == "wow" + "!" * 8
    assert normalize_text(":)" * 2500).text == ":)" * 8
    assert normalize_text("a." * 2500).text == "a" + ".a" * 8 + "."
    assert normalize_text("(" * 5000 + "hello").text == "(" * 8 + "hello"
    url = "https://example.com/" + "abcdefghij" * 30
    out = normalize_text(url, max_repeat=8, max_span=100)
    assert [len(part) for part in out.text.split(" ")] == [100, 100, 100, 20]
    assert out.text.replace(" ", "") == url


def test_normalize_maps_offsets_back():
    text = "ok " + "?" * 300 + " i loved " + ":)" * 200 + "it" + " great"
    out = normalize_text(text, max_repeat=4, max_span=50)
    for word in ("loved", "great", "ok"):
        i = out.text.index(word)
        assert out.origin(i) == text.index(word)
        assert text[out.origin(i):out.origin(i) + len(word)] == word
    for i, char in enumerate(out.text):
        origin = out.origin(i)
        assert char == " " or text[origin] == char


def test_pathological_punctuation_is_bounded_on_spacy(tiny_pipeline):
    """Row 11: 2 texts of 5,000 punctuation characters took 37.6 s of tokenizer time."""
    texts = [":)" * 2500, "#!" * 2500]
    with TestClient(create_app(tiny_pipeline, ServeSettings())) as client:
        client.post("/v1/analyze", json={"text": "warm up"})
        start = time.perf_counter()
        r = client.post("/v1/analyze", json={"texts": texts})
        elapsed = time.perf_counter() - start
        assert r.status_code == 200, r.text
        # without normalisation spaCy's tokenizer alone needs ~9 s for these two texts
        assert elapsed < 4.0, elapsed
        text = "(" * 3000 + " i loved it " + "!" * 40
        r = client.post("/v1/analyze", json={"text": text, "explain": True})
        tokens = [t for t in r.json()["results"][0]["explain"]["tokens"] if t["valence"]]
        assert [t["text"] for t in tokens] == ["loved"]
        assert tokens[0]["start"] == text.index("loved")  # offsets in the text as sent
        assert tokens[0]["end"] == text.index("loved") + len("loved")


def test_normalisation_reaches_the_model(client, fake):
    r = client.post("/v1/analyze", json={"text": "good" + "!" * 16})
    assert r.status_code == 200
    assert fake.calls == [["good" + "!" * 8]]


def test_time_budget_504_and_health_stuck(fake):
    settings = ServeSettings(timeout_s=0.3, max_wait_ms=0)
    fake.gate = threading.Event()
    with TestClient(create_app(settings=settings, backend=fake)) as client:
        start = time.perf_counter()
        r = client.post("/v1/analyze", json={"text": "slow one"})
        assert r.status_code == 504, r.text
        assert time.perf_counter() - start < 3
        err = error_of(r)
        assert err["code"] == "timeout"
        time.sleep(0.1)  # the model call still runs: longer than the budget now
        health = client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "stuck"
        assert health.json()["running_s"] > 0.3
        r = client.post("/v1/analyze", json={"text": "next"})  # fails fast, no 10 s wait
        assert r.status_code == 503 and error_of(r)["code"] == "stuck"
        assert r.headers["retry-after"] == "1"
        fake.gate.set()
        deadline = time.time() + 5
        while client.get("/health").status_code != 200 and time.time() < deadline:
            time.sleep(0.02)
        assert client.get("/health").json()["status"] == "ok"
        assert client.post("/v1/analyze", json={"text": "good"}).status_code == 200


def test_settings_from_env(monkeypatch, tmp_path):
    """The new limits reach ``spacy-senti serve`` through SPACY_SENTI_SERVE_* (the CLI passes
    its options that way)."""
    from spacy_senti.serve.app import app_from_env, fix_mmap_threshold

    for name, value in [("MODEL", str(tmp_path)), ("TIMEOUT_S", "2.5"),
                        ("MAX_BATCH_CHARS", "1000"), ("MAX_REPEAT", "3"), ("MAX_SPAN", "40"),
                        ("MMAP_THRESHOLD", "0"), ("MAX_GAP_MS", "0.5"), ("TIMING", "True")]:
        monkeypatch.setenv(f"SPACY_SENTI_SERVE_{name}", value)
    app = app_from_env()  # the model loads at startup, not here
    settings = app.state.settings
    assert (settings.timeout_s, settings.max_batch_chars, settings.max_repeat,
            settings.max_span, settings.mmap_threshold, settings.max_gap_ms,
            settings.timing) == (2.5, 1000, 3, 40, 0, 0.5, True)
    assert "time budget of 2.5 s" in app.description
    assert fix_mmap_threshold(0) is False


def test_large_request_does_not_hold_the_model():
    """A request larger than one call runs in several; a request arriving meanwhile goes
    into the next call, and the texts of a timed-out request are dropped."""
    calls: list[list[str]] = []
    first_call = threading.Event()
    release = threading.Event()

    def predict(texts, explain):
        calls.append(list(texts))
        first_call.set()
        release.wait(5)
        return [{"cats": {}, "heads": {}, "text": t} for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=4, max_wait_ms=0, max_queue=10,
                               max_chars=10_000)
        await batcher.start()
        try:
            big = asyncio.ensure_future(batcher.submit([f"big{i}" for i in range(12)]))
            await asyncio.to_thread(first_call.wait, 5)
            small = asyncio.ensure_future(batcher.submit(["small"]))
            doomed = asyncio.ensure_future(batcher.submit([f"doomed{i}" for i in range(8)]))
            await asyncio.sleep(0.05)
            release.set()
            small_result = await small
            doomed.cancel()
            big_result = await big
            return small_result, big_result
        finally:
            await batcher.stop()

    small, big = asyncio.run(scenario())
    assert [r["text"] for r in small] == ["small"]
    assert [r["text"] for r in big] == [f"big{i}" for i in range(12)]
    assert calls[0] == ["big0", "big1", "big2", "big3"]
    assert "small" in calls[1]  # the second call, not after the whole big request
    assert all(len(c) <= 4 for c in calls)
    sent = [t for c in calls for t in c]
    assert sum(t.startswith("doomed") for t in sent) < 8  # cancelled: not all sent


def test_large_request_progresses_under_constant_load():
    """Every call gives the oldest carried-over request up to half of itself: it is not
    starved by new requests that would fill every call (it used to wait until timing out)."""
    calls: list[list[str]] = []

    def predict(texts, explain):
        calls.append(list(texts))
        time.sleep(0.005)
        return [{"text": t} for t in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=2, max_wait_ms=0, max_queue=50)
        await batcher.start()
        small: list[asyncio.Future] = []
        try:
            for i in range(4):
                small.append(asyncio.ensure_future(batcher.submit([f"s{i}"])))
            await asyncio.sleep(0)
            big = asyncio.ensure_future(batcher.submit([f"big{i}" for i in range(6)]))
            while not big.done():  # keep the queue full of small requests
                if batcher.queued < 4:
                    small += [asyncio.ensure_future(batcher.submit([f"s{len(small) + k}"]))
                              for k in range(4)]
                await asyncio.sleep(0.001)
            await asyncio.gather(*small)
            return await big
        finally:
            await batcher.stop()

    big = asyncio.run(asyncio.wait_for(scenario(), 20))
    assert [r["text"] for r in big] == [f"big{i}" for i in range(6)]
    with_big = [i for i, call in enumerate(calls) if any(t.startswith("big") for t in call)]
    # in every call from its first until it is done, however many small requests wait
    assert with_big == list(range(with_big[0], with_big[0] + len(with_big))), calls[:12]
    assert all(len(call) <= 2 for call in calls)


def test_calls_respect_the_character_budget():
    calls: list[list[str]] = []

    def predict(texts, explain):
        calls.append(list(texts))
        return [{} for _ in texts]

    async def scenario():
        batcher = MicroBatcher(predict, max_batch=32, max_wait_ms=0, max_chars=100)
        await batcher.start()
        try:
            return await batcher.submit(["x" * 60, "y" * 60, "z" * 30, "w" * 500])
        finally:
            await batcher.stop()

    assert len(asyncio.run(scenario())) == 4
    assert calls == [["x" * 60], ["y" * 60, "z" * 30], ["w" * 500]]


# --- row 12: the published schema states the limits ----------------------------------------
def _request_schema(client) -> dict:
    spec = client.get("/openapi.json").json()
    return spec["paths"]["/v1/analyze"]["post"]["requestBody"]["content"][
        "application/json"]["schema"]


def test_schema_states_every_limit(client):
    schema = _request_schema(client)
    text, texts = schema["properties"]["text"], schema["properties"]["texts"]
    assert text["maxLength"] == SMALL.max_chars and text["minLength"] == 1
    assert text["pattern"] == NOT_BLANK
    assert texts["minItems"] == 1 and texts["maxItems"] == SMALL.max_texts
    assert texts["items"]["maxLength"] == SMALL.max_chars
    assert schema["additionalProperties"] is False
    assert schema["oneOf"] == [{"required": ["text"]}, {"required": ["texts"]}]
    assert schema["properties"]["explain"]["enum"] == [False]  # the fake model has no lexicon
    description = client.get("/openapi.json").json()["info"]["description"]
    assert f"{SMALL.max_body} bytes" in description


@pytest.mark.parametrize("body", [
    {"explain": True, "text": None, "texts": []},  # the ST202 case of the issue
    {"text": None}, {"texts": None, "text": "a"}, {"texts": []}, {"text": " \n\t"},
    {"texts": ["\x1d\x1e"]}, {"text": "\ufeff\u3000"},  # whitespace to Python or to JS
    {"text": "x" * 21}, {"texts": ["a", "b", "c", "d"]}, {}, {"text": "a", "texts": ["b"]},
])
def test_schema_and_server_agree(client, body):
    validator = jsonschema.Draft202012Validator(_request_schema(client))
    assert not validator.is_valid(body)
    r = client.post("/v1/analyze", json=body)
    assert r.status_code == 422, r.text
    error_of(r)


def test_schema_allows_explain_with_a_lexicon(tiny_pipeline):
    with TestClient(create_app(tiny_pipeline, ServeSettings())) as client:
        explain = _request_schema(client)["properties"]["explain"]
    assert "enum" not in explain and explain["type"] == "boolean"


# --- row 14: one error body on every route ------------------------------------------------
def test_unknown_route_and_wrong_method_use_the_error_body(client):
    r = client.get("/nope")
    assert r.status_code == 404 and error_of(r)["code"] == "not_found"
    r = client.get("/v1/analyze")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"
    assert r.headers["allow"] == "POST"
    r = client.delete("/health")
    assert r.status_code == 405 and error_of(r)["code"] == "method_not_allowed"


def test_internal_error_uses_the_error_body(fake):
    def broken() -> dict:
        raise RuntimeError("info exploded")

    fake.info = broken
    app = create_app(settings=SMALL, backend=fake)
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.get("/v1/model")
    assert r.status_code == 500 and error_of(r)["code"] == "internal_error"
