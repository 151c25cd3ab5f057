"""``spacy-senti score --engine ray`` on a local Ray runtime (2 CPUs), 300 SST-2 sentences."""

from __future__ import annotations

import csv

import pytest
from helpers import REPO, SHARED_DATA
from score_helpers import check_predictions, read_output

pytest.importorskip("pyarrow", reason="scoring Parquet needs pyarrow")
pytest.importorskip("ray.data", reason="Ray Data is not installed: pip install 'spacy-senti[ray]'")

from spacy_senti.batch import InputError  # noqa: E402
from spacy_senti.batch.ray_engine import score_ray  # noqa: E402

N_ROWS = 300


def sst2_sentences(n: int) -> list[dict]:
    for path in (SHARED_DATA / "sst2" / "dev.tsv", REPO / "assets" / "sst2" / "test.tsv"):
        if path.exists():
            with open(path, encoding="utf-8", newline="") as f:
                rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
            return [{"id": i, "sentence": r["sentence"].strip(), "label": r["label"]}
                    for i, r in enumerate(rows[:n])]
    pytest.skip("no SST-2 file found (shared data or assets/sst2)")


def test_ray_local_runtime(multitask_pipeline, tmp_path):
    pipe = multitask_pipeline
    rows = sst2_sentences(N_ROWS)
    rows[5]["sentence"] = ""  # an error row goes through Ray too
    src = tmp_path / "sst2.tsv"
    with open(src, "w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["id", "sentence", "label"], delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "scored"  # a directory of Parquet part files
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "old.parquet").write_bytes(b"x")
    with pytest.raises(InputError, match="already exists"):
        score_ray(pipe, src, tmp_path / "taken", text_column="sentence", num_cpus=2)
    with pytest.raises(InputError, match="no column 'text'"):
        score_ray(pipe, src, out, num_cpus=2)

    summary = score_ray(pipe, src, out, text_column="sentence", batch_size=64,
                        concurrency=1, num_cpus=2)
    assert summary.rows_in == summary.rows_out == N_ROWS
    assert summary.n_errors == 1 and summary.files >= 1
    assert out.is_dir() and all(p.suffix == ".parquet" for p in out.iterdir())
    got = read_output(out)
    assert [r["id"] for r in got] == list(range(N_ROWS))  # preserve_order
    assert [r["sentence"] for r in got] == [r["sentence"] for r in rows]
    assert got[5]["error"] == "empty text" and got[5]["sentiment"] is None
    for r in got[:5] + got[6:]:
        check_predictions(r)
    assert "(ok)" in summary.lines()[0]


def test_actor_cpus_leave_room_for_reading():
    from spacy_senti.batch.ray_engine import actor_cpus

    assert actor_cpus(2, 2) == 0.5  # 2 actors + the read/write tasks on a 2-CPU machine
    assert actor_cpus(2, 1) == 1.0
    assert actor_cpus(16, 4) == 1.0
    assert actor_cpus(1, 4) == 0.1
