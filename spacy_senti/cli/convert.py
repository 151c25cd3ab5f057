"""``spacy-senti convert``: labelled text files -> spaCy DocBin files, with a full report."""

from __future__ import annotations

from pathlib import Path

import typer

from ..data.clean import CleanConfig
from ..data.convert import (
    FORMATS,
    LEVELS,
    TERM_EXPANDED,
    ConversionResult,
    ConvertOptions,
    convert,
    parse_label_map,
    write_docbins,
)
from ..data.readers import split_multi
from ..data.split import parse_ratios
from ..extensions import ASPECTS_SPANS_KEY
from ._util import app

HELP = """Convert labelled text to spaCy DocBin files with spacy-senti doc.cats keys.

Examples:

  spacy-senti convert sst2/train.tsv corpus/train.spacy -f tsv --label-map 0=negative,1=positive

  spacy-senti convert goemotions/ corpus/ -f goemotions --dedupe

  spacy-senti convert Tweets.csv corpus/ -f csv --label-col airline_sentiment --split 0.8,0.1,0.1

  spacy-senti convert Sentences_AllAgree.txt corpus/ -f lines --sep @ --encoding latin-1

  spacy-senti convert Laptop_Train_v2.xml corpus/ -f semeval14 --level terms --split 0.9,0.1
  --dedupe --labels positive,negative,neutral
"""


def _n(value: int) -> str:
    return f"{value:,}"


def format_report(result: ConversionResult) -> list[str]:
    """Plain-text report: rows in/out per input, skips by reason, docs and labels per split,
    aspect terms (in/out/skipped/expanded, per split by polarity), duplicates. Checks
    ``in == out + skipped`` for rows and for terms."""
    head = result.head
    if head is None:
        lines = [f"aspect terms only -> doc.spans[{result.spans_key!r}], no doc.cats; "
                 f"cleaning: {result.clean.describe()}"]
    else:
        what = f"{len(head.groups)} groups x {len(head.polarities)}" if head.has_groups \
            else f"{len(head.labels)} labels"
        lines = [f"head '{head.name}' ({head.kind}, {what}); cleaning: "
                 f"{result.clean.describe()}"]
    lines.append(f"labels from {result.labels_from}")
    width = max([len(s.path.name) for s in result.inputs] + [12])
    lines.append(f"{'input':<{width}} {'rows in':>9} {'kept':>9} {'skipped':>9}")
    for st in result.inputs:
        kept = st.n_in - st.n_skipped
        lines.append(f"{st.path.name:<{width}} {_n(st.n_in):>9} {_n(kept):>9} "
                     f"{_n(st.n_skipped):>9}")
    ok = "ok" if result.n_in == result.n_out + result.n_skipped else "MISMATCH"
    lines.append(f"{'total':<{width}} {_n(result.n_in):>9} {_n(result.n_out):>9} "
                 f"{_n(result.n_skipped):>9}   (in = out + skipped: {ok})")
    for st in result.inputs:
        for reason, count in st.skipped.most_common():
            places = ", ".join(st.locations.get(reason, []))
            more = ", ..." if count > len(st.locations.get(reason, [])) else ""
            lines.append(f"  skipped {st.path.name}: {reason}: {_n(count)} (at {places}{more})")
    splits = list(result.splits)
    sw = max([len(s) for s in splits] + [9])
    lines.append("")
    lines.append(f"{'split':<{sw}} {'docs':>9}  file")
    for name in splits:
        out = result.outputs.get(name, "")
        lines.append(f"{name:<{sw}} {_n(len(result.splits[name])):>9}  {out}")
    if head is not None:
        lines.append("")
        counts = {name: result.label_counts(name) for name in splits}
        labels = head.label_names
        lw = max([len(lab) for lab in labels] + [5])
        lines.append(f"{'label':<{lw}} " + " ".join(f"{s:>{sw}}" for s in splits))
        for lab in labels:
            lines.append(f"{lab:<{lw}} "
                         + " ".join(f"{_n(counts[s][lab]):>{sw}}" for s in splits))
    if result.has_terms:
        lines += ["", *format_terms_report(result)]
    dup_lines = result.duplicates.lines()
    if dup_lines:
        lines += ["", "duplicates (exact text; 'after normalisation': case/punctuation/space):"]
        lines += [f"  {line}" for line in dup_lines]
    return lines


def format_terms_report(result: ConversionResult) -> list[str]:
    """The aspect terms part of the report: per input terms in / out / skipped / expanded,
    skips and notes by reason with locations, then per split docs with terms and terms per
    polarity. Checks ``terms in == terms out + skipped``."""
    inputs = [st for st in result.inputs if st.terms is not None]
    width = max([len(st.path.name) for st in inputs] + [12])
    lines = [f"aspect terms -> doc.spans[{result.spans_key!r}] (label = polarity; every doc has "
             "the key, an empty group when it has no terms)",
             f"{'input':<{width}} {'terms in':>9} {'out':>9} {'skipped':>9} {'expanded':>9}"]
    total = [0, 0, 0, 0]
    for st in inputs:
        terms = st.terms
        assert terms is not None
        row = [terms.n_in, terms.n_out, terms.n_skipped, terms.notes[TERM_EXPANDED]]
        total = [a + b for a, b in zip(total, row, strict=True)]
        lines.append(f"{st.path.name:<{width}} " + " ".join(f"{_n(v):>9}" for v in row))
    ok = "ok" if total[0] == total[1] + total[2] else "MISMATCH"
    lines.append(f"{'total':<{width}} " + " ".join(f"{_n(v):>9}" for v in total)
                 + f"   (terms in = out + skipped: {ok})")
    for st in inputs:
        terms = st.terms
        assert terms is not None
        for kind, counter in (("skipped", terms.skipped), ("kept", terms.notes)):
            for reason, count in counter.most_common():
                places = terms.locations.get(reason, [])
                more = ", ..." if count > len(places) else ""
                lines.append(f"  {kind} terms {st.path.name}: {reason}: {_n(count)} "
                             f"(at {', '.join(places)}{more})")
    splits = list(result.splits)
    sw = max([len(s) for s in splits] + [9])
    labels = result.term_labels or []
    lw = max([len(lab) for lab in labels] + [15])
    lines += ["", f"{'terms':<{lw}} " + " ".join(f"{s:>{sw}}" for s in splits)]
    counts = {name: result.term_counts(name) for name in splits}
    for lab in labels:
        lines.append(f"{lab:<{lw}} " + " ".join(f"{_n(counts[s][lab]):>{sw}}" for s in splits))
    lines.append(f"{'docs with terms':<{lw}} "
                 + " ".join(f"{_n(result.docs_with_terms(s)):>{sw}}" for s in splits))
    lines.append(f"{'docs without':<{lw}} "
                 + " ".join(f"{_n(len(result.splits[s]) - result.docs_with_terms(s)):>{sw}}"
                            for s in splits))
    return lines


