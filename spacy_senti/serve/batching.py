"""Micro-batching: concurrent requests share one model call, and no request holds the model.

Requests go into a bounded asyncio queue; one worker task builds each model call from the
queued requests until ``max_batch`` texts or ``max_chars`` characters, runs the predict
function in one dedicated thread and resolves each request's future. It waits for more texts
only while requests are arriving concurrently (a lone request is served at once), at most
``max_wait_ms`` in all and at most ``max_gap_ms`` after the last arrival: once a burst of
requests is in, the call starts (waiting longer would only leave the model idle: a closed
group of clients whose requests are all in the call sends nothing more until it is answered),
and not at all once the call is half full (more queued texts are still taken, up to the
limits): then one part of the clients is answered and sends its next requests while the
other part's call runs, and the model does not idle through each turnaround.
A lone request of at most ``inline_chars`` characters (0: none) runs on the event loop's own
thread instead: a short call saves the two thread wake-ups of the hand-off, which cost more
than the call itself on a busy machine; while requests arrive concurrently, calls stay in the
model thread so the loop keeps reading them.

A request larger than one call runs in several calls: each call gives up to half of itself to
the oldest such request and fills the rest with new requests first, so a large request delays
a small one by at most one call and still progresses under any load. A request
whose caller stopped waiting (time budget, disconnect) is dropped before its next call. If a
call of several requests fails, each request is retried alone, so one bad request fails alone.
``running_for`` tells how long the current call has run (``/health`` reports a stuck call).
``submit(..., timing=RequestTiming())`` records when a request was queued, started and
finished and how long its model calls ran (the service's ``Server-Timing`` header).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

# predict(texts, explain): explain holds one flag per text, so a call that batches requests
# with and without explain pays for explanations (a backward pass each) only where asked
PredictFn = Callable[[list[str], list[bool]], list[dict[str, Any]]]


class QueueFullError(RuntimeError):
    """The request queue is full; the client should retry later."""


@dataclass
class RequestTiming:
    """Where one request's time went in the batcher (``time.perf_counter`` stamps)."""

    queued: float = 0.0  # submitted
    started: float | None = None  # its first model call began
    finished: float | None = None  # its last result was delivered
    model_s: float = 0.0  # seconds of the model calls that carried its texts
    handoff_s: float = 0.0  # to the model thread and back (thread wake-ups, the GIL)
    calls: int = 0  # model calls that carried its texts
    batch: int = 0  # texts in the largest of those calls (its texts and others')


@dataclass(eq=False)
class _Job:
    texts: list[str]
    explain: bool
    future: asyncio.Future = field(repr=False)
    done: int = 0  # texts sent to the model so far
    results: list[dict[str, Any]] = field(default_factory=list, repr=False)
    timing: RequestTiming | None = field(default=None, repr=False)

    @property
    def pending(self) -> bool:
        return self.done < len(self.texts) and not self.future.done()


@dataclass
class _Slice:
    job: _Job
    start: int
    end: int

    @property
    def texts(self) -> list[str]:
        return self.job.texts[self.start:self.end]


