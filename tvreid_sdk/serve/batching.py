"""Micro-batching of text searches: the queries that arrive while a batch runs form the next batch.

One worker task takes every queued query (up to ``max_batch``), and one worker thread runs the batch: ONE tokenizer
call, ONE encoder call ([B] texts → [B,D]), then ONE ``Gallery.search`` call ([Q,D] queries) per distinct filter set
(cameras, time window: a search applies one filter set to all its queries; the usual load shares one), and ONE audit
transaction (one fsync) for the whole batch, committed on an audit thread while the next batch encodes (answers
leave after their entries are committed). There is no waiting timer: an idle server answers a lone query at
once, and a busy one batches by itself, because queries pile up while the previous batch runs.
"""
from __future__ import annotations

import asyncio
import dataclasses
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Optional

import numpy as np

from .metrics import Metrics


@dataclasses.dataclass(frozen=True)
class Filters:
    """An effective filter set (the token's camera scope already ANDed in). ``cameras=()`` matches nothing."""

    cameras: Optional[tuple[str, ...]] = None
    since: Optional[float] = None
    until: Optional[float] = None


@dataclasses.dataclass
class SearchJob:
    """One text query (optionally steered by example keys) waiting for its batch."""

    text: str
    k: int
    filters: Filters
    token: str
    audit: dict[str, Any]  # what the audit entry records besides the keys returned
    like: tuple[str, ...] = ()
    weight: float = 0.5
    future: Optional[asyncio.Future] = None


class ServerDraining(Exception):
    """The server is shutting down and takes no new searches."""


class MicroBatcher:
    """Runs :class:`SearchJob` batches on one encoder and one gallery.

    Args:
        encoder: a :class:`tvreid_sdk.Encoder` (``tokenizer`` and ``backend`` give the per-stage timings).
        gallery: a :class:`tvreid_sdk.Gallery`.
        audit: an :class:`~.audit.AuditLog`; every search of a batch is recorded in one transaction.
        metrics: where stage timings and batch sizes go.
        max_batch: most queries per encoder call.
    """

    def __init__(self, encoder, gallery, audit, metrics: Metrics, max_batch: int = 64):
        self.encoder, self.gallery, self.audit, self.metrics = encoder, gallery, audit, metrics
        self.max_batch = int(max_batch)
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tvreid-batch")
        self._audit_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tvreid-audit")
        self._pending: set[asyncio.Task] = set()
        self._closed = False
        self.batches = 0
        self.queries = 0

    async def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        """Finish every queued search, then stop (the drain of a graceful shutdown)."""
        if self._task is None or self._closed:
            return
        self._closed = True
        await self._queue.put(None)
        await self._task
        self._executor.shutdown(wait=True)
        self._audit_executor.shutdown(wait=True)

    async def submit(self, job: SearchJob) -> list:
        """Queue ``job`` and wait for its hits (``Hit`` list, best first)."""
        if self._closed or self._queue is None:
            raise ServerDraining("the server is shutting down")
        job.future = asyncio.get_running_loop().create_future()
        await self._queue.put(job)
        queued = time.perf_counter()
        hits = await job.future
        self.metrics.stage.labels("queue").observe(max(0.0, time.perf_counter() - queued))
        return hits

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        stop = False
        while not stop:
            job = await self._queue.get()
            if job is None:
                break
            jobs = [job]
            while len(jobs) < self.max_batch and not self._queue.empty():
                nxt = self._queue.get_nowait()
                if nxt is None:
                    stop = True
                    break
                jobs.append(nxt)
            try:
                outcomes = await loop.run_in_executor(self._executor, self._run_batch, jobs)
            except BaseException as exc:  # noqa: BLE001 - every waiting request gets the error
                outcomes = [exc] * len(jobs)
            # The audit commit (an fsync) of this batch overlaps the encoding of the next one; answers leave only
            # after their entries are committed, in batch order (one audit thread).
            task = asyncio.create_task(self._finish(jobs, outcomes))
            self._pending.add(task)
            task.add_done_callback(self._pending.discard)
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def _finish(self, jobs: list[SearchJob], outcomes: list) -> None:
        entries = [(j.token, "search", {**j.audit, "keys": [h.key for h in out]})
                   for j, out in zip(jobs, outcomes) if not isinstance(out, BaseException)]
        try:
            await asyncio.get_running_loop().run_in_executor(self._audit_executor, self.audit.append_many, entries)
        except BaseException as exc:  # noqa: BLE001 - no answer without its audit entry
            outcomes = [exc] * len(jobs)
        for j, outcome in zip(jobs, outcomes):
            if j.future.done():
                continue
            if isinstance(outcome, BaseException):
                j.future.set_exception(outcome)
            else:
                j.future.set_result(outcome)

    def _timed(self, stage: str, fn: Callable, *args):
        t0 = time.perf_counter()
        out = fn(*args)
        self.metrics.stage.labels(stage).observe(time.perf_counter() - t0)
        return out

    def _encode(self, texts: list[str]) -> np.ndarray:
        enc = self.encoder
        tokenizer, backend = getattr(enc, "tokenizer", None), getattr(enc, "backend", None)
        spec = getattr(enc.manifest, "spec", None)
        if tokenizer is None or backend is None or not hasattr(backend, "encode_texts") \
                or (spec is not None and not spec.has_text):
            return self._timed("encode", enc.encode_text, texts)  # one stage when the parts are not reachable
        batch = self._timed("tokenize", tokenizer, texts)
        return self._timed("encode", backend.encode_texts, texts, batch.ids, batch.eot_index)  # [B,D]

    def _run_batch(self, jobs: list[SearchJob]) -> list:
        self.batches += 1
        self.queries += len(jobs)
        self.metrics.batch_size.observe(len(jobs))
        emb = self._encode([j.text for j in jobs])  # [B,D] unit rows
        outcomes: list = [None] * len(jobs)
        t0 = time.perf_counter()
        groups: dict[Filters, list[int]] = {}
        for i, j in enumerate(jobs):
            if j.filters.cameras == ():
                outcomes[i] = []  # the token sees none of the cameras asked for: nothing exists
            elif j.like:
                try:
                    outcomes[i] = self.gallery.search_combined(
                        emb[i], list(j.like), j.weight, j.k, cameras=j.filters.cameras, since=j.filters.since,
                        until=j.filters.until)
                except Exception as exc:  # noqa: BLE001 - reported to that request only
                    outcomes[i] = exc
            else:
                groups.setdefault(j.filters, []).append(i)
        for f, idx in groups.items():
            k = max(jobs[i].k for i in idx)
            try:
                per_query = self.gallery.search(emb[idx], k, cameras=f.cameras, since=f.since, until=f.until)
            except Exception as exc:  # noqa: BLE001
                per_query = [exc] * len(idx)
            for i, hits in zip(idx, per_query):
                outcomes[i] = hits if isinstance(hits, BaseException) else hits[:jobs[i].k]
        self.metrics.stage.labels("match").observe(time.perf_counter() - t0)
        return outcomes
