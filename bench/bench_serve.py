"""Load test of ``spacy-senti serve`` from a second process on 127.0.0.1.

Starts the server in a subprocess per backend (ONNX int8 export, and the spaCy pipeline),
then a bounded asyncio httpx client sends single short texts (SST-2 dev sentences) at
concurrency 1, 8 and 32 for ``--duration`` seconds each (20 s by default, not 60 s, as the 2
CPUs are shared), and reports p50/p95/p99 latency, throughput, errors and server RSS.
Writes ``bench/results/serve.md``.

    .venv/bin/python bench/bench_serve.py [--onnx DIR] [--pipeline DIR] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import platform
import socket
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
WORK = REPO / "training" / "bench_onnx"
DEV = REPO.parent / "shared" / "data" / "sst2" / "dev.tsv"
LEVELS = (1, 8, 32)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(model: Path, port: int, threads: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-m", "spacy_senti.cli", "serve", str(model), "--port", str(port),
         "--threads", str(threads), "--max-batch", "32", "--max-wait-ms", "5"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"server for {model} did not start")


async def load(url: str, texts: list[str], concurrency: int, duration: float) -> dict:
    latencies: list[float] = []
    errors = 0
    stop = time.perf_counter() + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def user(offset: int) -> None:
            nonlocal errors
            i = offset
            while time.perf_counter() < stop:
                start = time.perf_counter()
                try:
                    r = await client.post(url, json={"text": texts[i % len(texts)]})
                    ok = r.status_code == 200
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start) if ok else None
                errors += 0 if ok else 1
                i += concurrency

        begin = time.perf_counter()
        await asyncio.gather(*[user(k) for k in range(concurrency)])
        elapsed = time.perf_counter() - begin
    ms = np.asarray(latencies) * 1000
    return {"n": len(ms), "errors": errors, "rps": len(ms) / elapsed,
            **{f"p{q}": float(np.percentile(ms, q)) for q in (50, 95, 99)}}


def run_backend(label: str, model: Path, texts: list[str], duration: float,
                threads: int) -> list[str]:
    port = free_port()
    proc = start_server(model, port, threads)
    url = f"http://127.0.0.1:{port}/v1/analyze"
    try:
        asyncio.run(load(url, texts, 4, 2.0))  # warm-up
        before = rss_mb(proc.pid)
        rows = []
        for level in LEVELS:
            res = asyncio.run(load(url, texts, level, duration))
            rows.append(
                f"| {label} | {level} | {res['p50']:.1f} | {res['p95']:.1f} | {res['p99']:.1f} |"
                f" {res['rps']:.0f} | {res['n']:,} | {res['errors']} |"
            )
            print(rows[-1], flush=True)
        after = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)
    rows.append(f"| {label} | RSS before / after load: {before:.0f} / {after:.0f} MB |"
                " | | | | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--onnx", default=str(WORK / "onnx"))
    parser.add_argument("--pipeline", default=str(WORK / "model-last"))
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(REPO / "bench/results/serve.md"))
    args = parser.parse_args()
    lines = DEV.read_text(encoding="utf8").splitlines()[1:]
    texts = [line.split("\t")[0].strip() for line in lines]
    texts = [t for t in texts if len(t.split()) <= 20]  # single short texts
    rows: list[str] = []
    for label, model in [("ONNX int8", Path(args.onnx)), ("spaCy (PyTorch)", Path(args.pipeline))]:
        if model.exists():
            rows += run_backend(label, model, texts, args.duration, args.threads)
    versions = ", ".join(f"{n} {metadata.version(n)}" for n in
                         ["fastapi", "uvicorn", "httpx", "onnxruntime", "torch", "spacy"])
    report = [
        "# `spacy-senti serve` under load",
        "",
        f"- Command: `python bench/bench_serve.py --duration {args.duration:g} "
        f"--threads {args.threads}` (run `python bench/bench_onnx.py` first: it trains and "
        "exports the models)",
        f"- Machine: {os.cpu_count()} CPUs shared by server, client and other jobs; "
        f"Python {platform.python_version()}",
        f"- Date: {dt.date.today().isoformat()}",
        f"- Versions: {versions}",
        f"- Server: 1 uvicorn worker, model threads {args.threads}, --max-batch 32 "
        "--max-wait-ms 5; client: a second process, asyncio + httpx keep-alive, one short "
        "SST-2 dev sentence (<= 20 words) per request",
        f"- Each concurrency level runs {args.duration:g} s (not 60 s: shared CPU).",
        "",
        "| backend | concurrency | p50 ms | p95 ms | p99 ms | req/s | requests | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *rows,
    ]
    Path(args.out).write_text("\n".join(report) + "\n", encoding="utf8")
    print("\n".join(report))


if __name__ == "__main__":
    main()
