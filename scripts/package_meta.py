"""Write a pipeline's package metadata (name, version, sources, requirements) into meta.json.

    python scripts/package_meta.py MODEL_DIR [--output META_JSON] [--name NAME]
        [--version VERSION] [--sources sst2,goemotions,semeval14]

``spacy package`` records only spaCy's own range and the packages it finds in the config
(spacy-transformers). A pipeline wheel built from that alone installs without torch
(``pip`` then pulls a multi-GB CUDA build) and cannot load ``senti_textcat`` unless
spacy-senti happens to be installed. This script adds ``spacy-senti`` and ``torch`` to
``requirements`` so that ``pip install <wheel>`` is enough, and records the training data's
sources and licences. Without ``--output`` it updates ``MODEL_DIR/meta.json`` in place;
with it, it writes a separate file for ``spacy package --meta-path``.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Any

import srsly

TORCH_REQUIREMENT = "torch>=2.1"
SOURCES: dict[str, dict[str, str]] = {
    "sst2": {
        "name": "SST-2 (GLUE version of the Stanford Sentiment Treebank)",
        "url": "https://gluebenchmark.com/tasks",
        "license": "research use (no explicit licence)",
        "author": "Socher et al. 2013; Wang et al. 2019",
    },
    "goemotions": {
        "name": "GoEmotions",
        "url": "https://github.com/google-research/google-research/tree/master/goemotions",
        "license": "Apache-2.0",
        "author": "Demszky et al. 2020",
    },
    "semeval14": {
        "name": "SemEval-2014 Task 4 (restaurants)",
        "url": "https://alt.qcri.org/semeval2014/task4/",
        "license": "research use (no explicit licence)",
        "author": "Pontiki et al. 2014",
    },
    "tweeteval_emotion": {
        "name": "TweetEval emotion",
        "url": "https://github.com/cardiffnlp/tweeteval",
        "license": "released without restrictions; Twitter terms apply",
        "author": "Barbieri et al. 2020; Mohammad et al. 2018",
    },
    "minilm": {
        "name": "all-MiniLM-L6-v2 (backbone)",
        "url": "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2",
        "license": "Apache-2.0",
        "author": "sentence-transformers",
    },
}
DESCRIPTION = (
    "spacy-senti pipeline: a fine-tuned transformer with senti_textcat heads. Read "
    "doc._.sentiment, doc._.emotions and doc._.aspects (probabilities in doc.cats)."
)


def senti_requirement() -> str:
    """``spacy-senti>=X.Y.Z,<X.(Y+1).0`` for the installed spacy-senti version."""
    from spacy.util import get_minor_version_range

    import spacy_senti

    return f"spacy-senti{get_minor_version_range(spacy_senti.__version__)}"


def _req_name(requirement: str) -> str:
    """The normalised distribution name of a requirement string."""
    name = re.split(r"[\s<>=!~;\[(]", requirement.strip(), maxsplit=1)[0]
    return re.sub(r"[-_.]+", "-", name).lower()


def merge_requirements(existing: list[str], extra: list[str]) -> list[str]:
    """``existing`` with ``extra`` added; an extra requirement replaces one of the same name."""
    names = {_req_name(req) for req in extra}
    return [req for req in existing if _req_name(req) not in names] + list(extra)


def package_meta(
    meta: dict[str, Any],
    name: str | None = None,
    version: str | None = None,
    sources: list[str] | None = None,
    description: str | None = None,
) -> dict[str, Any]:
    """A copy of ``meta`` with the package fields and requirements filled in."""
    out = dict(meta)
    if name:
        out["name"] = name
    if version:
        out["version"] = version
    if description or not out.get("description"):
        out["description"] = description or DESCRIPTION
    out["author"] = out.get("author") or "spacy-senti developers"
    if sources:
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise ValueError(f"Unknown sources {unknown}; known: {sorted(SOURCES)}")
        out["sources"] = [SOURCES[s] for s in [*sources, "minilm"] if s in SOURCES]
        by_licence: dict[str, list[str]] = {}
        for source in sources:
            by_licence.setdefault(SOURCES[source]["license"], []).append(source)
        out["license"] = "training data: " + "; ".join(
            f"{lic} ({', '.join(names)})" for lic, names in by_licence.items()
        )
    requirements = [senti_requirement(), TORCH_REQUIREMENT]
    out["requirements"] = merge_requirements(list(out.get("requirements") or []), requirements)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, help="Pipeline directory (holds meta.json).")
    parser.add_argument("--output", type=Path, default=None,
                        help="Meta file to write (default: MODEL_DIR/meta.json, in place).")
    parser.add_argument("--name", default=None, help="Package name without the lang prefix.")
    parser.add_argument("--version", default=None, help="Package version.")
    parser.add_argument("--sources", default="", help=f"Comma list of {sorted(SOURCES)}.")
    parser.add_argument("--description", default=None)
    args = parser.parse_args(argv)
    meta = srsly.read_json(args.model_dir / "meta.json")
    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    meta = package_meta(meta, args.name, args.version, sources, args.description)
    output = args.output or args.model_dir / "meta.json"
    output.parent.mkdir(parents=True, exist_ok=True)
    srsly.write_json(output, meta)
    print(f"{output}: {meta['lang']}_{meta['name']} {meta['version']}, "
          f"requirements {meta['requirements']}")


if __name__ == "__main__":
    main()
