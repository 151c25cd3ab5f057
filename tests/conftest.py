"""Shared fixtures and hooks: a tiny random BERT (no downloads), built once per session.

Importable builders and constants live in helpers.py (never ``from conftest import``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The tiny test models gain nothing from threads, and on a busy 2-core machine torch's
# thread pool oversubscribes the CPU (5x slower measured): one thread per test process.
# The environment variable reaches the subprocesses too (`spacy train` with the real MiniLM:
# 33 s -> 15 s wall, 30 s -> 10 s of CPU; the served app, the scoring CLI, the fresh venv).
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)

from helpers import (  # noqa: E402
    build_aspects_pipeline,
    build_cpu_fast_pipeline,
    build_sentiment_pipeline,
    build_tiny_bert,
)
from score_helpers import build_pipeline as build_multitask_pipeline  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--gpu", action="store_true", help="run tests marked gpu on a CUDA GPU")


def pytest_collection_modifyitems(config, items):
    if config.getoption("--gpu"):
        return
    skip = pytest.mark.skip(reason="needs --gpu and a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    return build_tiny_bert(tmp_path_factory.mktemp("tiny_bert"))


# Trained pipelines that several modules use, built once per test process.
# They are read-only: a test that changes one copies it first (or loads it and saves elsewhere).
@pytest.fixture(scope="session")
def sentiment_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """transformer + senti_textcat, one exclusive head, overfitted on helpers.SENTIMENT_ROWS."""
    return build_sentiment_pipeline(tiny_bert, tmp_path_factory.mktemp("sentiment") / "model")


@pytest.fixture(scope="session")
def multitask_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """An initialised (untrained) multitask pipeline: exclusive, multilabel and grouped heads."""
    return build_multitask_pipeline(tiny_bert, tmp_path_factory.mktemp("multitask") / "pipe")


@pytest.fixture(scope="session")
def cpu_fast_pipeline(tmp_path_factory) -> Path:
    """A small tok2vec sentiment pipeline (configs/cpu_fast.cfg) trained on a few texts."""
    return build_cpu_fast_pipeline(tmp_path_factory.mktemp("cpu_fast_pipe"))


@pytest.fixture(scope="session")
def aspects_pipeline(tiny_bert, tmp_path_factory) -> Path:
    """transformer + senti_textcat (sentiment) + senti_aspects, overfitted on
    helpers.ASPECT_ROWS (terms, polarities and sentence labels all predicted right)."""
    return build_aspects_pipeline(tiny_bert, tmp_path_factory.mktemp("aspects") / "model")
