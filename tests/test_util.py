"""The one reader of tabular text files (spacy_senti.util): formats, encodings, bad lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from spacy_senti.errors import InputError
from spacy_senti.util import Row, detect_format, pick_column, read_columns, read_rows


def rows(path: Path, **options) -> list[Row]:
    return list(read_rows(path, **options))


def write(path: Path, data: str | bytes) -> Path:
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return path


# --- formats ------------------------------------------------------------------------------
def test_jsonl_rows_keep_every_field_and_their_line(tmp_path):
    path = write(tmp_path / "in.jsonl", '{"id": 1, "text": "good"}\n\n  \n'
                                        '{"id": 2, "text": "bad", "extra": [1]}\n')
    got = rows(path)
    assert [(r.line, r.values, r.error) for r in got] == [
        (1, {"id": 1, "text": "good"}, None),
        (4, {"id": 2, "text": "bad", "extra": [1]}, None),
    ]
    assert read_columns(path) == ["id", "text", "extra"]
    blank = rows(path, keep_blank=True)
    assert [(r.line, r.values) for r in blank][1:3] == [(2, {}), (3, {})]


def test_csv_quoted_fields_span_lines_and_keep_their_first_line(tmp_path):
    path = write(tmp_path / "in.csv", 'id,text\r\n1,"a, b"\r\n2,"two\nlines"\r\n\r\n3,c\r\n')
    got = rows(path)
    assert [(r.line, r.values) for r in got] == [
        (2, {"id": "1", "text": "a, b"}), (3, {"id": "2", "text": "two\nlines"}),
        (6, {"id": "3", "text": "c"})]
    assert read_columns(path) == ["id", "text"]


def test_tsv_auto_quoting_keeps_bare_quotes(tmp_path):
    path = write(tmp_path / "in.tsv", 'sentence\tlabel\n"quoted" start\t1\nit "is"\t0\n')
    assert [r.values["sentence"] for r in rows(path)] == ['"quoted" start', 'it "is"']
    minimal = rows(path, quoting="minimal")
    assert minimal[0].values["sentence"] == "quoted start"
    with pytest.raises(InputError, match="--quoting must be auto, minimal or none"):
        rows(path, quoting="all")


def test_csv_without_header_names_columns_by_index(tmp_path):
    path = write(tmp_path / "in.csv", "good,1\nbad,0,extra\n")
    assert read_columns(path, header=False) == ["0", "1"]
    got = rows(path, header=False)
    assert got[0].values == {"0": "good", "1": "1"}
    assert got[1].values == {"0": "bad", "1": "0", "2": "extra"} and got[1].error is None


def test_txt_one_text_per_line_split_on_lf_only(tmp_path):
    path = write(tmp_path / "in.txt", "first\u2028still first\r\nsecond\n\nthird")
    got = rows(path)
    assert [(r.line, r.values["text"]) for r in got] == [
        (1, "first\u2028still first"), (2, "second"), (4, "third")]
    assert read_columns(path) == ["text"]


def test_parquet_rows_and_skip_by_row_groups(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist([{"id": i, "text": f"t{i}"} for i in range(20)]), path,
                   row_group_size=7)
    assert read_columns(path) == ["id", "text"]
    assert [r.values["id"] for r in rows(path)] == list(range(20))
    skipped = rows(path, skip=9)  # the first row group is not read
    assert [(r.line, r.values["id"]) for r in skipped][:2] == [(10, 9), (11, 10)]
    assert rows(path, skip=20) == []
    broken = write(tmp_path / "broken.parquet", b"not parquet")
    with pytest.raises(InputError, match="Cannot read .*broken.parquet as parquet"):
        rows(broken)


def test_skip_counts_rows_not_lines(tmp_path):
    path = write(tmp_path / "in.jsonl", '{"i": 0}\n\n{not json\n{"i": 2}\n{"i": 3}\n')
    assert [r.line for r in rows(path, skip=2)] == [4, 5]
    csv_path = write(tmp_path / "in.csv", "i\n0\n\n1\n2\n")
    assert [r.values["i"] for r in rows(csv_path, skip=1)] == ["1", "2"]


# --- encodings ----------------------------------------------------------------------------
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_utf8_byte_order_mark_is_dropped(tmp_path, suffix):
    body = {".csv": "text\ncafé\n", ".jsonl": '{"text": "café"}\n', ".txt": "café\n"}[suffix]
    path = write(tmp_path / f"in{suffix}", "\ufeff" + body)
    assert read_columns(path) == ["text"]
    assert [r.values["text"] for r in rows(path)] == ["café"]


def test_explicit_encoding(tmp_path):
    path = write(tmp_path / "in.csv", "text,label\nSeppälä,1\n".encode("latin-1"))
    assert rows(path, encoding="latin-1")[0].values == {"text": "Seppälä", "label": "1"}
    assert rows(path, encoding="cp1252")[0].error is None
    with pytest.raises(InputError, match="Unknown encoding 'klingon'"):
        rows(path, encoding="klingon")


@pytest.mark.parametrize("suffix", [".jsonl", ".txt", ".csv"])
def test_invalid_bytes_make_an_error_row_for_that_line_only(tmp_path, suffix):
    good = {".jsonl": '{"text": "%s"}', ".txt": "%s", ".csv": "%s"}[suffix]
    head = b"text\n" if suffix == ".csv" else b""
    lines = [(good % t).encode() for t in ("one", "two caf\xe9", "three")]
    lines[1] = lines[1].replace("é".encode(), b"\xe9")  # latin-1 in a UTF-8 file
    path = write(tmp_path / f"in{suffix}", head + b"\n".join(lines) + b"\n")
    got = rows(path)
    assert len(got) == 3 and got[0].error is None and got[2].error is None
    bad = got[1]
    assert bad.bad_bytes and bad.line == (3 if suffix == ".csv" else 2)
    assert bad.error.startswith("not valid utf-8 (byte 0xe9 at column ")
    assert bad.values["text"].endswith("caf\ufffd")  # the rest of the row is kept


def test_invalid_bytes_in_a_header_name_the_line(tmp_path):
    path = write(tmp_path / "in.csv", b"t\xe9xt\nhello\n")
    with pytest.raises(InputError, match=r"in.csv: line 1 \(the header\) is not valid utf-8"):
        read_columns(path)


# --- malformed rows -----------------------------------------------------------------------
def test_malformed_jsonl_lines_are_error_rows_with_their_line(tmp_path):
    lines = ['{"text": "ok"}', "{not json", '["a", "list"]', "[" * 100_000,
             '{"text": "\\ud800 alone"}', '{"text": "\\ud83d\\ude00 pair"}', '{"text": "end"}']
    path = write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    got = {r.line: r for r in rows(path)}
    assert got[1].error is None and got[7].values == {"text": "end"}
    assert got[2].error.startswith("invalid JSON: Expecting property name")
    assert got[3].error == "line is not a JSON object (list)"
    assert got[4].error == "invalid JSON: nested too deeply"
    assert "lone surrogate" in got[5].error and got[5].values == {}
    assert got[6].error is None and got[6].values["text"] == "\U0001f600 pair"
    assert all(not r.bad_bytes for r in got.values())


def test_csv_rows_with_another_number_of_fields(tmp_path):
    path = write(tmp_path / "in.csv", "id,text\n0,ok\n1,bad,extra\n2\n")
    got = rows(path)
    assert got[0].error is None
    assert got[1].error == "row has 3 fields, the header has 2"
    assert got[1].values == {"id": "1", "text": "bad"}  # what could be read is kept
    assert got[2].error == "row has 1 fields, the header has 2" and got[2].line == 4


def test_csv_field_larger_than_the_default_limit(tmp_path):
    text = "x" * 200_000  # the csv module's default limit is 131072 characters
    path = write(tmp_path / "in.csv", f'id,text\n1,"{text}"\n')
    assert rows(path)[0].values["text"] == text


# --- files, formats and columns -----------------------------------------------------------
def test_missing_files_directories_and_unknown_formats(tmp_path):
    with pytest.raises(InputError, match="not found: .*nope.jsonl"):
        rows(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="is a directory"):
        rows(tmp_path, fmt="jsonl")
    with pytest.raises(InputError, match=r"Cannot tell the format of .*data.xlsx.*\.jsonl"):
        detect_format(tmp_path / "data.xlsx")
    assert detect_format("x.NDJSON") == "jsonl" and detect_format("x.tsv") == "tsv"
    with pytest.raises(InputError, match="is empty"):
        read_columns(write(tmp_path / "empty.csv", ""))


def test_pick_column():
    columns = ["id", "Tweet", "Body"]
    assert pick_column(columns, None, "f.csv") == "Tweet"  # first candidate, any case
    assert pick_column(columns, "Body", "f.csv") == "Body"
    assert pick_column(columns, "2", "f.csv") == "Body"  # a 0-based index
    with pytest.raises(InputError) as err:
        pick_column(columns, "text", "f.csv", option="--text-col")
    message = str(err.value)
    assert "f.csv: no column 'text'" in message and "--text-col 'text' is not a column" in message
    assert "'id', 'Tweet', 'Body'" in message and "index below 3" in message
    with pytest.raises(InputError, match=r"no label column found \(looked for label\).*'id'"):
        pick_column(["id"], None, "f.csv", candidates=("label",), what="label")


def test_json_dump_round_trip_of_rows(tmp_path):
    """Rows are plain dicts: what a JSONL line held comes back unchanged."""
    records = [{"id": i, "text": f"t{i}", "meta": {"a": [i]}} for i in range(3)]
    path = write(tmp_path / "in.ndjson", "".join(json.dumps(r) + "\n" for r in records))
    assert [r.values for r in rows(path)] == records
