"""``spacy-senti score`` never loses or changes a user's file, and one bad row never stops a
run (issue 13, rows 1-6)."""

from __future__ import annotations

import json
import os

import pytest
import spacy
from score_helpers import read_output, write_input
from typer.testing import CliRunner

from spacy_senti.batch import InputError, score_local
from spacy_senti.cli import app


@pytest.fixture(scope="module")
def pipe_dir(multitask_pipeline):
    return multitask_pipeline


@pytest.fixture(scope="module")
def nlp(pipe_dir):
    return spacy.load(pipe_dir)


def rows(n: int) -> list[dict]:
    return [{"id": i, "text": "i loved this film" if i % 2 else "awful"} for i in range(n)]


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_output_that_is_the_input_is_refused_before_anything_is_opened(
        pipe_dir, nlp, tmp_path, link):
    src = write_input(tmp_path / "in.jsonl", rows(3))
    before = src.read_bytes()
    out = src
    if link == "symlink":
        out = tmp_path / "link.jsonl"
        out.symlink_to(src)
    elif link == "hardlink":
        out = tmp_path / "hard.jsonl"
        os.link(src, out)
    with pytest.raises(InputError, match="is the INPUT file"):
        score_local(pipe_dir, src, out, nlp=nlp, progress=False)
    assert src.read_bytes() == before
    assert not (tmp_path / f"{out.name}.checkpoint.json").exists()


def test_cli_same_input_and_output_keeps_the_file(pipe_dir, tmp_path):
    src = write_input(tmp_path / "x.jsonl", rows(3))
    before = src.read_bytes()
    result = CliRunner().invoke(app, ["score", str(pipe_dir), str(src), str(src),
                                      "--no-progress"])
    assert result.exit_code == 1 and result.output.startswith("Error:")
    assert src.read_bytes() == before


def test_existing_output_without_checkpoint_needs_overwrite(pipe_dir, nlp, tmp_path):
    src = write_input(tmp_path / "in.jsonl", rows(4))
    out = tmp_path / "mine.jsonl"
    out.write_text("precious\n", encoding="utf-8")
    with pytest.raises(InputError, match="--overwrite"):
        score_local(pipe_dir, src, out, nlp=nlp, progress=False)
    assert out.read_text(encoding="utf-8") == "precious\n"
    score_local(pipe_dir, src, out, nlp=nlp, progress=False, overwrite=True)
    assert [r["id"] for r in read_output(out)] == [0, 1, 2, 3]
    # a finished run of ours is recognised by its checkpoint: rerunning says it is complete
    again = score_local(pipe_dir, src, out, nlp=nlp, progress=False)
    assert again.already_complete


def test_bad_lines_become_error_rows_and_the_rest_is_scored(pipe_dir, nlp, tmp_path):
    src = tmp_path / "in.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    lines = [json.dumps({"id": 0, "text": "i loved this film"}).encode(),
             b'{"id": 1, "text": "\\ud800"}',                 # a lone surrogate (valid JSON)
             b'{"id": 2, "text": "bad \xff\xfe bytes"}',      # invalid UTF-8 on one line
             b'{"id": 3, "text": ' + deep.encode() + b"}",    # nested far too deeply
             json.dumps({"id": 4, "text": "awful"}).encode()]
    src.write_bytes(b"\n".join(lines) + b"\n")
    summary = score_local(pipe_dir, src, tmp_path / "o.jsonl", nlp=nlp, progress=False)
    got = read_output(tmp_path / "o.jsonl")
    assert len(got) == summary.rows_out == 5
    assert [n for n, _ in summary.error_rows] == [2, 3, 4]
    assert "surrogate" in got[1]["error"]
    assert "utf-8" in got[2]["error"].lower()
    assert "nested too deeply" in got[3]["error"]
    assert got[0]["error"] is None and got[0]["sentiment"] in ("negative", "positive")
    assert got[4]["error"] is None and got[4]["sentiment"] in ("negative", "positive")


def test_a_colliding_key_far_down_the_file_is_found(pipe_dir, nlp, tmp_path):
    data = rows(150)
    data[120]["sentiment"] = "gold label"
    src = write_input(tmp_path / "in.jsonl", data)
    out = tmp_path / "o.jsonl"
    with pytest.raises(InputError, match=r"'sentiment'.*--prefix"):
        score_local(pipe_dir, src, out, nlp=nlp, progress=False)
    assert not out.exists()
    score_local(pipe_dir, src, out, nlp=nlp, progress=False, prefix="pred_")
    got = read_output(out)
    assert got[120]["sentiment"] == "gold label" and "pred_sentiment" in got[120]
