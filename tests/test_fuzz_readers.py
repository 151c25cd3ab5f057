"""Fuzzing the file readers behind convert, score, drift and select (issue 13).

Hypothesis writes files of mixed good rows and junk (random bytes, invalid UTF-8, NULs,
lone surrogates, deep nesting, huge fields, stray quotes). Whatever the file holds:
- no traceback: a run ends normally or with a ``SentiError`` that says what is wrong;
- no lost row: ``score`` writes one output row per input row, good rows in order;
- the input file is never changed.
"""

from __future__ import annotations

import json

import pytest
import spacy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spacy_senti.batch import score_local
from spacy_senti.data.convert import ConvertOptions, convert
from spacy_senti.errors import SentiError
from spacy_senti.monitor.inputs import read_texts

FUZZ = settings(max_examples=40, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

# Bytes of a junk line: anything but line breaks; it starts with '#' so it is never blank.
junk_bytes = st.binary(min_size=0, max_size=60).map(
    lambda b: b"#" + b.replace(b"\n", b"").replace(b"\r", b""))
nasty_text = st.one_of(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r"),
            max_size=40),
    st.just("\x00 nul"), st.just("(" * 3000), st.just("x" * 20_000), st.just("emoji 😀👍"),
)
deep = st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n)


@st.composite
def jsonl_file(draw) -> tuple[bytes, list[int]]:
    """JSONL bytes and the ids of the good rows, in order."""
    lines, ids = [], []
    for i in range(draw(st.integers(min_value=1, max_value=8))):
        choice = draw(st.integers(min_value=0, max_value=5))
        if choice <= 1:
            text = draw(nasty_text)
            lines.append(json.dumps({"id": i, "text": text}).encode())
            if text.strip():  # a blank text is an error row ("empty text")
                ids.append(i)
        elif choice == 2:
            lines.append(b'{"id": %d, "text": "\\ud800 lone"}' % i)
        elif choice == 3:
            lines.append(b'{"id": %d, "text": %s}' % (i, draw(deep).encode()))
        elif choice == 4:
            lines.append(b'{"id": %d, "text": "bad \xff\xfe bytes"}' % i)
        else:
            lines.append(draw(junk_bytes))
    return b"\n".join(lines) + b"\n", ids


@st.composite
def csv_file(draw) -> bytes:
    rows = [b"id,text,label"]
    for i in range(draw(st.integers(min_value=0, max_value=8))):
        text = draw(nasty_text).replace('"', '""').encode("utf-8", "surrogatepass")
        label = draw(st.sampled_from([b"positive", b"negative", b"", b"weird"]))
        rows.append(draw(st.sampled_from([
            b'%d,"%s",%s' % (i, text, label),
            draw(junk_bytes),
            b'%d,"unclosed quote,%s' % (i, label),
            b"%d,\xff\xfe,%s" % (i, label),
        ])))
    return b"\n".join(rows) + b"\n"


@pytest.fixture(scope="module")
def nlp(multitask_pipeline):
    return spacy.load(multitask_pipeline)


@FUZZ
@given(data=jsonl_file())
def test_score_keeps_every_row_and_the_input(nlp, multitask_pipeline, tmp_path_factory, data):
    content, ids = data
    folder = tmp_path_factory.mktemp("fuzz_score")
    src, out = folder / "in.jsonl", folder / "out.jsonl"
    src.write_bytes(content)
    try:
        summary = score_local(multitask_pipeline, src, out, nlp=nlp, progress=False,
                              batch_size=3)
    except SentiError as err:  # only a file without any readable text row may be refused
        assert "no column 'text'" in str(err) and not ids
        assert src.read_bytes() == content and not out.exists()
        return
    assert src.read_bytes() == content
    lines = [json.loads(line) for line in out.read_bytes().split(b"\n") if line]
    n_rows = sum(1 for line in content.split(b"\n") if line.strip())
    assert summary.rows_in == summary.rows_out == len(lines) == n_rows
    good = [row["id"] for row in lines if row.get("error") is None]
    assert good == ids
    assert all(row["sentiment"] is None for row in lines if row.get("error") is not None)


@FUZZ
@given(content=st.one_of(csv_file(), st.binary(max_size=300)))
def test_convert_never_crashes_and_counts_every_row(tmp_path_factory, content):
    src = tmp_path_factory.mktemp("fuzz_convert") / "data.csv"
    src.write_bytes(content)
    opts = ConvertOptions(format="csv", text_col="text", label_col="label")
    try:
        result = convert(src, opts, progress=False)
    except SentiError as err:
        assert str(err)
    else:
        assert result.n_in == result.n_out + result.n_skipped
    assert src.read_bytes() == content


@FUZZ
@given(content=st.one_of(jsonl_file().map(lambda d: d[0]), csv_file(),
                         st.binary(max_size=300)),
       suffix=st.sampled_from([".jsonl", ".csv", ".tsv", ".txt"]))
def test_drift_and_select_reader_never_crashes(tmp_path_factory, content, suffix):
    src = tmp_path_factory.mktemp("fuzz_texts") / f"data{suffix}"
    src.write_bytes(content)
    try:
        texts = read_texts(src)
    except SentiError as err:
        assert str(err)
    else:
        assert texts and all(isinstance(t, str) and t.strip() for t in texts)
    assert src.read_bytes() == content

