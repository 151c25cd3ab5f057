"""Parity and speed of ``senti_lexicon`` against ``vaderSentiment`` on VADER's ground truth.

Writes ``bench/results/lexicon.md``: per set n, Pearson r and sign agreement of our compound
against VADER's, Pearson r of each against the human mean ratings, throughput of both on
10,000 snippets, and the largest disagreements with their per-word breakdowns.

    .venv/bin/python bench/bench_lexicon.py [--data-dir DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import random
import string
import time
from pathlib import Path

import numpy as np
import spacy
from _common import REPO, command_line, header, shown_path
from tqdm import tqdm
from vaderSentiment.vaderSentiment import (
    BOOSTER_DICT,
    NEGATE,
    SentimentIntensityAnalyzer,
    SentiText,
)

import spacy_senti.components.lexicon  # noqa: F401  (registers the factory without install)

DATA_DIR = REPO.parent / "shared" / "data" / "vader_groundtruth"
OUT = Path(__file__).parent / "results" / "lexicon.md"
SETS = {
    "tweets": "tweets_GroundTruth.txt",
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}
N_SPEED = 10_000
N_EXAMPLES = 3


def read_set(path: Path) -> tuple[list[str], np.ndarray]:
    """Texts and human mean valences of one ``id<TAB>mean<TAB>text`` file."""
    texts, means = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            _, mean, text = line.split("\t", 2)
            texts.append(text)
            means.append(float(mean))
    return texts, np.array(means)


def vader_words(sia: SentimentIntensityAnalyzer, text: str) -> list[tuple[str, float]]:
    """VADER's non-zero per-word valences (after its "but" re-weighting)."""
    senti = SentiText(_demojize(sia, text))
    words = senti.words_and_emoticons
    sentiments: list[float] = []
    for i, item in enumerate(words):
        lower = item.lower()
        if lower in BOOSTER_DICT or (
            i < len(words) - 1 and lower == "kind" and words[i + 1].lower() == "of"
        ):
            sentiments.append(0.0)
            continue
        sentiments = sia.sentiment_valence(0, senti, item, i, sentiments)
    sentiments = sia._but_check(words, sentiments)
    return [(w, round(v, 3)) for w, v in zip(words, sentiments, strict=True) if v]


def _demojize(sia: SentimentIntensityAnalyzer, text: str) -> str:
    out, prev_space = [], True
    for char in text:
        if char in sia.emojis:
            if not prev_space:
                out.append(" ")
            out.append(sia.emojis[char])
            prev_space = False
        else:
            out.append(char)
            prev_space = char == " "
    return "".join(out).strip()


def likely_cause(text: str, lexicon: dict[str, float]) -> str:
    """A guess at why the two disagree on ``text`` (tokenisation or an intended change)."""
    words = text.split()
    lowered = [w.lower().strip(string.punctuation) for w in words]
    causes = []
    for w in words:
        core = w.strip(string.punctuation)
        key = core.lower()
        short_kept = core != w and len(core) <= 2
        if short_kept and (key in lexicon or key in BOOSTER_DICT or key in NEGATE or key == "no"):
            causes.append(
                f"VADER keeps punctuation on short words ({w!r} is not {key!r}); "
                "spaCy splits it off"
            )
            break
    if "but" not in lowered and {"however", "although", "though"} & set(lowered):
        causes.append("contrast on however/although/though (VADER: only 'but')")
    if any(p in text.lower() for p in ("the shit", "the bomb", "to die for", "bad ass")):
        causes.append("special-case idiom applied at any position")
    return "; ".join(causes) or "other"


