"""Render aspect terms of a trained pipeline with displaCy's span visualiser, as HTML and PNG.

    python scripts/render_aspects.py PIPELINE OUT.png ["text" ...] [--spans-key aspects]

The PNG is a screenshot of the HTML by a headless Chromium (Debian's ``chromium``); the HTML
is written beside it (``OUT.html``). Used for the README's "Aspect terms" example.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import tempfile
from pathlib import Path

from spacy import displacy

from spacy_senti.components.aspects import displacy_options
from spacy_senti.util import load_pipeline

EXAMPLES = [
    "The pad thai was excellent but the waiter ignored us for twenty minutes.",
    "Great sushi and friendly staff, although the prices are steep for the neighbourhood.",
    "We ordered the tasting menu; the dessert was forgettable.",
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pipeline", type=Path)
    parser.add_argument("output", type=Path, help="the PNG to write (HTML beside it)")
    parser.add_argument("texts", nargs="*", default=EXAMPLES)
    parser.add_argument("--spans-key", default="aspects")
    parser.add_argument("--width", type=int, default=1000)
    args = parser.parse_args()
    nlp = load_pipeline(args.pipeline)
    docs = list(nlp.pipe(args.texts))
    html = displacy.render(docs, style="span", page=True,
                           options=displacy_options(args.spans_key))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    html_path = args.output.with_suffix(".html")
    html_path.write_text(html, encoding="utf8")
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise SystemExit("needs a Chromium for the PNG (apt-get install chromium); "
                         f"the HTML is at {html_path}")
    height = 90 + 160 * len(docs)
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={profile}", f"--window-size={args.width},{height}",
             f"--screenshot={args.output.resolve()}", html_path.resolve().as_uri()],
            check=True, capture_output=True,
        )
    for doc in docs:
        print(doc.text)
        for term in doc._.aspect_terms:
            print(f"  {term['text']!r}: {term['polarity']} ({term['score']:.2f})")
    print(f"wrote {args.output} and {html_path}")


if __name__ == "__main__":
    main()
