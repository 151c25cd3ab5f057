"""A small JSON checkpoint next to OUTPUT, rewritten atomically after every flushed batch.

It records how many input rows are in the output and where the output's last complete batch
ends (a byte offset for JSONL, a part count for Parquet). A rerun with ``--resume`` checks that
the input and settings are the same, truncates whatever follows that point, skips that many
input rows and carries on, so no row is scored twice or lost.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1


def checkpoint_path(output: Path) -> Path:
    output = Path(output)
    return output.with_name(output.name + ".checkpoint.json")


def input_fingerprint(path: Path) -> dict[str, Any]:
    """What identifies the input file: its resolved path, size and modification time."""
    st = Path(path).stat()
    return {"path": str(Path(path).resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class Checkpoint:
    """Progress of one scoring run."""

    input: dict[str, Any]
    settings: dict[str, Any]
    rows_done: int = 0
    batches_done: int = 0
    output_position: int = 0
    n_errors: int = 0
    error_rows: list[list[Any]] = field(default_factory=list)  # [[row number, reason], ...]
    complete: bool = False
    version: int = VERSION

    def save(self, path: Path) -> None:
        """Write atomically: a temp file, fsync, then rename over the old checkpoint."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(asdict(self), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> Checkpoint | None:
        path = Path(path)
        if not path.exists():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            return None
        return cls(**data)

    def mismatch(self, input_fp: dict[str, Any], settings: dict[str, Any]) -> str | None:
        """Why this checkpoint cannot be resumed with this input and these settings."""
        if self.input != input_fp:
            return f"the input changed (checkpoint: {self.input}, now: {input_fp})"
        changed = {k for k in set(settings) | set(self.settings)
                   if settings.get(k) != self.settings.get(k)}
        if changed:
            return f"settings changed: {sorted(changed)}"
        return None
