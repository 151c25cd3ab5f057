"""Write the bundled real-data samples under ``assets/`` (re-runnable: fixed seed).

    .venv/bin/python scripts/make_samples.py [--data ../shared/data] [--out assets]

Samples keep each source's own file format (raw lines / XML blocks copied verbatim), so the
same converters read them as the full data. Train samples exclude texts that also occur
(after normalisation) in the sampled dev/test files or elsewhere in the train sample, so the
samples have no cross-split leakage. Also writes ``assets/LICENSES.md``.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
from collections import Counter
from pathlib import Path

from spacy_senti.data.convert import group_name
from spacy_senti.data.readers import ReaderOptions, Record, open_source, read_label_names
from spacy_senti.data.split import normalize_text, stratified_sample, stratified_split

ROOT = Path(__file__).resolve().parents[1]
SEED = 13
Counts = dict[str, tuple[int, Counter]]  # split -> (rows, label occurrences)
SIZES = {
    "sst2": {"train": 5000, "dev": 500},
    "goemotions": {"train": 5000, "dev": 500, "test": 500},
    "semeval14": {"train": 2500, "dev": 300, "test": 500},
}


def _records(path: Path, fmt: str) -> list[Record]:
    return list(open_source(path, ReaderOptions(format=fmt, grouped=fmt == "semeval14")).records)


def _unique(records: list[Record], banned: set[str]) -> list[Record]:
    """Records whose normalised text is new (not banned, not seen before), in file order."""
    seen = set(banned)
    kept = []
    for rec in records:
        norm = normalize_text(rec.text)
        if norm and norm not in seen:
            seen.add(norm)
            kept.append(rec)
    return kept


def _norms(records: list[Record]) -> set[str]:
    return {normalize_text(r.text) for r in records}


def _pick(records: list[Record], n: int, key) -> list[Record]:
    idx = stratified_sample([key(r) for r in records], n, seed=SEED)
    return [records[i] for i in idx]


def _raw_lines(path: Path, records: list[Record]) -> list[str]:
    lines = path.read_text(encoding="utf-8").split("\n")
    return [lines[r.line - 1] for r in records]


def _write(path: Path, lines: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _single(rec: Record) -> str:
    return (rec.labels or [""])[0]


def _multi(rec: Record) -> tuple[str, ...]:
    return tuple(rec.labels or ())


def _aspects(rec: Record) -> tuple[str, ...]:
    return tuple(sorted({f"{group_name(g)}/{p}" for g, p in rec.aspects or ()}))


def make_sst2(data: Path, out: Path) -> Counts:
    """5,000 train + 500 dev from SST-2 train (disjoint); official dev as test."""
    src = data / "sst2"
    test = _records(src / "dev.tsv", "tsv")
    pool = _unique(_records(src / "train.tsv", "tsv"), _norms(test))
    sizes = SIZES["sst2"]
    chosen = _pick(pool, sizes["train"] + sizes["dev"], _single)
    parts = stratified_split([_single(r) for r in chosen],
                             [sizes["train"] / len(chosen), sizes["dev"] / len(chosen)], SEED)
    counts = {}
    for name, idx in zip(("train", "dev"), parts, strict=True):
        rows = [chosen[i] for i in idx]
        _write(out / "sst2" / f"{name}.tsv",
               ["sentence\tlabel", *_raw_lines(src / "train.tsv", rows)])
        counts[name] = (len(rows), Counter(_single(r) for r in rows))
    shutil.copyfile(src / "dev.tsv", out / "sst2" / "test.tsv")
    counts["test"] = (len(test), Counter(_single(r) for r in test))
    return counts


def make_goemotions(data: Path, out: Path) -> Counts:
    """5,000 / 500 / 500 rows from the official GoEmotions splits, without leakage."""
    src = data / "goemotions"
    sizes = SIZES["goemotions"]
    test = _pick(_unique(_records(src / "test.tsv", "goemotions"), set()), sizes["test"], _multi)
    dev = _pick(_unique(_records(src / "dev.tsv", "goemotions"), _norms(test)), sizes["dev"],
                _multi)
    train_pool = _unique(_records(src / "train.tsv", "goemotions"), _norms(test) | _norms(dev))
    train = _pick(train_pool, sizes["train"], _multi)
    names = read_label_names(src / "emotions.txt")
    counts = {}
    for name, rows in (("train", train), ("dev", dev), ("test", test)):
        _write(out / "goemotions" / f"{name}.tsv", _raw_lines(src / f"{name}.tsv", rows))
        counts[name] = (len(rows), Counter(names[int(i)] for r in rows for i in _multi(r)))
    shutil.copyfile(src / "emotions.txt", out / "goemotions" / "emotions.txt")
    return counts


_SENTENCE_RE = re.compile(r"^[ \t]*<sentence\b.*?</sentence>", re.DOTALL | re.MULTILINE)


def _xml_blocks(path: Path) -> list[str]:
    return _SENTENCE_RE.findall(path.read_text(encoding="utf-8"))


def _write_xml(path: Path, blocks: list[str]) -> None:
    head = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<sentences>\n'
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "\n".join(blocks) + "\n</sentences>\n", encoding="utf-8")


def make_semeval14(data: Path, out: Path) -> Counts:
    """Restaurants: 2,500 train + 300 dev from train (disjoint), 500 from the test gold."""
    src = data / "semeval2014_absa"
    sizes = SIZES["semeval14"]
    files = {"train": src / "Restaurants_Train_v2.xml", "test": src / "Restaurants_Test_Gold.xml"}
    recs = {name: _records(path, "semeval14") for name, path in files.items()}
    blocks = {name: _xml_blocks(path) for name, path in files.items()}
    for name in files:  # the i-th <sentence> block is the i-th record
        assert len(blocks[name]) == len(recs[name]), f"{files[name]}: sentence blocks differ"
    index = {name: {id(r): i for i, r in enumerate(recs[name])} for name in files}
    test = _pick(_unique(recs["test"], set()), sizes["test"], _aspects)
    pool = _unique(recs["train"], _norms(test))
    chosen = _pick(pool, sizes["train"] + sizes["dev"], _aspects)
    parts = stratified_split([_aspects(r) for r in chosen],
                             [sizes["train"] / len(chosen), sizes["dev"] / len(chosen)], SEED)
    split_rows = {"train": [chosen[i] for i in parts[0]], "dev": [chosen[i] for i in parts[1]],
                  "test": test}
    counts = {}
    for name, rows in split_rows.items():
        origin = "test" if name == "test" else "train"
        _write_xml(out / "semeval14" / f"{name}.xml",
                   [blocks[origin][index[origin][id(r)]] for r in rows])
        counts[name] = (len(rows), Counter(lab for r in rows for lab in _aspects(r)))
    return counts


def _table(counts: Counts) -> list[str]:
    labels = sorted({lab for _, c in counts.values() for lab in c})
    splits = list(counts)
    lines = ["| | " + " | ".join(splits) + " |", "|---" * (len(splits) + 1) + "|",
             "| **rows** | " + " | ".join(str(counts[s][0]) for s in splits) + " |"]
    lines += [f"| {lab} | " + " | ".join(str(counts[s][1][lab]) for s in splits) + " |"
              for lab in labels]
    return lines


def write_licenses(data: Path, out: Path, counts: dict[str, Counts]) -> None:
    manifest = json.loads((data / "MANIFEST.json").read_text(encoding="utf-8"))["datasets"]
    info = {"sst2": manifest["sst2"], "goemotions": manifest["goemotions"],
            "semeval14": manifest["semeval2014_restaurants"]}
    text = (out / "LICENSES.md").read_text(encoding="utf-8").split("<!-- generated -->")[0]
    lines = [text.rstrip(), "", "<!-- generated -->", "## Provenance and counts (generated)", ""]
    for name, meta in info.items():
        lines += [f"### {name}", "",
                  f"- source repository: `{meta['repo']}` path `{meta['path']}`, "
                  f"commit `{meta['commit']}`",
                  f"- licence: {meta['license']}", f"- cite: {meta['cite']}", ""]
        lines += _table(counts[name]) + [""]
    (out / "LICENSES.md").write_text("\n".join(lines), encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--out", type=Path, default=ROOT / "assets")
    args = parser.parse_args()
    if not (args.data / "MANIFEST.json").exists():
        raise SystemExit(f"{args.data} has no MANIFEST.json: pass --data path/to/shared/data")
    counts = {
        "sst2": make_sst2(args.data, args.out),
        "goemotions": make_goemotions(args.data, args.out),
        "semeval14": make_semeval14(args.data, args.out),
    }
    write_licenses(args.data, args.out, counts)
    for name, per_split in counts.items():
        print(name, "rows per split:", {s: n for s, (n, _) in per_split.items()})


if __name__ == "__main__":
    main()
