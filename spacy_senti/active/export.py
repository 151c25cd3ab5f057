"""Annotation-tool exports of selected texts: Prodigy JSONL and Label Studio JSON.

Selections scored on aspect terms (``Selection.terms`` set) also carry the predicted terms:
Prodigy ``spans`` + ``tokens`` (for ``spans.manual`` / ``ner.manual``, polarity as the span
label) and Label Studio ``labels`` pre-annotations under the name ``aspect_terms``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..heads import Head
from .select import ASPECT_TERMS, Selection


def prodigy_task(sel: Selection, heads: Sequence[Head], strategy: str) -> dict[str, Any]:
    """A Prodigy task: ``text``, ``meta``, and for one head its ``options`` (choice UI, with
    the model's prediction pre-selected in ``accept``) and ``label`` (binary UI)."""
    task: dict[str, Any] = {
        "text": sel.text,
        "meta": {"score": round(sel.score, 4), "strategy": strategy, "index": sel.index},
    }
    if len(heads) == 1:
        head = heads[0]
        predicted = head.predicted_labels(sel.probs[head.name])
        task["options"] = [{"id": o, "text": o} for o in head.label_names]
        task["accept"] = predicted
        if head.single_label and predicted:
            task["label"] = predicted[0]
        task["meta"]["head"] = head.name
    if sel.terms is not None:
        task["tokens"] = sel.tokens or []
        task["spans"] = [{k: v for k, v in term.items() if k != "score"} for term in sel.terms]
        task["meta"]["terms"] = [f"{t['text']} ({t['label']} {t['score']})" for t in sel.terms]
        if not heads:
            task["meta"]["head"] = ASPECT_TERMS
    return task


def label_studio_task(sel: Selection, heads: Sequence[Head], strategy: str,
                      model_version: str = "spacy-senti") -> dict[str, Any]:
    """A Label Studio import task with the model's predictions as pre-annotations."""
    result = [
        {
            "from_name": head.name,
            "to_name": "text",
            "type": "choices",
            "value": {"choices": head.predicted_labels(sel.probs[head.name])},
        }
        for head in heads
    ]
    result += [
        {
            "from_name": ASPECT_TERMS,
            "to_name": "text",
            "type": "labels",
            "value": {"start": t["start"], "end": t["end"], "text": t["text"],
                      "labels": [t["label"]]},
            "score": t["score"],
        }
        for t in sel.terms or []
    ]
    return {
        "data": {"text": sel.text, "score": round(sel.score, 4), "strategy": strategy},
        "predictions": [{"model_version": model_version, "score": round(1 - sel.score, 4),
                         "result": result}],
    }


def label_studio_config(heads: Sequence[Head],
                        term_labels: Sequence[str] | None = None) -> str:
    """The labelling interface XML matching :func:`label_studio_task`; ``term_labels``
    (the aspect term polarities) adds a span ``Labels`` block named ``aspect_terms``."""
    blocks = []
    if term_labels is not None:
        options = "".join(f'<Label value="{o}"/>' for o in term_labels)
        blocks.append(f'  <Labels name="{ASPECT_TERMS}" toName="text">{options}</Labels>')
    for head in heads:
        choice = "single" if head.single_label else "multiple"
        options = "".join(f'<Choice value="{o}"/>' for o in head.label_names)
        blocks.append(f'  <Choices name="{head.name}" toName="text" choice="{choice}">'
                      f"{options}</Choices>")
    return "<View>\n  <Text name=\"text\" value=\"$text\"/>\n" + "\n".join(blocks) + "\n</View>\n"


def write_prodigy(selections: Sequence[Selection], heads: Sequence[Head], strategy: str,
                  path: Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf8") as fh:
        for sel in selections:
            fh.write(json.dumps(prodigy_task(sel, heads, strategy), ensure_ascii=False) + "\n")
    return path


def write_label_studio(selections: Sequence[Selection], heads: Sequence[Head],
                       strategy: str, path: Path, model_version: str = "spacy-senti",
                       term_labels: Sequence[str] | None = None) -> Path:
    """Write the tasks JSON and, next to it, ``<name>.config.xml`` (the labelling UI);
    ``term_labels``: the aspect term polarities, when the selections carry terms."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tasks = [label_studio_task(s, heads, strategy, model_version) for s in selections]
    path.write_text(json.dumps(tasks, ensure_ascii=False, indent=1), encoding="utf8")
    path.with_suffix(".config.xml").write_text(label_studio_config(heads, term_labels),
                                                  encoding="utf8")
    return path
