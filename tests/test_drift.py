"""spacy-senti drift: PSI maths, vocabulary measures and the command on a tiny pipeline."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from helpers import WORDS, write_jsonl
from typer.testing import CliRunner

from spacy_senti.cli import app
from spacy_senti.monitor.drift import (
    categorical_psi,
    oov_rate,
    psi,
    quantile_edges,
    wordpieces_per_word,
)


@pytest.fixture(scope="module")
def pipeline(cpu_fast_pipeline):
    return cpu_fast_pipeline


def sample_texts(n, seed, lo=3, hi=8):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(lo, hi))) for _ in range(n)]


def test_psi_same_distribution_is_small_and_shift_is_large():
    rng = np.random.RandomState(0)
    ref = rng.normal(size=5000)
    assert psi(ref, rng.normal(size=5000)) < 0.02
    assert psi(ref, rng.normal(loc=1.0, size=5000)) > 0.2
    assert len(quantile_edges(np.zeros(100))) == 1  # constant reference: one edge, no crash


def test_categorical_psi():
    assert categorical_psi(["a", "b"] * 50, ["a", "b"] * 50) == pytest.approx(0.0)
    assert categorical_psi(["a"] * 50 + ["b"] * 50, ["a"] * 90 + ["b"] * 10) > 0.2
    assert categorical_psi(["a"] * 10, ["c"] * 10) > 1.0  # unseen category


def test_wordpieces_per_word_with_tiny_bert(tiny_bert):
    import spacy
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    nlp = spacy.blank("en")
    known = [nlp("good great movie")]
    unknown = [nlp("xylophone quagmire zebra")]
    assert wordpieces_per_word(tok, known)[0] == pytest.approx(1.0)
    pieces, frag = wordpieces_per_word(tok, unknown)
    assert pieces > 3 and frag == 1.0


def test_oov_rate():
    import spacy

    nlp = spacy.blank("en")
    docs = [nlp("good film, bad plot")]
    assert oov_rate({"good", "film", "bad", "plot"}, docs) == 0.0
    assert oov_rate({"good", "film"}, docs) == 0.5


def test_drift_command_flags_shift_and_writes_report(pipeline, tmp_path):
    ref = write_jsonl(tmp_path / "ref.jsonl", sample_texts(200, 0))
    same = write_jsonl(tmp_path / "same.jsonl", sample_texts(200, 1))
    rng = random.Random(2)
    odd = [" ".join(f"zq{rng.randint(0, 999)}x" for _ in range(rng.randint(15, 30)))
           for _ in range(200)]
    shifted = write_jsonl(tmp_path / "shifted.jsonl", odd)
    runner = CliRunner()
    ok = runner.invoke(app, ["drift", str(ref), str(same), "--model", str(pipeline)])
    assert ok.exit_code == 0, ok.output
    out = tmp_path / "report"
    bad = runner.invoke(app, ["drift", str(ref), str(shifted), "--model", str(pipeline),
                              "--output", str(out)])
    assert bad.exit_code == 3, bad.output
    report = json.loads((out / "drift.json").read_text())
    assert report["drift"] is True
    names = {m["name"]: m for m in report["metrics"]}
    assert names["text length PSI"]["drift"]
    assert names["OOV token rate (relative change)"]["drift"]  # vs half of the reference
    assert (out / "drift.png").stat().st_size > 0
    assert "DRIFT DETECTED" in (out / "report.md").read_text()


def test_drift_reads_csv_with_text_column(pipeline, tmp_path):
    texts = sample_texts(50, 3)
    csv = tmp_path / "cur.csv"
    csv.write_text("id,body_text\n" + "".join(f"{i},{t}\n" for i, t in enumerate(texts)))
    ref = write_jsonl(tmp_path / "ref.jsonl", sample_texts(50, 4), field="body_text")
    runner = CliRunner()
    res = runner.invoke(app, ["drift", str(ref), str(csv), "--model", str(pipeline),
                              "--text-column", "body_text", "--threshold", "5",
                              "--vocab-threshold", "5"])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("case", ["missing", "column", "head", "model"])
def test_drift_command_errors(pipeline, tmp_path, case):
    ref = write_jsonl(tmp_path / "ref.jsonl", ["good film"] * 5)
    cur = write_jsonl(tmp_path / "cur.jsonl", ["bad film"] * 5, field="comment")
    args = {
        "missing": [str(ref), str(tmp_path / "nope.jsonl"), "--model", str(pipeline)],
        "column": [str(ref), str(cur), "--model", str(pipeline)],
        "head": [str(ref), str(ref), "--model", str(pipeline), "--head", "emotion"],
        "model": [str(ref), str(ref), "--model", str(tmp_path / "no_model")],
    }[case]
    res = CliRunner().invoke(app, ["drift", *args])
    assert res.exit_code == 1
    expected = {"missing": "not found", "column": "text column", "head": "Unknown head",
                "model": "not found"}[case]
    assert expected in res.output