class MicroBatcher:
    """Bounded queue + one worker that batches texts for ``predict(texts, explain)``
    (``explain``: one flag per text)."""

    def __init__(self, predict: PredictFn, *, max_batch: int = 32, max_wait_ms: float = 5.0,
                 max_queue: int = 256, max_chars: int | None = None,
                 max_gap_ms: float = 1.0, inline_chars: int = 0) -> None:
        self.predict = predict
        self.inline_chars = inline_chars
        self.max_batch = max_batch
        self.max_chars = max_chars
        self.max_wait = max_wait_ms / 1000.0
        self.max_gap = max_gap_ms / 1000.0
        self.queue: asyncio.Queue[_Job] = asyncio.Queue(maxsize=max_queue)
        self._carry: collections.deque[_Job] = collections.deque()  # partly run requests
        self._task: asyncio.Task | None = None
        self._last_jobs = 0
        self._call_started: float | None = None
        # one dedicated thread runs every model call: calls never overlap, and the model's
        # memory lives in one malloc arena (asyncio.to_thread rotates over up to 32 threads,
        # each growing its own arena: RSS crept up under varied load)
        self._executor: ThreadPoolExecutor | None = None

    @property
    def queued(self) -> int:
        return self.queue.qsize()

    @property
    def full(self) -> bool:
        return self.queue.full()

    def running_for(self) -> float:
        """Seconds the current model call has been running (0.0 when idle)."""
        started = self._call_started
        return 0.0 if started is None else time.monotonic() - started

    async def start(self) -> None:
        if self._task is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="senti-model")
            self._task = asyncio.create_task(self._worker())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def enqueue(self, texts: list[str], explain: bool = False,
                timing: RequestTiming | None = None) -> asyncio.Future:
        """Queue texts; the future gets their results. QueueFullError when the queue is full.

        Cancelling the future (e.g. ``asyncio.wait_for`` on it) cancels the request: its
        texts not yet sent to the model are dropped. ``timing``, if given, is filled in.
        """
        future = asyncio.get_running_loop().create_future()
        if not texts:
            future.set_result([])
            return future
        if timing is not None:
            timing.queued = time.perf_counter()
        try:
            self.queue.put_nowait(_Job(list(texts), explain, future, timing=timing))
        except asyncio.QueueFull:
            raise QueueFullError(f"{self.queue.maxsize} requests queued") from None
        return future

    async def submit(self, texts: list[str], explain: bool = False,
                     timing: RequestTiming | None = None) -> list[dict[str, Any]]:
        """``enqueue`` and wait for the results (cancelling the caller cancels the request)."""
        return await self.enqueue(texts, explain, timing)

    # --- the worker ----------------------------------------------------------------------------
    def _room(self, n_texts: int, n_chars: int, share: float = 1.0) -> bool:
        return n_texts < self.max_batch * share and (
            self.max_chars is None or n_chars < self.max_chars * share)

    def _half_full(self, n_texts: int, n_chars: int) -> bool:
        """A call this full starts without waiting for more: with the rest of the clients
        turning around (answer out, next request in) while it runs, the model never idles."""
        return not self._room(n_texts, n_chars, share=0.5)

    def _take(self, job: _Job, slices: list[_Slice], n_texts: int, n_chars: int,
              share: float = 1.0) -> tuple[int, int]:
        """Add as many of the job's next texts as fit in ``share`` of the call (at least one
        text to an empty call); a job with texts left is carried over to a later call."""
        if job.future.done():  # cancelled while queued
            return n_texts, n_chars
        start = end = job.done
        while end < len(job.texts) and self._room(n_texts, n_chars, share):
            size = len(job.texts[end])
            limit = None if self.max_chars is None else self.max_chars * share
            if n_texts and limit is not None and n_chars + size > limit:
                break
            n_texts, n_chars, end = n_texts + 1, n_chars + size, end + 1
        if end > start:
            slices.append(_Slice(job, start, end))
            job.done = end
        if job.pending:
            self._carry.append(job)
        return n_texts, n_chars

    async def _collect(self) -> list[_Slice]:
        """The next call: the oldest carried-over request gets up to half of it (so it
        progresses under any load), then new requests, then the other carried ones."""
        loop = asyncio.get_running_loop()
        self._carry = collections.deque(j for j in self._carry if j.pending)
        carried = len(self._carry)  # requests left over from earlier calls
        slices: list[_Slice] = []
        n_texts = n_chars = 0
        if carried:
            n_texts, n_chars = self._take(self._carry.popleft(), slices, 0, 0, share=0.5)
            carried = len(self._carry)  # the others, then this one again if it has more
        else:
            n_texts, n_chars = self._take(await self.queue.get(), slices, n_texts, n_chars)
        # wait for more only under concurrency (the last call had several requests), so a
        # lone client does not pay max_wait_ms on every request; and only while requests keep
        # arriving (max_gap after the last one)
        wait = self.max_wait if self._last_jobs > 1 else 0.0
        deadline = loop.time() + wait
        while self._room(n_texts, n_chars):
            try:
                job = self.queue.get_nowait()
            except asyncio.QueueEmpty:
                left = min(deadline - loop.time(), self.max_gap)
                if carried > 0 or left <= 0 or self._half_full(n_texts, n_chars):
                    break
                try:  # woken by the next request, not by polling
                    job = await asyncio.wait_for(self.queue.get(), left)
                except asyncio.TimeoutError:
                    break
            n_texts, n_chars = self._take(job, slices, n_texts, n_chars)
        while carried > 0 and self._room(n_texts, n_chars):
            carried -= 1
            job = self._carry.popleft()
            if job.pending:
                n_texts, n_chars = self._take(job, slices, n_texts, n_chars)
        self._last_jobs = len({id(s.job) for s in slices})
        return slices

    async def _worker(self) -> None:
        while True:
            slices = await self._collect()
            try:
                await self._process(slices)
            except Exception:  # pragma: no cover - _process resolves every future itself
                logger.exception("micro-batch worker error")

    def _inline(self, slices: list[_Slice], texts: list[str], explain: list[bool]) -> bool:
        """Run this call on the event loop's thread: one request, nobody else waiting, no
        explanation, at most ``inline_chars`` characters (a short, bounded model call)."""
        return (len(slices) == 1 and self.queue.empty() and not any(explain)
                and sum(len(t) for t in texts) <= self.inline_chars)

    async def _call(self, texts: list[str], explain: list[bool],
                    slices: list[_Slice]) -> list[dict[str, Any]]:
        self._call_started = time.monotonic()
        loop = asyncio.get_running_loop()
        timed = [s.job.timing for s in slices if s.job.timing is not None]
        inline = self._inline(slices, texts, explain)
        try:
            if not timed:
                if inline:
                    return self.predict(texts, explain)
                return await loop.run_in_executor(self._executor, self.predict, texts, explain)
            start = time.perf_counter()
            if inline:
                results, ran = _timed(self.predict, texts, explain)
            else:
                results, ran = await loop.run_in_executor(self._executor, _timed, self.predict,
                                                          texts, explain)
            back = time.perf_counter()
            for timing in timed:
                timing.started = start if timing.started is None else timing.started
                timing.model_s += ran[1] - ran[0]
                timing.handoff_s += (ran[0] - start) + (back - ran[1])
                timing.calls += 1
                timing.batch = max(timing.batch, len(texts))
            return results
        finally:
            self._call_started = None

    async def _process(self, slices: list[_Slice]) -> None:
        slices = [s for s in slices if not s.job.future.done()]  # drop cancelled requests
        if not slices:
            return
        texts = [t for s in slices for t in s.texts]
        explain = [s.job.explain for s in slices for _ in range(s.end - s.start)]
        try:
            results = await self._call(texts, explain, slices)
        except Exception as err:
            if len(slices) == 1:
                _fail(slices[0].job, err)
                return
            for piece in slices:  # isolate the failing request(s)
                await self._process_one(piece)
            return
        start = 0
        for piece in slices:
            _deliver(piece, results[start:start + piece.end - piece.start])
            start += piece.end - piece.start

    async def _process_one(self, piece: _Slice) -> None:
        if piece.job.future.done():
            return
        try:
            results = await self._call(piece.texts, [piece.job.explain] * len(piece.texts),
                                       [piece])
        except Exception as err:
            _fail(piece.job, err)
            return
        _deliver(piece, results)


def _timed(predict: PredictFn, texts: list[str], explain: list[bool]
           ) -> tuple[list[dict[str, Any]], tuple[float, float]]:
    """``predict``'s results and when it started and ended (in the model thread)."""
    start = time.perf_counter()
    results = predict(texts, explain)
    return results, (start, time.perf_counter())


def _deliver(piece: _Slice, results: list[dict[str, Any]]) -> None:
    job = piece.job
    if job.future.done():
        return
    job.results.extend(results)
    if len(job.results) == len(job.texts):
        if job.timing is not None:
            job.timing.finished = time.perf_counter()
        job.future.set_result(job.results)


def _fail(job: _Job, error: BaseException) -> None:
    logger.error("model error on a request of %d text(s): %r", len(job.texts), error)
    job.done = len(job.texts)
    if not job.future.done():
        job.future.set_exception(error)
