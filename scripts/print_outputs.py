"""Print where `weasel run all` left its results: the report, headline metrics, the wheel.

    python scripts/print_outputs.py [--project-dir .]

Paths come from the ``vars`` of project.yml (config, lang, name, version).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import srsly

METRICS = (("accuracy", "acc"), ("macro-F1", "macro_f"), ("micro-F1", "micro_f"))
TERM_METRICS = (("term F1", "aspect_terms_f"), ("polarity accuracy", "aspect_polarity_acc"),
                ("polarity macro-F1", "aspect_polarity_macro_f"), ("pair F1", "aspect_pairs_f"))


def project_vars(project_dir: Path) -> dict[str, Any]:
    """The interpolated ``vars`` of ``project_dir/project.yml`` (weasel's own loader)."""
    from weasel.util import load_project_config

    return dict(load_project_config(project_dir, interpolate=True).get("vars", {}))


def output_paths(project_dir: Path, pvars: dict[str, Any]) -> dict[str, Path]:
    """Report directory and wheel of the ``all`` workflow."""
    package = f"{pvars['lang']}_{pvars['name']}-{pvars['version']}"
    return {
        "metrics": project_dir / "metrics" / str(pvars["config"]),
        "wheel": project_dir / "packages" / package / "dist" / f"{package}-py3-none-any.whl",
    }


def headline_rows(metrics: dict[str, Any]) -> list[str]:
    """One line per head: kind, n and the scores the report leads with; one for aspect terms."""
    scores = metrics.get("scores", {})
    rows = []
    for head, info in metrics.get("heads", {}).items():
        parts = [f"{label} {scores[f'senti_{head}_{key}']:.3f}" for label, key in METRICS
                 if isinstance(scores.get(f"senti_{head}_{key}"), (int, float))]
        if isinstance(info.get("ece"), (int, float)):
            parts.append(f"ECE {info['ece']:.3f}")
        rows.append(f"  {head:<10} {info.get('kind', ''):<11} n={info.get('n', '?'):<5} "
                    + ", ".join(parts))
    if isinstance(scores.get("aspect_terms_f"), (int, float)):  # senti_aspects
        parts = [f"{label} {scores[key]:.3f}" for label, key in TERM_METRICS
                 if isinstance(scores.get(key), (int, float))]
        rows.append(f"  {'terms':<10} {'spans':<11} n={scores.get('aspect_terms_n_gold', '?'):<5} "
                    + ", ".join(parts))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project-dir", type=Path, default=Path("."))
    args = parser.parse_args(argv)
    paths = output_paths(args.project_dir, project_vars(args.project_dir))
    report = paths["metrics"] / "report.md"
    metrics_file = paths["metrics"] / "metrics.json"
    ok = True
    if metrics_file.exists():
        metrics = srsly.read_json(metrics_file)
        print(f"Report:  {report}  (figures and error CSVs beside it)")
        model = metrics.get("model", {})
        print(f"Test set {metrics.get('data')} ({metrics.get('n_docs')} docs), model "
              f"{model.get('name')} {model.get('version')}:")
        print("\n".join(headline_rows(metrics)))
    else:
        ok = False
        print(f"No metrics at {metrics_file}: run `weasel run all` first.")
    wheel = paths["wheel"]
    if wheel.exists():
        print(f"Wheel:   {wheel} ({wheel.stat().st_size / 1e6:.1f} MB)")
        print(f"         pip install {wheel}  then  spacy.load(\"{wheel.name.split('-')[0]}\")")
    else:
        ok = False
        print(f"No wheel at {wheel}.")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