def timed(fn, texts: list[str], desc: str) -> float:
    """Docs per second of ``fn`` over ``texts`` (best of five runs)."""
    best = float("inf")
    for _ in tqdm(range(5), desc=desc, leave=False):
        start = time.perf_counter()
        fn(texts)
        best = min(best, time.perf_counter() - start)
    return len(texts) / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    head = header(command_line(), packages=("spacy", "vaderSentiment", "spacy-senti"))

    nlp = spacy.blank("en")
    nlp.add_pipe("senti_lexicon")
    sia = SentimentIntensityAnalyzer()
    lexicon = sia.lexicon

    rows, disagreements, all_texts = [], [], []
    for name, filename in SETS.items():
        texts, human = read_set(args.data_dir / filename)
        all_texts.extend(texts)
        ours = np.array(
            [d._.lexicon_score for d in tqdm(nlp.pipe(texts), total=len(texts), desc=name)]
        )
        vader = np.array([sia.polarity_scores(t)["compound"] for t in texts])
        rows.append(
            (
                name,
                len(texts),
                np.corrcoef(ours, vader)[0, 1],
                float(np.mean(np.sign(ours) == np.sign(vader))),
                float(np.mean(np.abs(ours - vader) < 5e-4)),
                np.corrcoef(ours, human)[0, 1],
                np.corrcoef(vader, human)[0, 1],
            )
        )
        for k in np.argsort(-np.abs(ours - vader))[:N_EXAMPLES]:
            disagreements.append((abs(ours[k] - vader[k]), name, texts[k], ours[k], vader[k]))

    speed_texts = random.Random(0).sample(all_texts, min(N_SPEED, len(all_texts)))
    ours_speed = timed(lambda ts: list(nlp.pipe(ts)), speed_texts, "senti_lexicon speed")
    vader_speed = timed(lambda ts: [sia.polarity_scores(t) for t in ts], speed_texts, "vader")

    lines = [
        "# `senti_lexicon` vs `vaderSentiment`",
        "",
        *head,
        f"- Data: VADER's human-rated ground truth (`{shown_path(args.data_dir)}`); pipeline "
        '`spacy.blank("en")` + `senti_lexicon` (default config).',
        "",
        "| set | n | r vs VADER | sign agreement | identical (±5e-4) | r ours vs human "
        "| r VADER vs human |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, n, r, sign, same, r_ours, r_vader in rows:
        lines.append(
            f"| {name} | {n:,} | {r:.4f} | {sign:.2%} | {same:.2%} | {r_ours:.4f} | {r_vader:.4f} |"
        )
    lines += [
        "",
        f"Throughput on {len(speed_texts):,} snippets sampled from the four sets, one process, "
        "best of 5 (wall clock):",
        "",
        "| scorer | docs/s |",
        "|---|---:|",
        f'| `senti_lexicon` on `spacy.blank("en")` (incl. tokenisation) | {ours_speed:,.0f} |',
        f"| `vaderSentiment` `polarity_scores` | {vader_speed:,.0f} |",
        f"| ratio (ours / VADER) | {ours_speed / vader_speed:.2f} |",
        "",
        "## Where and why the two differ",
        "",
        "`senti_lexicon` runs VADER's rules over spaCy tokens instead of VADER's whitespace",
        "split with edge punctuation stripped. Contractions (`do|n't`), hyphenated compounds",
        "(`well|-|known`) and HTML entities (`&|gt|;`) are re-joined into one word as VADER",
        "sees them, and emoticons come from spaCy's tokenizer or the PhraseMatcher, so most",
        "snippets score identically. The remaining differences:",
        "",
        "1. **Short words keep their punctuation in VADER.** VADER strips edge punctuation only",
        "   when more than two characters remain, so `No,` `so,` `ok.` `NO.` are not the",
        "   lexicon/booster/negation words `no` `so` `ok`. spaCy splits the punctuation off, so",
        '   here they count: in `No, I hate it` VADER\'s "no" rule flips `hate`; in',
        "   `I don't think so, sadly` the `so` right before `sadly` takes VADER's x1.25",
        '   "so/this" branch instead of the negation by `don\'t`.',
        '2. **Intended changes.** "however" and concessive "although/though" re-weight',
        '   clauses (VADER: only "but"); special-case idioms ("the shit", "to die for")',
        "   apply at any position (VADER: only with three words before, and never to the middle",
        '   word); the "but" re-weighting is per position (VADER\'s `list.index` mis-weights',
        "   repeated values).",
        "3. **Splits spaCy makes inside a whitespace word** (`good,bad`, `word/word`,",
        "   `it...hell`): spaCy scores the parts, VADER sees one unknown word.",
        "",
        "Largest disagreements found by this run:",
        "",
    ]
    disagreements.sort(reverse=True)
    for _, name, text, ours_score, vader_score in disagreements[:N_EXAMPLES]:
        doc = nlp(text)
        ours_words = [(t.text, round(t._.valence, 3)) for t in doc if t._.valence]
        lines += [
            f"- **{name}**: ours {ours_score:+.3f}, VADER {vader_score:+.3f}: `{text}`",
            f"  - ours: {ours_words}",
            f"  - VADER: {vader_words(sia, text)}",
            f"  - likely cause: {likely_cause(text, lexicon)}",
        ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
