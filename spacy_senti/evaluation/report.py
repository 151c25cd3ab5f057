"""Evaluation report of ``senti_textcat``: metrics.json, PNG figures, error CSVs, report.md.

``write_report(examples, heads, output_dir, ...)`` takes Examples whose ``predicted`` docs hold
the model's ``doc.cats`` and whose ``reference`` docs hold the gold ``doc.cats``. The metrics
are ``score_heads``' (scikit-learn); calibration is in ``calibration.py``, drawing in
``figures.py``.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import srsly
from sklearn.metrics import confusion_matrix, multilabel_confusion_matrix
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example

from ..schema import SEP, HeadSpec
from . import figures
from .calibration import DEFAULT_BINS, ReliabilityBins, calibration_pairs, reliability_bins
from .scorer import PREFIX, grouped_decisions, head_arrays, multilabel_predictions, score_heads

if TYPE_CHECKING:
    from ..components.textcat import SentiTextCategorizer

MARKDOWN_ERRORS = 10
MARKDOWN_TEXT_CHARS = 100


class EvaluationInputError(ValueError):
    """The model or the data cannot be evaluated (missing gold annotations, no component)."""


# --- inputs ----------------------------------------------------------------------------------
def find_component(nlp: Language, name: str = "senti_textcat") -> SentiTextCategorizer:
    """The ``senti_textcat`` component called ``name`` (or the only one in the pipeline)."""
    from ..components.textcat import SentiTextCategorizer

    if name in nlp.component_names and isinstance(nlp.get_pipe(name), SentiTextCategorizer):
        return nlp.get_pipe(name)
    found = [pipe for _, pipe in nlp.pipeline if isinstance(pipe, SentiTextCategorizer)]
    if len(found) == 1:
        return found[0]
    raise EvaluationInputError(
        f"The pipeline has no senti_textcat component called {name!r} (components: "
        f"{nlp.component_names}). Pass the right name with --component."
    )


def gold_keys(docs: Iterable[Doc]) -> set[str]:
    """Every ``doc.cats`` key found in ``docs``."""
    return {key for doc in docs for key in doc.cats}


def check_gold(docs: Sequence[Doc], heads: Sequence[HeadSpec], source: str = "the data") -> None:
    """Raise EvaluationInputError unless some doc annotates one of ``heads``."""
    if not docs:
        raise EvaluationInputError(f"{source} holds no documents.")
    if any(head.is_annotated(doc.cats) for doc in docs for head in heads):
        return
    keys = sorted(gold_keys(docs))
    shown = ", ".join(repr(k) for k in keys[:20]) + (" ..." if len(keys) > 20 else "")
    raise EvaluationInputError(
        f"{source} has no gold annotations for the pipeline's heads "
        f"{[h.name for h in heads]}: expected doc.cats keys like "
        f"{[h.keys()[0] for h in heads if h.keys()]}, found "
        f"{shown or 'no doc.cats keys at all'}."
    )


def unknown_gold_keys(docs: Iterable[Doc], heads: Sequence[HeadSpec]) -> list[str]:
    """Gold keys of the heads' namespaces that the model does not predict (ignored in scores)."""
    known = {key for head in heads for key in head.keys()}
    prefixes = tuple(head.name + SEP for head in heads)
    absent = {
        f"{h.name}{SEP}{g}{SEP}absent" for h in heads if h.kind == "grouped" for g in h.groups
    }
    return sorted(
        k for k in gold_keys(docs) if k.startswith(prefixes) and k not in known | absent
    )


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

    head: HeadSpec
    n: int
    scores: dict[str, Any]
    bins: ReliabilityBins | None = None
    confusion_labels: list[str] = field(default_factory=list)
    confusion: np.ndarray | None = None
    support: dict[str, int] = field(default_factory=dict)
    groups: list[dict[str, Any]] = field(default_factory=list)
    errors: list[ErrorRow] = field(default_factory=list)
    figures: dict[str, Path] = field(default_factory=dict)
    errors_path: Path | None = None

    @property
    def ece(self) -> float | None:
        return self.bins.ece if self.bins is not None and self.n else None

    def score(self, name: str) -> Any:
        return self.scores.get(f"{PREFIX}{self.head.name}_{name}")