def _csv_list(value: str | None) -> list[str] | None:
    return split_multi(value, ",") if value else None


@app.command("convert", help=HELP)
def convert_command(
    input_path: Path = typer.Argument(
        ..., help="Input file, or a folder holding train/dev(val)/test files."
    ),
    output: Path = typer.Argument(
        ..., help="Output folder (writes <split>.spacy) or a .spacy file for a single split."
    ),
    fmt: str = typer.Option(..., "--format", "-f", help=f"One of: {', '.join(FORMATS)}."),
    head: str = typer.Option(None, help="Head name (default: sentiment; goemotions: emotion; "
                             "semeval14: aspect)."),
    kind: str = typer.Option(None, help="exclusive | multilabel | grouped (default by format)."),
    text_col: str = typer.Option(None, help="Text column/key: name or 0-based index."),
    label_col: str = typer.Option(None, help="Label column/key: name or 0-based index."),
    sep: str = typer.Option(None, help="--format lines: text/label separator (last one wins)."),
    multi_sep: str = typer.Option(",", help="Separator of several labels in one cell."),
    encoding: str = typer.Option("utf-8", help="Input encoding, e.g. latin-1."),
    quoting: str = typer.Option("auto", help="csv/tsv quoting: auto (csv: minimal, tsv: none), "
                                "minimal or none."),
    header: bool = typer.Option(True, "--header/--no-header", help="csv/tsv: first row names "
                                "the columns."),
    label_file: Path = typer.Option(None, help="Label names: GoEmotions emotions.txt or "
                                    "TweetEval mapping.txt (default: beside the input)."),
    label_map: str = typer.Option(None, help='Rename raw labels, e.g. "0=negative,1=positive".'),
    labels: str = typer.Option(None, help="Allowed labels (grouped and aspect terms: "
                               "polarities), comma list; others are skipped as unknown."),
    groups: str = typer.Option(None, help="Grouped heads: allowed groups, comma list."),
    level: str = typer.Option("categories", help="semeval14: categories (doc.cats of the "
                              "aspect head), terms (aspectTerm spans -> doc.spans; laptops "
                              f"too) or both. One of: {', '.join(LEVELS)}."),
    spans_key: str = typer.Option(ASPECTS_SPANS_KEY, help="--level terms|both: the doc.spans "
                                  "key of the aspect terms."),
    html: bool = typer.Option(False, "--html", help="Strip HTML tags, unescape entities."),
    fix_unicode: bool = typer.Option(False, "--fix-unicode", help="Repair mojibake (ftfy)."),
    normalize_urls: bool = typer.Option(False, "--normalize-urls", help="URLs -> 'http'."),
    normalize_users: bool = typer.Option(False, "--normalize-users", help="@name -> '@user'."),
    whitespace: bool = typer.Option(True, "--whitespace/--no-whitespace",
                                    help="Collapse whitespace runs, strip ends."),
    split: str = typer.Option(None, help='Split one input, e.g. "0.8,0.1,0.1" (stratified).'),
    seed: int = typer.Option(0, help="Random seed for --split and --sample."),
    dedupe: bool = typer.Option(False, "--dedupe", help="Drop cross-split duplicates from "
                                "dev/test and repeated texts from train."),
    strict: bool = typer.Option(False, "--strict", help="Fail on any empty, malformed or "
                                "unknown-label row instead of skipping it."),
    limit: int = typer.Option(None, help="Read only the first N rows of each input."),
    sample: int = typer.Option(None, help="Keep a stratified random sample of N rows per input."),
    lang: str = typer.Option("en", help="Language of spacy.blank for the docs."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="tqdm progress bars."),
) -> None:
    """Convert labelled text to DocBin files (the help text with examples is HELP)."""
    opts = ConvertOptions(
        format=fmt, head=head, kind=kind, text_col=text_col, label_col=label_col, sep=sep,
        multi_sep=multi_sep, encoding=encoding, quoting=quoting, header=header,
        label_file=label_file, label_map=parse_label_map(label_map),
        labels=_csv_list(labels), groups=_csv_list(groups), strict=strict, limit=limit,
        level=level, spans_key=spans_key, lang=lang,
        clean=CleanConfig(fix_unicode=fix_unicode, html=html, normalize_urls=normalize_urls,
                          normalize_users=normalize_users, whitespace=whitespace),
    )
    ratios = parse_ratios(split) if split else None
    result = convert(input_path, opts, split=ratios, seed=seed, dedupe_splits=dedupe,
                     sample=sample, progress=progress)
    write_docbins(result, output, lang=lang, progress=progress)
    for line in format_report(result):
        typer.echo(line)
