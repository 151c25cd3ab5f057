"""Markdown + PNG + JSON report of a :class:`~spacy_senti.monitor.drift.DriftResult`."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from .drift import DriftResult

FIGURE = "drift.png"


def markdown(result: DriftResult, reference: str = "reference", current: str = "current",
             figure: str | None = FIGURE) -> str:
    """The report as Markdown (a table of measures, the verdict and the figure)."""
    verdict = "**DRIFT DETECTED**" if result.drifted else "no drift"
    lines = [
        "# Drift report", "",
        f"- reference: `{reference}` ({result.n_reference} texts)",
        f"- current: `{current}` ({result.n_current} texts)",
        f"- verdict: {verdict}", "",
        "| measure | value | threshold | reference | current | drift | note |",
        "|---|---:|---:|---:|---:|:-:|---|",
    ]
    for m in result.metrics:
        lines.append(
            f"| {m.name} | {m.value:.3f} | {m.threshold:g} | {_f(m.reference)} | "
            f"{_f(m.current)} | {'yes' if m.drifted else 'no'} | {m.note} |"
        )
    lines += [
        "",
        f"Text length KS test: D = {result.ks_statistic:.3f}, p = {result.ks_pvalue:.2g} "
        "(reported, not used for the verdict: with thousands of texts tiny shifts are "
        "significant).",
        "",
        "PSI: < 0.1 stable, 0.1-0.2 moderate shift, > threshold drift. Vocabulary measures "
        "are the relative change of the rate.",
    ]
    if figure:
        lines += ["", f"![reference vs current]({figure})"]
    return "\n".join(lines) + "\n"


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def figure(result: DriftResult, path: Path) -> Path:
    """Histograms (continuous) and bar charts (labels) of reference vs current."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    items = list(result.samples.items())
    cols = min(3, len(items))
    rows = int(np.ceil(len(items) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.5 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, (ref, cur)) in zip(axes.flat, items):
        if isinstance(ref, np.ndarray):
            bins = np.histogram_bin_edges(np.concatenate([ref, cur]), bins=20)
            ax.hist(ref, bins=bins, alpha=0.55, density=True, label="reference")
            ax.hist(cur, bins=bins, alpha=0.55, density=True, label="current")
        else:
            rc, cc = Counter(ref), Counter(cur)
            cats = sorted(set(rc) | set(cc), key=lambda c: -rc[c])[:12]
            x = np.arange(len(cats))
            ax.bar(x - 0.2, [rc[c] / max(len(ref), 1) for c in cats], 0.4, label="reference")
            ax.bar(x + 0.2, [cc[c] / max(len(cur), 1) for c in cats], 0.4, label="current")
            ax.set_xticks(x, cats, rotation=30, ha="right", fontsize=8)
        ax.set_title(name, fontsize=10)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(items):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(result: DriftResult, output: Path, reference: str = "reference",
                 current: str = "current") -> list[Path]:
    """Write ``report.md``, ``drift.png`` and ``drift.json`` to ``output``."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    png = figure(result, output / FIGURE)
    md = output / "report.md"
    md.write_text(markdown(result, reference, current), encoding="utf8")
    js = output / "drift.json"
    js.write_text(json.dumps(result.to_dict(), indent=2), encoding="utf8")
    return [md, png, js]
