"""bench/_common.py: the header every bench table starts with (no timing is asserted)."""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(REPO / "bench"))
    try:
        import _common
    finally:
        sys.path.remove(str(REPO / "bench"))
    return _common


def test_header_has_command_machine_flags_load_and_versions(common):
    lines = common.header("python bench/bench_x.py --n 5", seeds=[0, 1],
                          packages=("spacy", "no-such-package-xyz"), extra=["Threads: 2"])
    text = "\n".join(lines)
    assert lines[0] == "- Command: `python bench/bench_x.py --n 5`"
    assert all(line.startswith("- ") for line in lines)
    for key in ("- Date: ", "- Machine: ", "- CPU flags (int8 / transformer speed): ",
                "- Load average (1/5/15 min, at start): ", "- Versions: ", "- Seeds: 0, 1",
                "- Threads: 2"):
        assert key in text, key
    flags = next(line for line in lines if line.startswith("- CPU flags"))
    if common.cpu_flags() is not None:  # x86 Linux: every flag is named, present or absent
        for flag in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx"):
            assert flag in flags, flag
    assert f"spacy {metadata.version('spacy')}" in text
    assert "no-such-package-xyz (not installed)" in text
    assert f"{common.nproc()} CPUs (`nproc`" in text


def test_cpu_flags_from_cpuinfo(common, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000\n"
                    "flags\t\t: fpu sse2 avx2 avx512f amx_tile amx_int8\n\n"
                    "processor\t: 1\nmodel name\t: Test CPU 9000\nflags\t\t: fpu\n")
    assert common.cpu_model(info) == "Test CPU 9000"
    assert common.cpu_flags(info) == {"avx2": True, "avx512f": True, "avx512_vnni": False,
                                      "avx_vnni": False, "amx_int8": True, "amx_tile": True}
    assert common.flags_line(info) == (
        "present: avx2, avx512f, amx_int8, amx_tile; absent: avx512_vnni, avx_vnni")
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2\n")
    assert common.flags_line(info) == (
        "present: none; absent: avx2, avx512f, avx512_vnni, avx_vnni, amx_*")
    assert common.flags_line(tmp_path / "missing").startswith("unknown")


def test_paths_in_headers_are_repo_relative(common):
    assert common.command_line([str(REPO / "bench" / "bench_x.py"), "--out", "a b"]) == (
        "python bench/bench_x.py --out 'a b'")
    assert common.shown_path(REPO / "training" / "x" / "model-best") == "training/x/model-best"
    assert common.shown_path(REPO.parent / "shared" / "data") == "../shared/data"


def test_bench_score_reads_ray_parts_without_decoding_input_text(tmp_path):
    """A tweet starting with "{" in a Ray output part stays text (it crashed the bench);
    JSON-string prediction columns are decoded."""
    pq = pytest.importorskip("pyarrow.parquet")
    import pyarrow as pa

    sys.path.insert(0, str(REPO / "bench"))
    try:
        import bench_score
    finally:
        sys.path.remove(str(REPO / "bench"))
    out = tmp_path / "ray_out"
    out.mkdir()
    table = pa.table({"id": [0, 1], "text": ["{not json at all", "fine"],
                      "cats": ['{"sentiment/positive": 0.9}', '{"sentiment/positive": 0.1}']})
    pq.write_table(table, out / "part-0.parquet")
    rows = bench_score.read_rows(out)
    assert rows[0]["text"] == "{not json at all"
    assert rows[1]["cats"] == {"sentiment/positive": 0.1}
