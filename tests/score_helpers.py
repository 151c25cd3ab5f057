"""Shared builders for the scoring tests: a tiny multi-head pipeline and input files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import MULTITASK_TEXTCAT_ONLY, load_config, make_examples, nlp_from_config

SENTIMENTS = ("negative", "positive")
EMOTIONS = ("anger", "joy")
GROUPS = ("food", "service")
POLARITIES = ("absent", "negative", "positive")
TEXTS = ["i loved this film", "the plot was awful", "great food but awful service",
         "so sad and angry", "what a wonderful fun day", "the waiter was very poor"]


def _cats(sent: str, emotions: list[str], aspects: dict[str, str]) -> dict[str, float]:
    cats = {f"sentiment/{s}": float(s == sent) for s in SENTIMENTS}
    cats.update({f"emotion/{e}": float(e in emotions) for e in EMOTIONS})
    for g in GROUPS:
        cats.update({f"aspect/{g}/{p}": float(aspects.get(g, "absent") == p)
                     for p in POLARITIES})
    return cats


def build_pipeline(tiny_bert: Path, out: Path) -> Path:
    """A tiny initialised (untrained) pipeline with exclusive, multilabel and grouped heads."""
    # senti_textcat only: aspect terms have their own fixture (conftest aspects_pipeline)
    nlp = nlp_from_config(load_config("multitask", tiny_bert, **MULTITASK_TEXTCAT_ONLY))
    examples = make_examples(nlp, [
        ("i loved the food", _cats("positive", ["joy"], {"food": "positive"})),
        ("awful service", _cats("negative", ["anger"], {"service": "negative"})),
    ])
    nlp.initialize(get_examples=lambda: examples)
    nlp.to_disk(out)
    return out


def write_input(path: Path, rows: list[dict]) -> Path:
    """Write rows as JSONL, CSV/TSV or Parquet according to the suffix."""
    suffix = path.suffix
    if suffix == ".jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif suffix in (".csv", ".tsv"):
        with open(path, "w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]),
                                    delimiter="\t" if suffix == ".tsv" else ",")
            writer.writeheader()
            writer.writerows(rows)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=7)
    return path


def read_output(path: Path) -> list[dict]:
    """Rows of a JSONL file, a Parquet file or a directory of part files (JSON lines/Parquet),
    with the JSON-string columns of Parquet decoded."""
    import pyarrow.parquet as pq

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file())
        rows = [r for p in files for r in read_output(p)]
        return rows
    if path.suffix == ".parquet":
        rows = pq.read_table(path).to_pylist()
        for r in rows:
            for key in ("sentiment_scores", "emotions", "aspects", "aspect_scores",
                        "aspect_terms"):
                if isinstance(r.get(key), str):
                    r[key] = json.loads(r[key])
        return rows
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def check_predictions(row: dict) -> None:
    """The head columns of a scored row hold valid labels and probabilities."""
    assert row["error"] is None, row
    assert row["sentiment"] in SENTIMENTS
    assert set(row["sentiment_scores"]) == set(SENTIMENTS)
    assert abs(sum(row["sentiment_scores"].values()) - 1.0) < 1e-4
    assert row["sentiment"] == max(row["sentiment_scores"], key=row["sentiment_scores"].get)
    assert set(row["emotions"]) == set(EMOTIONS)
    assert all(0.0 <= p <= 1.0 for p in row["emotions"].values())
    assert set(row["emotion_labels"]) == {e for e, p in row["emotions"].items() if p >= 0.5}
    assert set(row["aspect_scores"]) == set(GROUPS)
    for g, scores in row["aspect_scores"].items():
        assert set(scores) == set(POLARITIES)
        best = max(scores, key=scores.get)
        assert row["aspects"].get(g) == (None if best == "absent" else best)
