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
    pass

MARKDOWN_ERRORS = 10
MARKDOWN_TEXT_CHARS = 100
EXPLANATIONS_FILE = "explanations.html"
#: most confident errors per head explained in explanations.html
N_EXPLAINED = 10




# --- inputs ----------------------------------------------------------------------------------
def gold_keys(docs: Iterable[Doc]) -> set[str]:
    """Every ``doc.cats`` key found in ``docs``."""
    return {key for doc in docs for key in doc.cats}


def check_gold(docs: Sequence[Doc], heads: Sequence[Head], source: str = "the data") -> None:
    """Raise InputError unless some doc annotates one of ``heads``."""
    if not docs:
        raise InputError(f"{source} holds no documents.")
    if any(head.is_annotated(doc.cats) for doc in docs for head in heads):
        return
    keys = sorted(gold_keys(docs))
    shown = ", ".join(repr(k) for k in keys[:20]) + (" ..." if len(keys) > 20 else "")
    raise InputError(
        f"{source} has no gold annotations for the pipeline's heads "
        f"{[h.name for h in heads]}: expected doc.cats keys like "
        f"{[h.keys()[0] for h in heads if h.keys()]}, found "
        f"{shown or 'no doc.cats keys at all'}."
    )


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


# --- writing ---------------------------------------------------------------------------------
@dataclass
class Report:
    """What ``write_report`` wrote: metrics.json's content, per-head details, the files."""

    metrics: dict[str, Any]
    heads: list[HeadReport]
    files: list[Path]


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
    return [f"# Evaluation report: {title}", "", about,
            f"- data: `{metrics['data']}` ({metrics['n_docs']} docs)",
            f"- overall: macro-F1 {_fmt(scores.get(PREFIX + 'macro_f'))}, "
            f"micro-F1 {_fmt(scores.get(PREFIX + 'micro_f'))}, "
            f"accuracy {_fmt(scores.get(PREFIX + 'acc'))} (means over heads)", ""]


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
) -> Report:
    """Score ``examples`` and write metrics.json, PNGs, errors_<head>.csv and report.md.

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
    if explain_nlp is not None and n_explained > 0:
        page = write_explanations(explain_nlp, reports, output_dir / EXPLANATIONS_FILE,
                                  n_explained)
        files.extend([page] if page is not None else [])
    meta = {
        "model": model_entry(model_meta, model_source, name=model_name,
                             version=model_version),
        "data": shown_path(data_path),
        "n_docs": len(examples),
        "unknown_gold_keys": unknown_gold_keys((eg.reference for eg in examples), heads),
    }
    metrics = metrics_dict(scores, reports, meta)
    srsly.write_json(output_dir / "metrics.json", metrics)
    (output_dir / "report.md").write_text(render_report(metrics, reports), encoding="utf8")
    files[:0] = [output_dir / "metrics.json", output_dir / "report.md"]
    return Report(metrics=metrics, heads=reports, files=files)


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


def render_report(metrics: dict[str, Any], reports: Sequence[HeadReport]) -> str:
    """report.md: title, summary table, then one section per head."""
    lines = header_lines(metrics)
    if metrics.get("unknown_gold_keys"):
        keys = ", ".join(f"`{k}`" for k in metrics["unknown_gold_keys"][:20])
        lines += [f"**Warning:** gold keys the model does not predict (not scored): {keys}", ""]
    lines += _summary_section(reports)
    for rep in reports:
        lines += _head_section(rep)
    return "\n".join(lines)