def most_confident_errors(
    head: HeadSpec, texts: Sequence[str], gold: np.ndarray, pred: np.ndarray, n: int
) -> list[ErrorRow]:
    """The ``n`` wrong decisions with the highest confidence in the wrong answer.

    exclusive: docs whose top class is wrong, confidence = its probability; multilabel:
    (doc, label) decisions at the label's threshold that are wrong, confidence = p for a false
    positive and 1 - p for a false negative; grouped: (doc, group) whose top class (``absent``
    included) is wrong, confidence = its probability.
    """
    rows: list[ErrorRow] = []
    if head.kind == "exclusive":
        chosen, truth = pred.argmax(axis=1), gold.argmax(axis=1)
        for i in np.flatnonzero(chosen != truth):
            rows.append(ErrorRow(texts[i], head.labels[truth[i]], head.labels[chosen[i]],
                                 float(pred[i, chosen[i]])))
    elif head.kind == "multilabel":
        decided, truth = multilabel_predictions(head, pred), (gold >= 0.5).astype("i")
        for i, j in zip(*np.nonzero(decided != truth), strict=True):
            p = float(pred[i, j])
            confidence = p if decided[i, j] else 1.0 - p
            rows.append(ErrorRow(texts[i], str(truth[i, j]), str(decided[i, j]), confidence,
                                 head.labels[j]))
    else:
        n_pol = len(head.polarities)
        values = pred.reshape(len(pred), -1, n_pol)
        chosen, truth = grouped_decisions(head, pred), grouped_decisions(head, gold)
        for i, g in zip(*np.nonzero(chosen != truth), strict=True):
            rows.append(ErrorRow(texts[i], head.polarities[truth[i, g]],
                                 head.polarities[chosen[i, g]], float(values[i, g, chosen[i, g]]),
                                 head.groups[g]))
    rows.sort(key=lambda row: -row.confidence)
    return rows[:n]


def confusion(head: HeadSpec, gold: np.ndarray, pred: np.ndarray) -> tuple[list[str], np.ndarray]:
    """exclusive: labels x labels; grouped: polarities (``absent`` first), pooled over groups;
    multilabel: per label the counts TP, FN, FP, TN."""
    if head.kind == "exclusive":
        labels = list(range(len(head.labels)))
        return list(head.labels), confusion_matrix(gold.argmax(1), pred.argmax(1), labels=labels)
    if head.kind == "grouped":
        truth, chosen = grouped_decisions(head, gold), grouped_decisions(head, pred)
        labels = list(range(len(head.polarities)))
        return head.polarities, confusion_matrix(truth.ravel(), chosen.ravel(), labels=labels)
    truth, decided = (gold >= 0.5).astype("i"), multilabel_predictions(head, pred)
    mcm = multilabel_confusion_matrix(truth, decided, labels=list(range(len(head.labels))))
    # sklearn: [[TN, FP], [FN, TP]] per label
    counts = np.stack([mcm[:, 1, 1], mcm[:, 1, 0], mcm[:, 0, 1], mcm[:, 0, 0]], axis=1)
    return list(head.labels), counts


def label_support(head: HeadSpec, gold: np.ndarray) -> dict[str, int]:
    """Gold positives per label (grouped: per ``group/polarity``)."""
    if head.kind == "exclusive":
        counts = np.bincount(gold.argmax(axis=1), minlength=len(head.labels))
        return dict(zip(head.labels, counts.tolist(), strict=True))
    if head.kind == "multilabel":
        positives = (gold >= 0.5).sum(axis=0).astype(int).tolist()
        return dict(zip(head.labels, positives, strict=True))
    truth = grouped_decisions(head, gold)
    return {
        f"{g}/{p}": int((truth[:, gi] == pi).sum())
        for gi, g in enumerate(head.groups)
        for pi, p in enumerate(head.polarities)
        if pi > 0
    }


def group_rows(head: HeadSpec, gold: np.ndarray, pred: np.ndarray) -> list[dict[str, Any]]:
    """Per group of a grouped head: gold/predicted presence, detection F1, polarity accuracy."""
    truth, chosen = grouped_decisions(head, gold), grouped_decisions(head, pred)
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
    head: HeadSpec,
    scores: dict[str, Any],
    *,
    n_errors: int = 50,
    n_bins: int = DEFAULT_BINS,
) -> HeadReport:
    """Confusion, calibration, support and top errors of one head."""
    annotated = [eg for eg in examples if head.is_annotated(eg.reference.cats)]
    prefix = f"{PREFIX}{head.name}_"
    own = {k: v for k, v in scores.items() if k.startswith(prefix)}
    report = HeadReport(head=head, n=len(annotated), scores=own)
    if not annotated:
        return report
    gold, pred = head_arrays(annotated, head)
    texts = [eg.reference.text for eg in annotated]
    report.bins = reliability_bins(*calibration_pairs(head, gold, pred), n_bins=n_bins)
    report.confusion_labels, report.confusion = confusion(head, gold, pred)
    report.support = label_support(head, gold)
    report.errors = most_confident_errors(head, texts, gold, pred, n_errors)
    if head.kind == "grouped":
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
    item = {"multilabel": "label", "grouped": "group"}.get(report.head.kind)
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
        if head.kind == "multilabel":
            out["confusion"] = figures.outcome_figure(
                report.confusion_labels, report.confusion,
                f"{name}: per-label outcomes (at thresholds)", path)
        else:
            pooled = " (pooled over groups)" if head.kind == "grouped" else ""
            out["confusion"] = figures.confusion_figure(
                report.confusion, report.confusion_labels, f"{name}: confusion matrix{pooled}",
                path)
    per_type = report.score("f_per_type")
    if per_type:
        out["f1"] = figures.f1_bar_figure(per_type, report.support,
                                          f"{name}: per-label F1", output_dir / f"{name}_f1.png")
    if report.bins is not None:
        outcome = "positive rate" if head.kind == "multilabel" else "accuracy"
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
        entry: dict[str, Any] = {"kind": rep.head.kind, "n": rep.n, "ece": rep.ece,
                                 "n_bins": len(rep.bins.counts) if rep.bins else None}
        if rep.head.kind == "multilabel":
            entry["thresholds"] = {lab: rep.head.label_threshold(lab) for lab in rep.head.labels}
        heads[rep.head.name] = entry
    return {**meta, "scores": scores, "heads": heads}


