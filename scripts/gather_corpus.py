"""Lay out converted corpora for a multi-dataset run: one folder per split, one file per dataset.

    python scripts/gather_corpus.py OUT_DIR NAME=CONVERTED_DIR [NAME=CONVERTED_DIR ...]

Copies ``CONVERTED_DIR/<split>.spacy`` (as written by ``spacy-senti convert``) to
``OUT_DIR/<split>/<NAME>.spacy``. ``spacy.Corpus`` reads every ``.spacy`` file of a folder, so
``--paths.train OUT_DIR/train`` trains on all datasets at once; each doc keeps only its own
head's ``doc.cats`` keys and the other heads are masked out of the loss.
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

SPLITS = ("train", "dev", "test")


def parse_source(spec: str) -> tuple[str, Path]:
    """``"sst2=corpus/samples/sst2"`` -> ``("sst2", Path("corpus/samples/sst2"))``."""
    name, sep, folder = spec.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"{spec!r}: use NAME=CONVERTED_DIR")
    return name, Path(folder)


def gather(out_dir: Path, sources: list[tuple[str, Path]]) -> dict[str, list[Path]]:
    """Copy every ``<split>.spacy`` of each source; returns the written files per split."""
    written: dict[str, list[Path]] = {split: [] for split in SPLITS}
    for name, folder in sources:
        found = [split for split in SPLITS if (folder / f"{split}.spacy").exists()]
        if "train" not in found:
            raise FileNotFoundError(f"{folder} has no train.spacy: run `spacy-senti convert` first")
        for split in found:
            dest = out_dir / split / f"{name}.spacy"
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(folder / f"{split}.spacy", dest)
            written[split].append(dest)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("sources", nargs="+", type=parse_source, metavar="NAME=CONVERTED_DIR")
    args = parser.parse_args(argv)
    for split, files in gather(args.out_dir, args.sources).items():
        if files:
            print(f"{split}: {', '.join(str(f) for f in files)}")


if __name__ == "__main__":
    main()
