"""The header every bench table starts with: command, date, machine, CPU flags, load, versions.

    from _common import header          # bench/ is on sys.path when a bench script runs
    lines = ["# Title", "", *header(command_line(), packages=("spacy", "torch")), ""]

``machine()`` names the CPU (``/proc/cpuinfo``) and the CPUs this process may use (``nproc``),
``cpu_flags()`` which of the instruction-set extensions that decide int8 / transformer speed
are present (avx2, avx512f, avx512_vnni, avx_vnni, amx_*), ``load()`` the 1/5/15-minute load
average (the machines are shared: a high load means noisy timings), ``versions()`` the
installed versions of the packages a bench depends on.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CPUINFO = Path("/proc/cpuinfo")
# Extensions that decide int8 (ONNX Runtime QInt8, torch) and transformer throughput.
INT8_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni")
AMX_PREFIX = "amx"  # amx_tile, amx_int8, amx_bf16, amx_fp16 ... (Sapphire Rapids and later)
PACKAGES = ("spacy", "spacy-transformers", "transformers", "torch", "spacy-senti")


def _cpuinfo(path: Path = CPUINFO) -> list[str]:
    try:
        return path.read_text(encoding="utf8", errors="replace").splitlines()
    except OSError:
        return []


def _field(lines: Iterable[str], *names: str) -> str | None:
    """The value of the first ``name : value`` line of /proc/cpuinfo with one of ``names``."""
    for line in lines:
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in names:
            return value.strip()
    return None


def cpu_model(path: Path = CPUINFO) -> str:
    """The CPU's model name (/proc/cpuinfo), else what ``platform`` knows."""
    name = _field(_cpuinfo(path), "model name", "hardware", "cpu model")
    return name or platform.processor() or platform.machine() or "unknown CPU"


def nproc() -> int:
    """CPUs this process may run on (what ``nproc`` prints; honours affinity / cgroups cpusets)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def cpu_flags(path: Path = CPUINFO) -> dict[str, bool] | None:
    """Presence of each of ``INT8_FLAGS`` and of every ``amx_*`` flag; None if unknown.

    Without any AMX flag the dict holds ``"amx_*": False``.
    """
    flags = _field(_cpuinfo(path), "flags")
    if flags is None:
        return None
    present = set(flags.split())
    out = {flag: flag in present for flag in INT8_FLAGS}
    amx = sorted(f for f in present if f.startswith(AMX_PREFIX))
    out.update({f: True for f in amx} if amx else {f"{AMX_PREFIX}_*": False})
    return out


def flags_line(path: Path = CPUINFO) -> str:
    """``present: avx2, avx512f; absent: avx512_vnni, avx_vnni, amx_*`` (or why unknown)."""
    flags = cpu_flags(path)
    if flags is None:
        return f"unknown (no x86 flags in {path}; {platform.machine()})"
    present = [f for f, on in flags.items() if on]
    absent = [f for f, on in flags.items() if not on]
    return f"present: {', '.join(present) or 'none'}; absent: {', '.join(absent) or 'none'}"


def device(gpu_id: int = -1) -> str:
    """``2 CPUs (`nproc`), AMD EPYC 7B13`` (``GPU <name> + ...`` when ``gpu_id`` >= 0)."""
    n, total = nproc(), os.cpu_count()
    cpus = f"{n} CPUs (`nproc`" + (f"; {total} on the machine)" if total and total != n else ")")
    where = f"{cpus}, {cpu_model()}"
    if gpu_id >= 0:
        import torch

        where = f"GPU {torch.cuda.get_device_name(gpu_id)} + {where}"
    return where


def machine(gpu_id: int = -1) -> str:
    """``2 CPUs (`nproc`), AMD EPYC 7B13, x86_64, Python 3.11.7`` (a GPU first if used)."""
    return f"{device(gpu_id)}, {platform.machine()}, Python {platform.python_version()}"


def load() -> str:
    """The 1/5/15-minute load average, ``1.52 / 1.31 / 1.20``."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except (AttributeError, OSError):
        return "unavailable"


def versions(*packages: str) -> str:
    """``spacy 3.8.18, torch 2.13.0+cpu, ray (not installed)``; default: ``PACKAGES``."""
    out = []
    for name in packages or PACKAGES:
        try:
            out.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            out.append(f"{name} (not installed)")
    return ", ".join(out)


def command_line(argv: Sequence[str] | None = None) -> str:
    """``python bench/x.py --flag value``: the running command, script path repo-relative."""
    argv = list(sys.argv if argv is None else argv)
    if argv:
        script = Path(argv[0])
        if script.is_absolute() and script.is_relative_to(REPO):
            argv[0] = str(script.relative_to(REPO))
    return shlex.join(["python", *argv])


def shown_path(path: str | Path) -> str:
    """``path`` relative to the repository root when it lies inside it or beside it
    (``../shared/data/x``), else as given: no machine-specific prefix in committed tables."""
    # the path as written first (../shared may be a symlink), then with links resolved
    for candidate in (Path(os.path.abspath(path)), Path(path).resolve()):
        for base, prefix in ((REPO, ""), (REPO.parent, "../")):
            if candidate.is_relative_to(base):
                return prefix + candidate.relative_to(base).as_posix()
    return str(path)


def now() -> str:
    """``2026-11-29 13:55 UTC``."""
    return f"{dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC"


def header(
    command: str,
    *,
    seeds: Iterable[int] | str | None = None,
    packages: Sequence[str] = PACKAGES,
    gpu_id: int = -1,
    when: str = "at start",
    extra: Sequence[str] = (),
) -> list[str]:
    """The Markdown bullet lines a bench writes at the top of its table.

    ``command``: what was run (see ``command_line``); ``seeds``: listed if given; ``when``:
    when the load average was read; ``extra``: more bullets (without the ``- ``) appended.
    """
    lines = [
        f"- Command: `{command.strip()}`",
        f"- Date: {now()}",
        f"- Machine: {machine(gpu_id)}",
        f"- CPU flags (int8 / transformer speed): {flags_line()}",
        f"- Load average (1/5/15 min, {when}): {load()} on {nproc()} CPUs",
        f"- Versions: {versions(*packages)}",
    ]
    if seeds is not None:
        shown = seeds if isinstance(seeds, str) else ", ".join(str(s) for s in seeds)
        lines.append(f"- Seeds: {shown}")
    lines += [f"- {line}" for line in extra]
    return lines
