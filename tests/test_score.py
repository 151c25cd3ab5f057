"""``spacy-senti score`` with the local engine: formats, order, errors, streaming, resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import spacy
from score_helpers import TEXTS, check_predictions, read_output, write_input
from typer.testing import CliRunner

from spacy_senti.batch import InputError, score_local
from spacy_senti.batch.checkpoint import checkpoint_path
from spacy_senti.batch.io import InputReader, open_reader
from spacy_senti.cli import app

pytest.importorskip("pyarrow", reason="scoring Parquet needs pyarrow (pip install pyarrow)")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def pipe_dir(multitask_pipeline) -> Path:
    return multitask_pipeline


@pytest.fixture(scope="module")
def nlp(pipe_dir):
    return spacy.load(pipe_dir)


def sample_rows(n: int) -> list[dict]:
    return [{"id": i, "text": TEXTS[i % len(TEXTS)], "lang": "en"} for i in range(n)]


@pytest.mark.parametrize("out_suffix", [".jsonl", ".parquet"])
@pytest.mark.parametrize("in_suffix", [".jsonl", ".csv", ".parquet"])
def test_formats_order_and_columns(pipe_dir, nlp, tmp_path, in_suffix, out_suffix):
    rows = sample_rows(17)
    src = write_input(tmp_path / f"in{in_suffix}", rows)
    out = tmp_path / f"out{out_suffix}"
    summary = score_local(pipe_dir, src, out, batch_size=5, nlp=nlp, progress=False)
    assert summary.rows_in == summary.rows_out == 17 and summary.n_errors == 0
    got = read_output(out)
    # CSV values are strings; every other format keeps the input's types
    ids = [int(r["id"]) for r in got]
    assert ids == list(range(17))
    assert [r["text"] for r in got] == [r["text"] for r in rows]
    assert all(r["lang"] == "en" for r in got)
    head_cols = ["sentiment", "sentiment_scores", "emotions", "emotion_labels", "aspects",
                 "aspect_scores", "error"]
    assert list(got[0]) == ["id", "text", "lang", *head_cols]
    for r in got:
        check_predictions(r)
    if in_suffix == ".parquet" and out_suffix == ".parquet":
        import pyarrow.parquet as pq

        schema = pq.read_schema(out)
        assert str(schema.field("id").type) == "int64"
        assert str(schema.field("emotion_labels").type) == "list<element: string>"
        assert not out.with_name(out.name + ".parts").exists()
    # same predictions as scoring the docs directly
    direct = list(nlp.pipe([r["text"] for r in rows]))
    assert [r["sentiment"] for r in got] == [d._.sentiment for d in direct]


def test_n_process_2_matches_one_process(pipe_dir, tmp_path):
    src = write_input(tmp_path / "in.jsonl", sample_rows(24) + [{"id": 24, "text": ""}])
    one = score_local(pipe_dir, src, tmp_path / "one.jsonl", batch_size=4, progress=False)
    two = score_local(pipe_dir, src, tmp_path / "two.jsonl", batch_size=4, n_process=2,
                      progress=False)
    assert one.rows_out == two.rows_out == 25 and two.n_errors == 1
    a, b = read_output(tmp_path / "one.jsonl"), read_output(tmp_path / "two.jsonl")
    assert [r["id"] for r in b] == list(range(25))
    assert [r["sentiment"] for r in a] == [r["sentiment"] for r in b]
    for ra, rb in zip(a, b):
        if ra["sentiment_scores"]:
            assert ra["sentiment_scores"] == pytest.approx(rb["sentiment_scores"], abs=1e-4)


def test_bad_rows_are_written_with_an_error(pipe_dir, nlp, tmp_path):
    src = tmp_path / "in.jsonl"
    lines = [json.dumps({"id": 0, "text": "i loved this film"}),
             json.dumps({"id": 1, "text": ""}),
             json.dumps({"id": 2, "text": 42}),
             json.dumps({"id": 3, "text": None}),
             json.dumps({"id": 4}),
             "{not json",
             json.dumps(["a", "list"]),
             json.dumps({"id": 7, "text": "   "}),
             json.dumps({"id": 8, "text": "the plot was awful"})]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    summary = score_local(pipe_dir, src, out, batch_size=3, nlp=nlp, progress=False)
    got = read_output(out)
    assert summary.rows_in == summary.rows_out == len(got) == 9
    expected = {2: "empty text", 3: "text is not a string (int)", 4: "missing text (null)",
                5: "missing text (null)", 6: "invalid JSON", 7: "line is not a JSON object",
                8: "empty text"}
    assert summary.n_errors == len(expected)
    assert [n for n, _ in summary.error_rows] == list(expected)
    for n, why in summary.error_rows:
        assert why.startswith(expected[n])
        row = got[n - 1]
        assert row["error"] == why and row["sentiment"] is None and row["emotions"] is None
    check_predictions(got[0])
    check_predictions(got[8])
    text = "\n".join(summary.lines())
    assert "row 2: empty text" in text and "row 3: text is not a string (int)" in text


def test_csv_row_with_extra_fields(pipe_dir, nlp, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text('id,text\n0,"good, really"\n1,bad,extra\n2,\n', encoding="utf-8")
    summary = score_local(pipe_dir, src, tmp_path / "o.jsonl", nlp=nlp, progress=False)
    got = read_output(tmp_path / "o.jsonl")
    assert [r["id"] for r in got] == ["0", "1", "2"]
    assert got[0]["text"] == "good, really" and got[0]["error"] is None
    assert got[1]["error"] == "row has 3 fields, the header has 2"
    assert got[2]["error"] == "empty text"
    assert summary.n_errors == 2


def test_missing_column_and_unreadable_files(pipe_dir, nlp, tmp_path):
    src = write_input(tmp_path / "in.csv", [{"id": 1, "review": "nice"}])
    with pytest.raises(InputError, match=r"no column 'text'.*'id', 'review'.*--text-column"):
        score_local(pipe_dir, src, tmp_path / "o.jsonl", nlp=nlp, progress=False)
    with pytest.raises(InputError, match="not found: .*nope.jsonl"):
        score_local(pipe_dir, tmp_path / "nope.jsonl", tmp_path / "o.jsonl", nlp=nlp)
    bad = tmp_path / "broken.parquet"
    bad.write_bytes(b"this is not parquet at all")
    with pytest.raises(InputError, match="Cannot read .*broken.parquet as parquet"):
        score_local(pipe_dir, bad, tmp_path / "o.jsonl", nlp=nlp)
    with pytest.raises(InputError, match="Cannot tell the format of .*data.xlsx"):
        open_reader(tmp_path / "data.xlsx")
    ok = write_input(tmp_path / "ok.jsonl", sample_rows(2))
    with pytest.raises(InputError, match="Cannot tell the format of .*out.txt"):
        score_local(pipe_dir, ok, tmp_path / "out.txt", nlp=nlp)


def test_prediction_columns_never_overwrite_input(pipe_dir, nlp, tmp_path):
    rows = [{"text": "i loved it", "sentiment": "gold-positive"}]
    src = write_input(tmp_path / "in.jsonl", rows)
    with pytest.raises(ValueError, match="--prefix"):
        score_local(pipe_dir, src, tmp_path / "o.jsonl", nlp=nlp, progress=False)
    score_local(pipe_dir, src, tmp_path / "o.jsonl", nlp=nlp, progress=False, prefix="pred_")
    row = read_output(tmp_path / "o.jsonl")[0]
    assert row["sentiment"] == "gold-positive" and row["pred_sentiment"] in ("negative",
                                                                            "positive")


def test_reader_streams_lazily(pipe_dir, nlp, tmp_path, monkeypatch):
    """The first output batch is written after reading only about one batch of input."""
    src = write_input(tmp_path / "in.jsonl", sample_rows(200))
    read = {"n": 0}
    original = InputReader.batches

    def counting_batches(self, batch_size, skip=0):
        for batch in original(self, batch_size, skip):
            read["n"] += len(batch)
            yield batch

    monkeypatch.setattr(InputReader, "batches", counting_batches)
    seen_at_first_write: list[int] = []
    score_local(pipe_dir, src, tmp_path / "o.jsonl", batch_size=10, nlp=nlp, progress=False,
                on_batch=lambda ck: seen_at_first_write.append(read["n"]))
    assert read["n"] == 200
    assert seen_at_first_write[0] <= 30, seen_at_first_write[:3]
    # and the readers themselves yield batch by batch
    reader = open_reader(write_input(tmp_path / "in.parquet", sample_rows(50)))
    batches = list(reader.batches(8, skip=10))  # row groups of 7: the first ones are skipped
    assert [r["id"] for b in batches for r in b.rows] == list(range(10, 50))
    assert all(0 < len(b) <= 8 for b in batches)
    assert list(reader.batches(8, skip=50)) == []


@pytest.mark.parametrize("out_suffix", [".jsonl", ".parquet"])
def test_interrupted_run_resumes_without_gaps_or_duplicates(pipe_dir, nlp, tmp_path,
                                                            out_suffix):
    src = write_input(tmp_path / "in.jsonl", sample_rows(40))
    out = tmp_path / f"out{out_suffix}"

    class Interrupt(Exception):
        pass

    def stop_after_three(ckpt):
        if ckpt.batches_done == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        score_local(pipe_dir, src, out, batch_size=6, nlp=nlp, progress=False,
                    on_batch=stop_after_three)
    if out_suffix == ".jsonl":  # a half-written batch after the checkpoint
        with open(out, "a", encoding="utf-8") as f:
            f.write('{"id": 18, "text": "i loved')
    else:
        (out.with_name(out.name + ".parts") / "part-000003.parquet").write_bytes(b"partial")
    summary = score_local(pipe_dir, src, out, batch_size=6, nlp=nlp, progress=False)
    assert summary.resumed_from == 18 and summary.rows_out == 40
    assert [r["id"] for r in read_output(out)] == list(range(40))
    again = score_local(pipe_dir, src, out, batch_size=6, nlp=nlp, progress=False)
    assert again.already_complete and "already complete" in again.lines()[0]
    # a changed input refuses to resume instead of mixing outputs
    time.sleep(0.01)
    write_input(src, sample_rows(41))
    ckpt = json.loads(checkpoint_path(out).read_text())
    ckpt["complete"] = False
    checkpoint_path(out).write_text(json.dumps(ckpt))
    with pytest.raises(InputError, match="input changed.*--no-resume"):
        score_local(pipe_dir, src, out, nlp=nlp, progress=False)
    fresh = score_local(pipe_dir, src, out, nlp=nlp, progress=False, resume=False)
    assert fresh.rows_out == 41 and [r["id"] for r in read_output(out)] == list(range(41))


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "spacy_senti.cli", "score", *args]


def test_kill_dash_9_and_resume(pipe_dir, tmp_path):
    """A CLI run killed with SIGKILL mid-way, then rerun: every row exactly once, in order.

    The checkpoint is read at the moment of the kill; the process may still have written a
    part of the next batch to the output, which the rerun must truncate."""
    n = 1500
    rows = [{"id": i, "text": ["good", "bad film", "so sad"][i % 3]} for i in range(n)]
    src = write_input(tmp_path / "big.jsonl", rows)
    out = tmp_path / "big_out.jsonl"
    ckpt_file = checkpoint_path(out)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    args = _cli(str(pipe_dir), str(src), str(out), "--batch-size", "30", "--threads", "1",
                "--no-progress")
    proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    done_at_kill = 0
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if ckpt_file.exists():
            done_at_kill = json.loads(ckpt_file.read_text())["rows_done"]
            if done_at_kill >= 150:
                os.kill(proc.pid, signal.SIGKILL)
                break
        time.sleep(0.05)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read().decode()[-2000:]
    assert 150 <= done_at_kill < n
    # the rerun goes through the same Typer app, in this process (saves a 10 s start-up)
    result = CliRunner().invoke(app, args[3:])
    assert result.exit_code == 0, result.output[-2000:]
    assert f"resumed after row {done_at_kill:,}" in result.output
    got = read_output(out)
    assert [r["id"] for r in got] == list(range(n))
    assert all(r["error"] is None and r["sentiment"] for r in got)


def test_cli_runner(pipe_dir, tmp_path):
    src = write_input(tmp_path / "in.tsv", [{"sentence": t, "label": "1"} for t in TEXTS])
    out = tmp_path / "out.parquet"
    runner = CliRunner()
    result = runner.invoke(app, ["score", str(pipe_dir), str(src), str(out),
                                 "--text-column", "sentence", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "rows in: 6  rows out: 6  errors: 0" in result.output
    got = read_output(out)
    assert [r["sentence"] for r in got] == TEXTS and all(r["label"] == "1" for r in got)
    result = runner.invoke(app, ["score", str(pipe_dir), str(src), str(tmp_path / "x.jsonl")])
    assert result.exit_code == 1
    assert "no column 'text'" in result.output and "'sentence', 'label'" in result.output
    result = runner.invoke(app, ["score", "--help"])
    assert "--engine" in result.output and "--resume" in result.output
