"""PNG figures of the evaluation report, drawn with matplotlib's object API on the Agg canvas.

No pyplot state is used, so the figures work headless and in threads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .calibration import ReliabilityBins

DPI = 110


def _new_figure(width: float, height: float) -> Figure:
    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI)
    return path


def _text_colour(value: float, vmax: float) -> str:
    return "white" if vmax and value > 0.5 * vmax else "black"


def _annotated_heatmap(ax, colour: np.ndarray, text: np.ndarray, cmap: str = "Blues") -> None:
    """Draw ``colour`` as an image and write ``text`` (same shape) into the cells."""
    ax.imshow(colour, cmap=cmap, vmin=0.0, vmax=max(float(colour.max()), 1e-9), aspect="auto")
    vmax = float(colour.max())
    fontsize = 10 if colour.shape[1] <= 8 else 8
    for (i, j), label in np.ndenumerate(text):
        ax.text(j, i, label, ha="center", va="center", fontsize=fontsize,
                color=_text_colour(float(colour[i, j]), vmax))


def confusion_figure(
    matrix: np.ndarray, labels: Sequence[str], title: str, path: Path
) -> Path:
    """Gold (rows) x predicted (columns) counts; colour is the row-normalised rate."""
    matrix = np.asarray(matrix, dtype="i8")
    n = len(labels)
    size = min(3.2 + 0.6 * n, 14.0)
    fig = _new_figure(size + 1.0, size)
    ax = fig.add_subplot()
    rows = matrix.sum(axis=1, keepdims=True)
    rates = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    text = np.array([[str(v) for v in row] for row in matrix], dtype=object).reshape(n, n)
    _annotated_heatmap(ax, rates, text)
    ax.set_xticks(range(n), labels, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(title)
    return _save(fig, path)


OUTCOMES = ("TP", "FN", "FP", "TN")


def outcome_figure(
    labels: Sequence[str], counts: np.ndarray, title: str, path: Path
) -> Path:
    """Multilabel confusion: per label the counts of TP, FN, FP and TN (columns)."""
    counts = np.asarray(counts, dtype="i8").reshape(len(labels), len(OUTCOMES))
    height = min(1.6 + 0.4 * len(labels), 16.0)
    fig = _new_figure(5.5, height)
    ax = fig.add_subplot()
    rows = counts.sum(axis=1, keepdims=True)
    rates = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    text = np.array([[str(v) for v in row] for row in counts], dtype=object)
    _annotated_heatmap(ax, rates, text, cmap="Purples")
    ax.set_xticks(range(len(OUTCOMES)), OUTCOMES)
    ax.xaxis.tick_top()
    ax.set_yticks(range(len(labels)), labels)
    ax.set_title(title)
    return _save(fig, path)


def f1_bar_figure(
    per_type: Mapping[str, Mapping[str, float]],
    support: Mapping[str, int],
    title: str,
    path: Path,
) -> Path:
    """Horizontal bars of per-label F1 (sorted), with P/R ticks and the gold support."""
    names = sorted(per_type, key=lambda k: per_type[k]["f"])
    f1 = [per_type[k]["f"] for k in names]
    height = min(1.4 + 0.38 * len(names), 18.0)
    fig = _new_figure(7.0, height)
    ax = fig.add_subplot()
    ypos = np.arange(len(names))
    ax.barh(ypos, f1, color="#4c72b0", label="F1")
    ax.scatter([per_type[k]["p"] for k in names], ypos, marker="|", s=120, color="#dd8452",
               label="precision", zorder=3)
    ax.scatter([per_type[k]["r"] for k in names], ypos, marker="|", s=120, color="#55a868",
               label="recall", zorder=3)
    for y, value in zip(ypos, f1, strict=True):
        ax.text(1.02, y, f"{value:.2f}", va="center", fontsize=8)
    ax.set_yticks(ypos, [f"{k} (n={support.get(k, 0)})" for k in names])
    ax.set_xlim(0.0, 1.1)
    ax.set_xticks(np.linspace(0.0, 1.0, 6))
    ax.axvline(1.0, color="lightgrey", linewidth=0.8, zorder=0)
    ax.set_xlabel("score (F1 value at the right)")
    ax.set_title(title)
    fig.legend(loc="outside lower center", ncols=3, fontsize=8, frameon=False)
    return _save(fig, path)


def reliability_figure(
    bins: ReliabilityBins, title: str, path: Path, *, outcome_name: str = "accuracy"
) -> Path:
    """Reliability diagram (observed rate per probability bin vs the diagonal) + counts."""
    fig = _new_figure(5.5, 6.0)
    top, bottom = fig.subplots(2, 1, height_ratios=[3, 1], sharex=True)
    centres = (bins.edges[:-1] + bins.edges[1:]) / 2
    width = bins.edges[1] - bins.edges[0]
    used = bins.counts > 0
    top.bar(centres[used], bins.accuracy[used], width=width * 0.9, color="#4c72b0",
            edgecolor="black", linewidth=0.5, label=outcome_name)
    low = np.minimum(bins.confidence[used], bins.accuracy[used])
    gap = np.abs(bins.confidence[used] - bins.accuracy[used])
    top.bar(centres[used], gap, bottom=low, width=width * 0.9, facecolor="none",
            edgecolor="#c44e52", hatch="///", linewidth=0.8, label="gap to mean probability")
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfect calibration")
    top.set_xlim(0.0, 1.0)
    top.set_ylim(0.0, 1.0)
    top.set_ylabel(outcome_name)
    top.legend(loc="upper left", fontsize=8)
    top.set_title(f"{title}\nECE = {bins.ece:.3f} (n = {int(bins.counts.sum())})")
    bottom.bar(centres, bins.counts, width=width * 0.9, color="grey")
    bottom.set_xlabel("predicted probability")
    bottom.set_ylabel("count")
    return _save(fig, path)
