"""Shared by the test_serve*.py modules: a fake model, a tiny served pipeline, a live server."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from helpers import load_config, make_examples, nlp_from_config, train

from spacy_senti.heads import HeadSpec

ROWS = [("i loved this film", "positive"), ("the plot was awful", "negative"),
        ("great food and great staff", "positive"), ("i hate this boring movie", "negative")]


class FakeBackend:
    """A model stand-in: 'boom' in a text raises; optional gate blocks predict."""

    kind = "fake"
    explain_available = False

    def __init__(self) -> None:
        self.head = HeadSpec(name="sentiment", kind="exclusive", labels=["negative", "positive"])
        self.calls: list[list[str]] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()

    def predict(self, texts: list[str], explain: bool) -> list[dict]:
        self.calls.append(list(texts))
        self.started.set()
        if self.gate is not None:
            self.gate.wait(10)
        if any("boom" in t for t in texts):
            raise RuntimeError("model exploded")
        results = []
        for text in texts:
            p = 0.9 if "good" in text else 0.1
            values = [1 - p, p]
            results.append({"cats": dict(zip(self.head.keys(), values)),
                            "heads": {"sentiment": self.head.decode(values)}})
        return results

    def info(self) -> dict:
        return {"name": "fake", "version": "0.0.1", "backend": "fake",
                "heads": [{"name": "sentiment", "kind": "exclusive", "labels": self.head.labels,
                           "groups": [], "threshold": 0.5, "thresholds": {}}],
                "labels": self.head.keys()}


_PIPELINES: dict[Path, Path] = {}


def serve_pipeline(tiny_bert: Path, root: Path) -> Path:
    """A tiny trained sentiment pipeline + senti_lexicon (for explain); built once a process."""
    if tiny_bert not in _PIPELINES:
        nlp = nlp_from_config(load_config("sentiment", tiny_bert))
        cats = [(t, {f"sentiment/{lab}": float(lab == y) for lab in ("negative", "positive")})
                for t, y in ROWS]
        train(nlp, make_examples(nlp, cats), n_iter=3, lr=3e-4)
        nlp.add_pipe("senti_lexicon")
        path = root / "pipe"
        nlp.to_disk(path)
        _PIPELINES[tiny_bert] = path
    return _PIPELINES[tiny_bert]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a thread (real sockets, no subprocess)."""

    def __init__(self, app) -> None:
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.time() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.time() < deadline, "server did not start"
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(15)
