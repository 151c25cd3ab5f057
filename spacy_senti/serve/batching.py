"""Micro-batching: concurrent requests share one model call.

Requests go into a bounded asyncio queue; one worker task takes the first request, then
collects more until ``max_batch`` texts or ``max_wait_ms`` have passed (the wait only applies
while requests are arriving concurrently: a lone request is served at once), runs the predict
function in a thread and resolves each request's future. If a batched call fails, each
request of the batch is retried alone, so one bad request fails alone and the rest succeed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

PredictFn = Callable[[list[str], bool], list[dict[str, Any]]]


class QueueFullError(RuntimeError):
    """The request queue is full; the client should retry later."""


@dataclass
class _Job:
    texts: list[str]
    explain: bool
    future: asyncio.Future = field(repr=False)


class MicroBatcher:
    """Bounded queue + one worker that batches texts for ``predict(texts, explain)``."""

    def __init__(self, predict: PredictFn, *, max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256) -> None:
        self.predict = predict
        self.max_batch = max_batch
        self.max_wait = max_wait_ms / 1000.0
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._task: asyncio.Task | None = None
        self._last_jobs = 0

    @property
    def queued(self) -> int:
        return self.queue.qsize()

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def submit(self, texts: list[str], explain: bool = False) -> list[dict[str, Any]]:
        """Queue texts and wait for their results; QueueFullError when the queue is full."""
        future = asyncio.get_running_loop().create_future()
        try:
            self.queue.put_nowait(_Job(list(texts), explain, future))
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.queue.maxsize} requests queued") from None
        return await future

    async def _collect(self) -> list[_Job]:
        loop = asyncio.get_running_loop()
        jobs = [await self.queue.get()]
        n_texts = len(jobs[0].texts)
        # wait for more only under concurrency (the last batch had several requests), so a
        # lone client does not pay max_wait_ms on every request
        wait = self.max_wait if self._last_jobs > 1 else 0.0
        deadline = loop.time() + wait
        while n_texts < self.max_batch:
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                await asyncio.sleep(min(remaining, 0.001))
                continue
            jobs.append(job)
            n_texts += len(job.texts)
        self._last_jobs = len(jobs)
        return jobs

    async def _worker(self) -> None:
        while True:
            jobs = await self._collect()
            try:
                await self._process(jobs)
            except Exception:  # pragma: no cover - _process resolves every future itself
                logger.exception("micro-batch worker error")

    async def _process(self, jobs: list[_Job]) -> None:
        jobs = [job for job in jobs if not job.future.done()]  # drop cancelled requests
        if not jobs:
            return
        texts = [t for job in jobs for t in job.texts]
        explain = any(job.explain for job in jobs)
        try:
            results = await asyncio.to_thread(self.predict, texts, explain)
        except Exception as err:
            if len(jobs) == 1:
                _fail(jobs[0], err)
                return
            for job in jobs:  # isolate the failing request(s)
                await self._process_one(job)
            return
        start = 0
        for job in jobs:
            chunk = results[start:start + len(job.texts)]
            start += len(job.texts)
            if not job.future.done():
                job.future.set_result(chunk)

    async def _process_one(self, job: _Job) -> None:
        try:
            results = await asyncio.to_thread(self.predict, job.texts, job.explain)
        except Exception as err:
            _fail(job, err)
            return
        if not job.future.done():
            job.future.set_result(results)


def _fail(job: _Job, error: BaseException) -> None:
    logger.error("model error on a request of %d text(s): %r", len(job.texts), error)
    if not job.future.done():
        job.future.set_exception(error)
