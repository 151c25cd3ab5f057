"""Evaluation report of ``senti_textcat``: metrics.json, PNG figures, error CSVs, report.md.

``write_report(examples, heads, output_dir, ...)`` takes Examples whose ``predicted`` docs hold
the model's ``doc.cats`` and whose ``reference`` docs hold the gold ``doc.cats``. The metrics
are ``score_heads``' (scikit-learn); calibration is in ``calibration.py``, drawing in
``figures.py``.
"""

from __future__ import annotations

import csv
import os
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import srsly
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..errors import InputError
from ..heads import SEP, GroupedHead, Head, MultilabelHead
from . import figures
from .calibration import DEFAULT_BINS, ReliabilityBins, calibration_pairs, reliability_bins
from .scorer import PREFIX, head_arrays, score_heads

if TYPE_CHECKING:
    from ..components.aspects import SentiAspects

MARKDOWN_ERRORS = 10
MARKDOWN_TEXT_CHARS = 100
EXPLANATIONS_FILE = "explanations.html"
#: most confident errors per head explained in explanations.html
N_EXPLAINED = 10
ASPECT_TERMS_SAMPLE_FILE = "aspect_terms_sample.html"
ASPECT_TERMS_PREFIX = "aspect_terms"  # figure names: aspect_terms_confusion.png, ..._f1.png
#: sentences rendered on the aspect terms sample page: with errors first, then correct ones
N_TERM_SAMPLE_ERRORS = 12
N_TERM_SAMPLE_CORRECT = 4
#: displaCy span colours of the usual polarities (others: displaCy's grey)
POLARITY_COLOURS = {"positive": "#9be7a8", "negative": "#f7a8a8", "neutral": "#c9d1d9",
                    "conflict": "#ffd58a"}


# --- inputs ----------------------------------------------------------------------------------
def gold_keys(docs: Iterable[Doc]) -> set[str]:
    """Every ``doc.cats`` key found in ``docs``."""
    return {key for doc in docs for key in doc.cats}


def check_gold(docs: Sequence[Doc], heads: Sequence[Head], source: str = "the data",
               spans_key: str | None = None) -> None:
    """Raise InputError unless some doc annotates one of ``heads`` (or, with ``spans_key``,
    the pipeline's aspect terms: some doc has ``doc.spans[spans_key]``)."""
    if not docs:
        raise InputError(f"{source} holds no documents.")
    if any(head.is_annotated(doc.cats) for doc in docs for head in heads):
        return
    if spans_key is not None and has_gold_terms(docs, spans_key):
        return
    keys = sorted(gold_keys(docs))
    shown = ", ".join(repr(k) for k in keys[:20]) + (" ..." if len(keys) > 20 else "")
    wanted = []
    if heads:
        wanted.append(f"for the pipeline's heads {[h.name for h in heads]}: expected doc.cats "
                      f"keys like {[h.keys()[0] for h in heads if h.keys()]}, found "
                      f"{shown or 'no doc.cats keys at all'}")
    if spans_key is not None:
        groups = sorted({k for doc in docs for k in doc.spans})
        wanted.append(f"for senti_aspects: expected gold terms in doc.spans[{spans_key!r}] "
                      f"(spacy-senti convert -f semeval14 --level terms), found span groups "
                      f"{groups or 'none'}")
    raise InputError(f"{source} has no gold annotations " + "; ".join(wanted) + ".")


def has_gold_terms(docs: Iterable[Doc], spans_key: str) -> bool:
    """True when some doc carries the gold term group ``doc.spans[spans_key]``."""
    return any(spans_key in doc.spans for doc in docs)


def unknown_gold_keys(docs: Iterable[Doc], heads: Sequence[Head]) -> list[str]:
    """Gold keys of the heads' namespaces that the model does not predict (ignored in scores)."""
    known = {key for head in heads for key in head.keys()}
    prefixes = tuple(head.name + SEP for head in heads)
    return sorted(k for k in gold_keys(docs) if k.startswith(prefixes) and k not in known)


def predict_examples(
    nlp: Language, docs: Sequence[Doc], *, batch_size: int = 64, progress: bool = False
) -> list[Example]:
    """Run ``nlp.pipe`` over the texts of gold ``docs``; Examples (predicted, gold)."""
    texts = (nlp.make_doc(doc.text) for doc in docs)
    predicted = nlp.pipe(texts, batch_size=batch_size)
    if progress:
        from tqdm import tqdm

        predicted = tqdm(predicted, total=len(docs), desc="Predicting", unit="doc",
                         file=sys.stderr)
    return [Example(pred, gold) for pred, gold in zip(predicted, docs, strict=True)]


# --- analysis --------------------------------------------------------------------------------
@dataclass
class ErrorRow:
    """One wrong decision; ``item`` is the label (multilabel) or group (grouped)."""

    text: str
    gold: str
    predicted: str
    confidence: float
    item: str = ""


