"""Gathering requests that arrive together into one piece of blocking work.

After a gateway restart thousands of terminals register within seconds; answered one transaction
each, they queue behind each other (and behind the one audit chain). A `Batcher` collects the
requests of a short window, and of however long the batch before took, and hands them to one call
in a thread, off the event loop; each caller gets its own result back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

Request = TypeVar("Request")
Result = TypeVar("Result")
log = logging.getLogger("fleet.gateway.batching")


class Batcher(Generic[Request, Result]):
    """`work(requests) -> results` (one result per request, in order) runs in a thread for the
    requests gathered within `window_s` of the first, at most `max_size` at a time, one batch
    at a time. A batch that fails with an error that is not `transient` (the database away) is
    run again one request at a time, so one bad request fails alone."""

    def __init__(
        self,
        work: Callable[[list[Request]], Sequence[Result]],
        *,
        window_s: float,
        max_size: int,
        transient: tuple[type[BaseException], ...] = (),
    ) -> None:
        self.work = work
        self.window_s = window_s
        self.max_size = max_size
        self.transient = transient
        self._pending: list[tuple[Request, asyncio.Future[Result]]] = []
        self._drainer: asyncio.Task[None] | None = None

    async def submit(self, request: Request) -> Result:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Result] = loop.create_future()
        self._pending.append((request, future))
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        await asyncio.sleep(self.window_s)
        while self._pending:
            batch = self._pending[: self.max_size]
            del self._pending[: self.max_size]
            waiting = [(request, future) for request, future in batch if not future.done()]
            if waiting:
                await self._run(waiting)

    async def _run(self, batch: list[tuple[Request, asyncio.Future[Result]]]) -> None:
        try:
            results = await asyncio.to_thread(self.work, [request for request, _ in batch])
        except self.transient as error:
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        except Exception as error:
            if len(batch) == 1:
                if not batch[0][1].done():
                    batch[0][1].set_exception(error)
                return
            log.warning("a batch of %d failed (%s); running them one by one", len(batch), error)
            for one in batch:
                await self._run([one])
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