def write_report(
    examples: Sequence[Example],
    heads: Sequence[HeadSpec],
    output_dir: Path,
    *,
    model_name: str = "pipeline",
    model_version: str = "",
    model_source: str = "",
    data_path: str = "",
    n_errors: int = 50,
    n_bins: int = DEFAULT_BINS,
) -> Report:
    """Score ``examples`` and write metrics.json, PNGs, errors_<head>.csv and report.md."""
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
    meta = {
        "model": {"name": model_name, "version": model_version, "source": model_source},
        "data": str(data_path),
        "n_docs": len(examples),
        "unknown_gold_keys": unknown_gold_keys((eg.reference for eg in examples), heads),
    }
    metrics = metrics_dict(scores, reports, meta)
    srsly.write_json(output_dir / "metrics.json", metrics)
    (output_dir / "report.md").write_text(render_report(metrics, reports), encoding="utf8")
    files[:0] = [output_dir / "metrics.json", output_dir / "report.md"]
    return Report(metrics=metrics, heads=reports, files=files)


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
    if rep.n == 0:
        return [*lines, "No document in the data annotates this head.", ""]
    lines += [f"{rep.n} annotated documents. accuracy {_fmt(rep.score('acc'))}, "
              f"macro-F1 {_fmt(rep.score('macro_f'))}, micro-F1 {_fmt(rep.score('micro_f'))}, "
              f"ECE {_fmt(rep.ece)}.", ""]
    per_type = rep.score("f_per_type") or {}
    rows = [(lab, s["p"], s["r"], s["f"], rep.support.get(lab, 0)) for lab, s in per_type.items()]
    lines += ["### Per-label scores", "",
              md_table(["label", "precision", "recall", "F1", "support"], rows), ""]
    if head.kind == "multilabel":
        rows = [(lab, head.label_threshold(lab), "tuned" if lab in head.thresholds else "default")
                for lab in head.labels]
        lines += ["### Thresholds used", "", md_table(["label", "threshold", "source"], rows), ""]
    if head.kind == "grouped":
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
    item = {"multilabel": "label", "grouped": "group"}.get(rep.head.kind)
    header = ["text", *([item] if item else []), "gold", "predicted", "confidence"]
    rows = [(e.text, *([e.item] if item else []), e.gold, e.predicted, e.confidence)
            for e in rep.errors[:MARKDOWN_ERRORS]]
    shown = min(len(rep.errors), MARKDOWN_ERRORS)
    csv_name = rep.errors_path.name if rep.errors_path else f"errors_{rep.head.name}.csv"
    return [*lines, f"The {shown} most confident of {len(rep.errors)} listed in "
            f"[{csv_name}]({csv_name}).", "", md_table(header, rows), ""]


def render_report(metrics: dict[str, Any], reports: Sequence[HeadReport]) -> str:
    """report.md: title, summary table, then one section per head."""
    model = metrics["model"]
    name = f"{model['name']} {model['version']}".strip()
    lines = [f"# Evaluation report: {name}", "",
             f"- model: `{model['name']}` version {model['version'] or '–'}"
             + (f", loaded from `{model['source']}`" if model.get("source") else ""),
             f"- data: `{metrics['data']}` ({metrics['n_docs']} docs)",
             f"- overall: macro-F1 {_fmt(metrics['scores'].get(PREFIX + 'macro_f'))}, "
             f"micro-F1 {_fmt(metrics['scores'].get(PREFIX + 'micro_f'))}, "
             f"accuracy {_fmt(metrics['scores'].get(PREFIX + 'acc'))} (means over heads)", ""]
    if metrics.get("unknown_gold_keys"):
        keys = ", ".join(f"`{k}`" for k in metrics["unknown_gold_keys"][:20])
        lines += [f"**Warning:** gold keys the model does not predict (not scored): {keys}", ""]
    lines += _summary_section(reports)
    for rep in reports:
        lines += _head_section(rep)
    return "\n".join(lines)