@dataclass
class HeadReport:
    """Everything the report shows about one head."""

    head: Head
    n: int
    scores: dict[str, Any]
    #: docs that annotate the head only with labels the model lacks: left out of its metrics
    n_unscored: int = 0
    bins: ReliabilityBins | None = None
    confusion_labels: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    support: dict[str, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    errors_path: Path | None = None
    #: errors explained on the explanations page (0: no page)
    n_explained: int = 0

    @property
    def ece(self) -> float | None:
        return self.bins.ece if self.bins is not None and self.n else None

    def score(self, name: str) -> Any:
        return self.scores.get(f"{PREFIX}{self.head.name}_{name}")


def most_confident_errors(
    head: Head, texts: Sequence[str], gold: np.ndarray, pred: np.ndarray, n: int
) -> list[ErrorRow]:
    """The ``n`` wrong decisions with the highest confidence in the wrong answer.

    exclusive: docs whose top class is wrong, confidence = its probability; multilabel:
    (doc, label) decisions at the label's threshold that are wrong, confidence = p for a false
    positive and 1 - p for a false negative; grouped: (doc, group) whose top class (``absent``
    included) is wrong, confidence = its probability.
    """
    rows = [ErrorRow(texts[i], gold_value, predicted, confidence, item)
            for i, item, gold_value, predicted, confidence in head.errors(gold, pred)]
    rows.sort(key=lambda row: -row.confidence)
    return rows[:n]


def group_rows(head: GroupedHead, gold: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Per group of a grouped head: gold/predicted presence, detection F1, polarity accuracy."""
    truth, chosen = head.winners(gold), head.winners(pred)
    n_pol = len(head.polarities)
    polarity = pred.reshape(len(pred), -1, n_pol)[:, :, 1:].argmax(axis=2) + 1
    rows = []
    for gi, group in enumerate(head.groups):
        present, predicted = truth[:, gi] > 0, chosen[:, gi] > 0
        tp = int((present & predicted).sum())
        denom = int(present.sum() + predicted.sum())
        rows.append({
            "group": group,
            "gold_present": int(present.sum()),
            "predicted_present": int(predicted.sum()),
            "detect_f": 2 * tp / denom if denom else 0.0,
            "polarity_acc": float((polarity[present, gi] == truth[present, gi]).mean())
            if present.any() else None,
        })
    return rows


def analyse_head(
    examples: Sequence[Example],
    head: Head,
    scores: dict[str, Any],
    *,
    n_errors: int = 50,
    n_bins: int = DEFAULT_BINS,
) -> HeadReport:
    """Confusion, calibration, support and top errors of one head."""
    annotated = [eg for eg in examples if head.has_known_gold(eg.reference.cats)]
    unscored = sum(head.is_annotated(eg.reference.cats) for eg in examples) - len(annotated)
    prefix = f"{PREFIX}{head.name}_"
    own = {k: v for k, v in scores.items() if k.startswith(prefix)}
    report = HeadReport(head=head, n=len(annotated), scores=own, n_unscored=unscored)
    if not annotated:
        return report
    gold, pred = head_arrays(annotated, head)
    texts = [eg.reference.text for eg in annotated]
    report.bins = reliability_bins(*calibration_pairs(head, gold, pred), n_bins=n_bins)
    report.confusion_labels, report.confusion = head.confusion(gold, pred)
    report.support = head.support(gold)
    report.errors = most_confident_errors(head, texts, gold, pred, n_errors)
    if isinstance(head, GroupedHead):
        report.groups = group_rows(head, gold, pred)
    return report


# --- aspect terms (senti_aspects) ------------------------------------------------------------
@dataclass
class TermDiff:
    """One annotated example's gold and predicted ``(start_char, end_char, polarity)`` terms."""

    index: int
    gold: set[tuple[int, int, str]]
    pred: set[tuple[int, int, str]]

    @property
    def missed(self) -> list[tuple[int, int, str]]:
        """Gold terms whose span was not predicted."""
        found = {p[:2] for p in self.pred}
        return sorted(g for g in self.gold if g[:2] not in found)

    @property
    def spurious(self) -> list[tuple[int, int, str]]:
        """Predicted terms that are no gold term."""
        gold = {g[:2] for g in self.gold}
        return sorted(p for p in self.pred if p[:2] not in gold)

    @property
    def wrong_polarity(self) -> list[tuple[int, int, str, str]]:
        """(start, end, gold, predicted) of terms found with another polarity."""
        pred = {p[:2]: p[2] for p in self.pred}
        return sorted((*g[:2], g[2], pred[g[:2]]) for g in self.gold
                      if g[:2] in pred and pred[g[:2]] != g[2])

    @property
    def correct(self) -> bool:
        return self.gold == self.pred


@dataclass
class AspectTermsReport:
    """Everything the report shows about the aspect terms of a ``senti_aspects`` component."""

    component: str
    spans_key: str
    labels: list[str]
    n: int  # annotated documents
    scores: dict[str, Any]
    #: (gold, predicted) polarity per scored gold term
    polarity_pairs: list[tuple[str, str]] = field(default_factory=list)
    confusion_labels: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    support: dict[str, int] = field(default_factory=dict)
    diffs: list[TermDiff] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    sample_path: Path | None = None
    n_sample_errors: int = 0
    n_sample_correct: int = 0

    def score(self, name: str) -> Any:
        return self.scores.get(f"aspect_{name}")

    def error_counts(self) -> dict[str, int]:
        """Missed, spurious and wrong-polarity terms, and documents without any error."""
        return {"missed": sum(len(d.missed) for d in self.diffs),
                "spurious": sum(len(d.spurious) for d in self.diffs),
                "wrong_polarity": sum(len(d.wrong_polarity) for d in self.diffs),
                "docs_correct": sum(d.correct for d in self.diffs)}


def analyse_aspect_terms(examples: Sequence[Example], component: SentiAspects
                         ) -> AspectTermsReport:
    """Scores (the component's scorer), per-polarity confusion and support on the gold terms,
    and per-example term differences of the examples annotated for terms.

    The gold terms' polarities are predicted from the encoder output the predicted docs carry
    (``component.gold_term_polarities``); without it (no ``doc._.trf_data``), the polarity
    metrics use the gold terms the extractor found exactly, as the scorer does.
    """
    from sklearn.metrics import confusion_matrix

    from .aspect_scorer import gold_and_predicted_terms, score_aspect_terms

    key = component.spans_key
    annotated = [eg for eg in examples if key in eg.reference.spans]
    labels = list(component.labels)
    report = AspectTermsReport(component=component.name, spans_key=key, labels=labels,
                               n=len(annotated), scores={})
    pairs = component.gold_term_polarities(annotated) if annotated else None
    scorer = component.scorer or score_aspect_terms
    report.scores = scorer(annotated, spans_key=key, labels=labels, gold_term_polarities=pairs)
    terms = gold_and_predicted_terms(annotated, key)
    report.diffs = [TermDiff(i, gold, pred) for i, (gold, pred) in enumerate(terms)]
    if pairs is None:  # the polarities of the gold terms the extractor found exactly
        pairs = [(g, p) for d in report.diffs for _, _, g, p in _found_terms(d)]
    report.polarity_pairs = list(pairs)
    if pairs:
        gold_labels = {g for g, _ in pairs}
        names = labels + sorted(gold_labels - set(labels))
        report.confusion_labels = names
        report.confusion = confusion_matrix([g for g, _ in pairs], [p for _, p in pairs],
                                            labels=names)
        report.support = {name: sum(g == name for g, _ in pairs) for name in names}
    return report


def _found_terms(diff: TermDiff) -> list[tuple[int, int, str, str]]:
    """(start, end, gold, predicted) of the gold terms whose span was predicted."""
    pred = {p[:2]: p[2] for p in diff.pred}
    return sorted((*g[:2], g[2], pred[g[:2]]) for g in diff.gold if g[:2] in pred)


def draw_aspect_term_figures(report: AspectTermsReport, output_dir: Path) -> dict[str, Path]:
    """Per-polarity confusion matrix of the gold terms and per-polarity F1 bars."""
    out: dict[str, Path] = {}
    if report.confusion is not None:
        on = report.score("polarity_on") or "gold terms"
        out["confusion"] = figures.confusion_figure(
            report.confusion, report.confusion_labels,
            f"aspect terms: polarity on the {on}",
            output_dir / f"{ASPECT_TERMS_PREFIX}_confusion.png")
    per_type = report.score("polarity_per_type")
    if per_type:
        out["f1"] = figures.f1_bar_figure(per_type, report.support,
                                          "aspect terms: per-polarity F1",
                                          output_dir / f"{ASPECT_TERMS_PREFIX}_f1.png")
    return out


def sample_term_examples(diffs: Sequence[TermDiff], n_errors: int = N_TERM_SAMPLE_ERRORS,
                         n_correct: int = N_TERM_SAMPLE_CORRECT) -> tuple[list[int], list[int]]:
    """Indices of the examples to render: up to ``n_errors`` with errors, taken in turn from
    those with a wrong polarity, a missed term and a spurious term (data order within each),
    then up to ``n_correct`` without any error (those with gold terms first)."""
    kinds = [[d.index for d in diffs if d.wrong_polarity], [d.index for d in diffs if d.missed],
             [d.index for d in diffs if d.spurious]]
    chosen: list[int] = []
    while len(chosen) < n_errors and any(kinds):
        for kind in kinds:
            while kind and kind[0] in chosen:
                kind.pop(0)
            if kind and len(chosen) < n_errors:
                chosen.append(kind.pop(0))
    correct = sorted((d for d in diffs if d.correct), key=lambda d: (not d.gold, d.index))
    return chosen, [d.index for d in correct[:n_correct]]


def write_aspect_terms_sample(
    examples: Sequence[Example], report: AspectTermsReport, component: SentiAspects,
    path: Path, n_errors: int = N_TERM_SAMPLE_ERRORS, n_correct: int = N_TERM_SAMPLE_CORRECT,
) -> Path | None:
    """aspect_terms_sample.html: displaCy span renderings (``style="span"``) of the predicted
    terms of a sample of annotated sentences, each with its gold terms listed and what the
    model made of them; sentences with errors first. None (nothing written) without any."""
    import warnings
    from html import escape

    from spacy import displacy

    annotated = [eg for eg in examples if report.spans_key in eg.reference.spans]
    errors, correct = sample_term_examples(report.diffs, n_errors, n_correct)
    if not errors and not correct:
        return None
    colours = {label: POLARITY_COLOURS[label] for label in report.confusion_labels
               if label in POLARITY_COLOURS}
    options = {"spans_key": report.spans_key, "colors": colours}

    def item(index: int) -> str:
        eg, diff = annotated[index], report.diffs[index]
        with warnings.catch_warnings():  # W117: a sentence without predicted terms
            warnings.simplefilter("ignore", UserWarning)
            html = displacy.render(eg.predicted, style="span", options=options, jupyter=False)
        on_gold = _gold_span_polarities(component, eg, diff)
        pred = {p[:2]: p[2] for p in diff.pred}
        text = eg.reference.text
        rows = []
        for start, end, gold in sorted(diff.gold):
            if (start, end) not in pred:
                what = "missed"
                if (start, end) in on_gold:  # what the polarity classifier says of it
                    what += f" (polarity on the gold span: <b>{escape(on_gold[(start, end)])}"\
                            "</b>)"
            elif pred[(start, end)] == gold:
                what = "found, right polarity"
            else:
                what = f"found as <b>{escape(pred[(start, end)])}</b>"
            rows.append(f"<li>“{escape(text[start:end])}” ({start}-{end}) gold "
                        f"<b>{escape(gold)}</b>: {what}</li>")
        rows += [f"<li>“{escape(text[s:e])}” ({s}-{e}) predicted <b>{escape(p)}</b>: not a "
                 "gold term</li>" for s, e, p in diff.spurious]
        listed = f"<ul>{''.join(rows)}</ul>" if rows else "<p>No gold terms, none predicted.</p>"
        return f'<li class="{"ok" if diff.correct else "error"}">{html}{listed}</li>'

    sections = []
    if errors:
        sections.append(f"<h2>With errors ({len(errors)})</h2>"
                        f"<ol>{''.join(item(i) for i in errors)}</ol>")
    if correct:
        sections.append(f"<h2>Correct ({len(correct)})</h2>"
                        f"<ol>{''.join(item(i) for i in correct)}</ol>")
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Aspect terms: sample</title></head>"
        '<body style="font-family: sans-serif; max-width: 60em; margin: auto">'
        f"<h1>Aspect terms: a sample of {len(errors) + len(correct)} sentences</h1>"
        f"<p>Predicted terms of <code>{escape(report.component)}</code> as displaCy renders "
        f"<code>doc.spans[{escape(repr(report.spans_key))}]</code> (labels: polarity), then "
        "each gold term and what the model made of it. Sentences with errors first (a wrong "
        "polarity, a missed term, a term that is not gold, in turn), then correct ones.</p>"
        f"{''.join(sections)}</body></html>"
    )
    report.n_sample_errors, report.n_sample_correct = len(errors), len(correct)
    Path(path).write_text(page, encoding="utf8")
    return Path(path)


def _gold_span_polarities(component: SentiAspects, eg: Example, diff: TermDiff
                          ) -> dict[tuple[int, int], str]:
    """{(start_char, end_char): predicted polarity} of one example's gold terms (empty when
    the doc carries no encoder output or the gold spans do not align one to one)."""
    pairs = component.gold_term_polarities([eg]) or []
    spans = sorted({g[:2] for g in diff.gold})
    if len(pairs) != len(spans):
        return {}
    return {span: predicted for span, (_, predicted) in zip(spans, pairs)}


def aspect_terms_entry(report: AspectTermsReport) -> dict[str, Any]:
    """metrics.json's ``aspect_terms``: counts, labels, confusion and support."""
    return {
        "component": report.component, "spans_key": report.spans_key, "n_docs": report.n,
        "labels": report.labels, "polarity_on": report.score("polarity_on"),
        "confusion": {"labels": report.confusion_labels,
                      "matrix": report.confusion.tolist() if report.confusion is not None
                      else []},
        "support": report.support, "errors": report.error_counts(),
    }


# --- writing ---------------------------------------------------------------------------------
@dataclass
class Report:
    """What ``write_report`` wrote: metrics.json's content, per-head details, the files."""

    metrics: dict[str, Any]
    heads: list[HeadReport]
    files: list[Path]
    #: the aspect terms section (a pipeline with senti_aspects on data with gold terms)
    aspect_terms: AspectTermsReport | None = None


def write_errors_csv(report: HeadReport, path: Path) -> Path:
    item = report.head.item_name
    header = ["text", *([item] if item else []), "gold", "predicted", "confidence"]
    with Path(path).open("w", encoding="utf8", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        for row in report.errors:
            values = [row.text, *([row.item] if item else []), row.gold, row.predicted]
            writer.writerow([*values, f"{row.confidence:.6f}"])
    return Path(path)


def draw_head_figures(report: HeadReport, output_dir: Path) -> dict[str, Path]:
    """Confusion (or outcome) matrix, per-label F1 bars and reliability diagram."""
    head, name = report.head, report.head.name
    out: dict[str, Path] = {}
    if report.confusion is not None:
        path = output_dir / f"{name}_confusion.png"
        if isinstance(head, MultilabelHead):
            out["confusion"] = figures.outcome_figure(
                report.confusion_labels, report.confusion,
                f"{name}: per-label outcomes (at thresholds)", path)
        else:
            pooled = " (pooled over groups)" if head.has_groups else ""
            out["confusion"] = figures.confusion_figure(
                report.confusion, report.confusion_labels, f"{name}: confusion matrix{pooled}",
                path)
    per_type = report.score("f_per_type")
    if per_type:
        out["f1"] = figures.f1_bar_figure(per_type, report.support,
                                          f"{name}: per-label F1", output_dir / f"{name}_f1.png")
    if report.bins is not None:
        outcome = head.calibration_outcome
        out["reliability"] = figures.reliability_figure(
            report.bins, f"{name}: reliability", output_dir / f"{name}_reliability.png",
            outcome_name=outcome)
    return out


def metrics_dict(
    scores: dict[str, Any], reports: Sequence[HeadReport], meta: dict[str, Any]
) -> dict[str, Any]:
    """The content of metrics.json."""
    heads = {}
    for rep in reports:
        entry: dict[str, Any] = {"kind": rep.head.kind, "n": rep.n,
                                 "n_unscored": rep.n_unscored, "ece": rep.ece,
                                 "n_bins": len(rep.bins.counts) if rep.bins else None}
        if rep.head.has_thresholds:
            entry["thresholds"] = {lab: rep.head.label_threshold(lab) for lab in rep.head.labels}
        heads[rep.head.name] = entry
    return {**meta, "scores": scores, "heads": heads}


# --- model name and paths (the report's header) ----------------------------------------------
PLACEHOLDER_NAME = "pipeline"  # spaCy's default meta name, what `spacy train` writes
PLACEHOLDER_VERSION = "0.0.0"


def shown_path(path: str | Path, cwd: str | Path | None = None) -> str:
    """``path`` relative to the working directory ``cwd`` when it lies inside it, else as
    given: no machine-specific prefix (``/home/me/project/``) in reports that get committed.
    A package name (``en_senti_minilm``) comes back unchanged."""
    text = str(path)
    if not text:
        return text
    base = Path(cwd if cwd is not None else Path.cwd())
    target = Path(text).expanduser()
    for root, full in ((Path(os.path.abspath(base)), Path(os.path.abspath(base / target))),
                       (base.resolve(), (base / target).resolve())):  # symlinked roots
        if full.is_relative_to(root):
            return full.relative_to(root).as_posix()
    return text


def is_placeholder_name(name: str | None) -> bool:
    """True for no name or spaCy's placeholder, bare or with a language prefix
    (``pipeline``, ``en_pipeline``)."""
    name = (name or "").strip()
    prefix, _, rest = name.partition("_")
    return name in ("", PLACEHOLDER_NAME) or (
        rest == PLACEHOLDER_NAME and prefix.isalpha() and len(prefix) <= 3)


def model_entry(
    meta: dict[str, Any] | None = None, source: str | Path = "", *, name: str = "",
    version: str = "", cwd: str | Path | None = None,
) -> dict[str, Any]:
    """metrics.json's ``model``: ``{lang}_{name}`` and version from the pipeline's meta (or
    ``name`` / ``version``), and ``source`` as ``shown_path`` shows it.

    A pipeline with spaCy's placeholder meta (name ``pipeline``, version ``0.0.0``, what
    ``spacy train`` writes) has no name: it is named by its source instead, ``named`` is
    False, and the meta's values are kept apart in ``meta_name`` / ``meta_version``.
    """
    raw_name = name.split("_", 1)[-1] if is_placeholder_name(name) else name
    if meta is not None:
        raw_name, version = str(meta.get("name") or ""), str(meta.get("version") or "")
        lang = str(meta.get("lang") or "")
        name = f"{lang}_{raw_name}" if lang and raw_name else raw_name
    shown = shown_path(source, cwd)
    if not is_placeholder_name(name):
        return {"name": name, "version": version, "source": shown, "named": True}
    return {"name": shown or "unnamed pipeline", "version": "", "source": shown,
            "named": False, "meta_name": raw_name, "meta_version": version}


def header_lines(metrics: dict[str, Any]) -> list[str]:
    """report.md's title and model / data / overall lines (the part before the tables)."""
    model = metrics["model"]
    source = model.get("source") or ""
    if model.get("named", not is_placeholder_name(model.get("name"))):
        title = f"{model['name']} {model['version']}".strip()
        about = (f"- model: `{model['name']}` version {model['version'] or '–'}"
                 + (f", loaded from `{source}`" if source else ""))
    else:
        title = source or "unnamed pipeline"
        meta = (f"meta name {model.get('meta_name', PLACEHOLDER_NAME)!r}, version "
                f"{model.get('meta_version') or PLACEHOLDER_VERSION}")
        about = (f"- model: {f'`{source}`' if source else 'a pipeline'} (unnamed pipeline: "
                 f"{meta}, spaCy's placeholders as `spacy train` writes them; "
                 "`scripts/package_meta.py` sets a name)")
    scores = metrics["scores"]
    lines = [f"# Evaluation report: {title}", "", about,
             f"- data: `{metrics['data']}` ({metrics['n_docs']} docs)"]
    if metrics.get("heads", True):  # a pipeline with aspect terms only has no heads
        lines.append(f"- overall: macro-F1 {_fmt(scores.get(PREFIX + 'macro_f'))}, "
                     f"micro-F1 {_fmt(scores.get(PREFIX + 'micro_f'))}, "
                     f"accuracy {_fmt(scores.get(PREFIX + 'acc'))} (means over heads)")
    if metrics.get("aspect_terms"):
        lines.append(f"- aspect terms: term F1 {_fmt(scores.get('aspect_terms_f'))}, polarity "
                     f"accuracy {_fmt(scores.get('aspect_polarity_acc'))}, pair F1 "
                     f"{_fmt(scores.get('aspect_pairs_f'))}")
    return [*lines, ""]


def write_report(
    examples: Sequence[Example],
    heads: Sequence[Head],
    output_dir: Path,
    *,
    model_meta: dict[str, Any] | None = None,
    model_name: str = "",
    model_version: str = "",
    model_source: str = "",
    data_path: str = "",
    n_errors: int = 50,
    n_bins: int = DEFAULT_BINS,
    explain_nlp: Language | None = None,
    n_explained: int = N_EXPLAINED,
    aspects: SentiAspects | None = None,
) -> Report:
    """Score ``examples`` and write metrics.json, PNGs, errors_<head>.csv and report.md.

    With ``aspects`` (the pipeline's ``senti_aspects``) and examples whose reference docs
    carry gold terms (``doc.spans[aspects.spans_key]``), also the "Aspect terms" section:
    its scores join metrics.json's ``scores`` (the ``aspect_*`` keys of ``nlp.evaluate``),
    ``aspect_terms`` holds the polarity confusion; aspect_terms_confusion.png,
    aspect_terms_f1.png and aspect_terms_sample.html (displaCy span renderings). The
    predicted docs must still carry ``doc._.trf_data`` for polarities on the gold terms.

    The model is named by ``model_meta`` (``nlp.meta``; else ``model_name`` /
    ``model_version``), see ``model_entry``; ``model_source`` and ``data_path`` are shown
    relative to the working directory when inside it. With ``explain_nlp`` (the evaluated
    pipeline), the ``n_explained`` most confident errors of each head are explained on
    explanations.html (see ``write_explanations``).
    """
    examples = list(examples)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    scores = score_heads(examples, heads)
    reports = [analyse_head(examples, h, scores, n_errors=n_errors, n_bins=n_bins) for h in heads]
    files: list[Path] = []
    for rep in reports:
        if rep.n == 0:
            continue
        rep.figures = draw_head_figures(rep, output_dir)
        rep.errors_path = write_errors_csv(rep, output_dir / f"errors_{rep.head.name}.csv")
        files.extend([*rep.figures.values(), rep.errors_path])
    if explain_nlp is not None and n_explained > 0 and heads:
        page = write_explanations(explain_nlp, reports, output_dir / EXPLANATIONS_FILE,
                                  n_explained)
        files.extend([page] if page is not None else [])
    terms = None
    if aspects is not None and has_gold_terms((eg.reference for eg in examples),
                                              aspects.spans_key):
        terms = analyse_aspect_terms(examples, aspects)
        terms.figures = draw_aspect_term_figures(terms, output_dir)
        terms.sample_path = write_aspect_terms_sample(
            examples, terms, aspects, output_dir / ASPECT_TERMS_SAMPLE_FILE)
        files.extend(terms.figures.values())
        files.extend([terms.sample_path] if terms.sample_path is not None else [])
        scores.update(terms.scores)
    meta = {
        "model": model_entry(model_meta, model_source, name=model_name,
                             version=model_version),
        "data": shown_path(data_path),
        "n_docs": len(examples),
        "unknown_gold_keys": unknown_gold_keys((eg.reference for eg in examples), heads),
    }
    metrics = metrics_dict(scores, reports, meta)
    if terms is not None:
        metrics["aspect_terms"] = aspect_terms_entry(terms)
    elif aspects is not None:
        metrics["aspect_terms"] = None  # the pipeline has terms, the data no gold terms
    srsly.write_json(output_dir / "metrics.json", metrics)
    (output_dir / "report.md").write_text(render_report(metrics, reports, terms),
                                          encoding="utf8")
    files[:0] = [output_dir / "metrics.json", output_dir / "report.md"]
    return Report(metrics=metrics, heads=reports, files=files, aspect_terms=terms)


def error_label(head: Head, error: ErrorRow) -> str | None:
    """The label whose probability made ``error`` (exclusive: the predicted label;
    multilabel: the label; grouped: ``group/predicted polarity``)."""
    keys = set(head.keys())
    for label in (f"{error.item}{SEP}{error.predicted}", error.item, error.predicted):
        if label and f"{head.name}{SEP}{label}" in keys:
            return label
    return None


def write_explanations(nlp: Language, reports: Sequence[HeadReport], path: Path,
                       n: int = N_EXPLAINED) -> Path | None:
    """explanations.html: the ``n`` most confident errors of each head with the token
    attributions of their wrong label (spacy_senti.explain: ``DEFAULT_METHOD``, integrated
    gradients with ``REPORT_IG_STEPS`` steps), one section per head.

    Cheap: about 0.1 s per short text on a CPU for MiniLM. Returns None, writing nothing, when
    the pipeline cannot be explained (no transformer, or Captum not installed) or no head
    has errors; ``n_explained`` of each head's report is set otherwise.
    """
    from html import escape

    from ..errors import SentiError
    from ..explain import DEFAULT_METHOD, METHOD_NAMES, Explainer, render_explanation
    from ..explain.attribute import REPORT_IG_STEPS
    from ..util import find_textcat

    heads = [rep.head for rep in reports]
    try:
        name = find_textcat(nlp, None, head=heads[0].name).name if heads else None
        explainer = Explainer(nlp, name, n_steps=REPORT_IG_STEPS)
    except SentiError:
        return None
    sections = []
    for rep in reports:
        items = []
        for error in rep.errors[:n]:
            label = error_label(rep.head, error)
            if label is None:
                continue
            doc = nlp(error.text)
            entry = explainer.explain(doc, head=rep.head.name, label=label,
                                      method=DEFAULT_METHOD)
            if entry is None:
                continue
            about = (f"gold {escape(error.gold)}, predicted {escape(error.predicted)}"
                     + (f" ({escape(rep.head.item_name)} {escape(error.item)})"
                        if error.item else "") + f", confidence {error.confidence:.3f}")
            items.append(f"<li><p>{about}</p>{render_explanation(doc, jupyter=False)}</li>")
        rep.n_explained = len(items)
        if items:
            sections.append(f'<h2 id="{escape(rep.head.name)}">Head {escape(rep.head.name)}'
                            f'</h2><ol>{"".join(items)}</ol>')
    if not sections:
        return None
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>Most confident errors, explained</title></head>"
        '<body style="font-family: sans-serif; max-width: 60em; margin: auto">'
        "<h1>Most confident errors, explained</h1><p>Token attributions of the wrong label "
        f"({escape(METHOD_NAMES[DEFAULT_METHOD])}, spacy_senti.explain): green tokens raised "
        "its probability, red ones lowered it. Lexicon valences are shown when the pipeline "
        "has senti_lexicon."
        f"</p>{''.join(sections)}</body></html>"
    )
    Path(path).write_text(page, encoding="utf8")
    return Path(path)


# --- markdown --------------------------------------------------------------------------------
def _fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _cell(text: Any, limit: int = MARKDOWN_TEXT_CHARS) -> str:
    text = " ".join(str(text).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return text.replace("\\", "\\\\").replace("|", "\\|")


def md_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (cells escaped, floats with 3 decimals)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(_fmt(v)) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _summary_section(reports: Sequence[HeadReport]) -> list[str]:
    rows = [
        (r.head.name, r.head.kind, r.n, r.score("acc"), r.score("macro_f"), r.score("micro_f"),
         r.ece)
        for r in reports
    ]
    return [
        "## Summary", "",
        md_table(["head", "kind", "n", "accuracy", "macro-F1", "micro-F1", "ECE"], rows), "",
        "Accuracy is exact-match (subset) accuracy for multilabel heads and polarity accuracy "
        "on the gold-present groups for grouped heads. ECE: expected calibration error of the "
        "predicted probabilities (lower is better).", "",
    ]


def _head_section(rep: HeadReport) -> list[str]:
    head = rep.head
    lines = [f"## Head `{head.name}` ({head.kind})", ""]
    if rep.n_unscored:
        lines += [f"**{rep.n_unscored} documents left out:** their gold labels for this head "
                  "are ones the model does not predict (listed in the warning above), so they "
                  "are not scored.", ""]
    if rep.n == 0:
        return [*lines, "No document in the data annotates this head with labels the model "
                "knows.", ""]
    lines += [f"{rep.n} annotated documents. accuracy {_fmt(rep.score('acc'))}, "
              f"macro-F1 {_fmt(rep.score('macro_f'))}, micro-F1 {_fmt(rep.score('micro_f'))}, "
              f"ECE {_fmt(rep.ece)}.", ""]
    per_type = rep.score("f_per_type") or {}
    rows = [(lab, s["p"], s["r"], s["f"], rep.support.get(lab, 0)) for lab, s in per_type.items()]
    lines += ["### Per-label scores", "",
              md_table(["label", "precision", "recall", "F1", "support"], rows), ""]
    if head.has_thresholds:
        rows = [(lab, head.label_threshold(lab), "tuned" if lab in head.thresholds else "default")
                for lab in head.labels]
        lines += ["### Thresholds used", "", md_table(["label", "threshold", "source"], rows), ""]
    if rep.groups:
        rows = [(g["group"], g["gold_present"], g["predicted_present"], g["detect_f"],
                 g["polarity_acc"]) for g in rep.groups]
        lines += ["### Per group", "",
                  f"Detection micro-F1 {_fmt(rep.score('detect_micro_f'))}, "
                  f"macro-F1 {_fmt(rep.score('detect_macro_f'))}.", "",
                  md_table(["group", "gold present", "predicted present", "detection F1",
                            "polarity accuracy"], rows), ""]
    if rep.figures:
        lines += ["### Figures", ""]
        titles = {"confusion": "confusion matrix", "f1": "per-label F1",
                  "reliability": "reliability diagram"}
        lines += [f"![{head.name} {titles[k]}]({p.name})" for k, p in rep.figures.items()]
        lines.append("")
    lines += _errors_section(rep)
    return lines


def _errors_section(rep: HeadReport) -> list[str]:
    lines = ["### Most confident errors", ""]
    if not rep.errors:
        return [*lines, "No errors.", ""]
    item = rep.head.item_name
    header = ["text", *([item] if item else []), "gold", "predicted", "confidence"]
    rows = [(e.text, *([e.item] if item else []), e.gold, e.predicted, e.confidence)
            for e in rep.errors[:MARKDOWN_ERRORS]]
    shown = min(len(rep.errors), MARKDOWN_ERRORS)
    csv_name = rep.errors_path.name if rep.errors_path else f"errors_{rep.head.name}.csv"
    lines += [f"The {shown} most confident of {len(rep.errors)} listed in "
              f"[{csv_name}]({csv_name}).", ""]
    if rep.n_explained:
        link = f"{EXPLANATIONS_FILE}#{rep.head.name}"
        lines += [f"Token attributions of the {rep.n_explained} most confident: "
                  f"[{EXPLANATIONS_FILE}]({link}).", ""]
    return [*lines, md_table(header, rows), ""]


def render_report(metrics: dict[str, Any], reports: Sequence[HeadReport],
                  terms: AspectTermsReport | None = None) -> str:
    """report.md: title, summary table, one section per head, then the aspect terms."""
    lines = header_lines(metrics)
    if metrics.get("unknown_gold_keys"):
        keys = ", ".join(f"`{k}`" for k in metrics["unknown_gold_keys"][:20])
        lines += [f"**Warning:** gold keys the model does not predict (not scored): {keys}", ""]
    if reports:
        lines += _summary_section(reports)
    for rep in reports:
        lines += _head_section(rep)
    if terms is not None:
        lines += _aspect_terms_section(terms)
    elif "aspect_terms" in metrics:
        lines += ["## Aspect terms", "", "The pipeline has senti_aspects, but no document of "
                  "the data carries gold terms (`doc.spans`): not evaluated.", ""]
    return "\n".join(lines)


def _aspect_terms_section(terms: AspectTermsReport) -> list[str]:
    counts = terms.error_counts()
    n_gold, n_pred = terms.score("terms_n_gold"), terms.score("terms_n_pred")
    lines = [f"## Aspect terms (`{terms.component}`)", "",
             f"{terms.n} documents annotated with terms (`doc.spans[{terms.spans_key!r}]`): "
             f"{n_gold} gold terms, {n_pred} predicted; {counts['missed']} missed, "
             f"{counts['spurious']} predicted that are not gold, {counts['wrong_polarity']} found "
             f"with the wrong polarity; {counts['docs_correct']} documents entirely right.", ""]
    on = terms.score("polarity_on") or "gold terms"
    rows = [
        ("terms (exact span)", terms.score("terms_p"), terms.score("terms_r"),
         terms.score("terms_f")),
        ("pairs (span and polarity)", terms.score("pairs_p"), terms.score("pairs_r"),
         terms.score("pairs_f")),
    ]
    lines += [md_table(["extraction", "precision", "recall", "F1"], rows), "",
              f"Polarity on the {on}: accuracy {_fmt(terms.score('polarity_acc'))}, "
              f"macro-F1 {_fmt(terms.score('polarity_macro_f'))} "
              f"({len(terms.polarity_pairs)} terms).", ""]
    per_type = terms.score("polarity_per_type") or {}
    if per_type:
        rows = [(lab, s["p"], s["r"], s["f"], terms.support.get(lab, 0))
                for lab, s in per_type.items()]
        lines += ["### Per polarity", "",
                  md_table(["polarity", "precision", "recall", "F1", "support"], rows), ""]
    if terms.confusion is not None:
        header = ["gold \\ predicted", *terms.confusion_labels]
        rows = [(lab, *row) for lab, row in zip(terms.confusion_labels,
                                                terms.confusion.tolist())]
        lines += ["### Confusion (gold terms)", "", "Rows: gold polarity; columns: predicted.",
                  "", md_table(header, rows), ""]
    if terms.figures:
        titles = {"confusion": "polarity confusion matrix", "f1": "per-polarity F1"}
        lines += ["### Figures", ""]
        lines += [f"![aspect terms {titles[k]}]({p.name})" for k, p in terms.figures.items()]
        lines.append("")
    if terms.sample_path is not None:
        name = terms.sample_path.name
        lines += [f"Rendered sentences (displaCy spans, predicted terms with the gold terms "
                  f"listed): [{name}]({name}), {terms.n_sample_errors} with errors and "
                  f"{terms.n_sample_correct} correct.", ""]
    return lines
