"""Group commit: many concurrent writes, one transaction, one fsync (the store's shared work)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from conveyor.errors import StoreUnavailable

T = TypeVar("T")


@dataclass(slots=True)
class _Op(Generic[T]):
    run: Callable[[], T]
    future: asyncio.Future[T]


class GroupCommit:
    """Batches concurrent writes into one transaction.

    Writers call :meth:`submit` with a function that performs their statements; while one
    transaction commits, the next batch gathers. ``execute`` runs a batch inside one
    transaction and returns, per operation, its result or the exception it raised (which
    rolled back that operation alone); when the commit itself fails it raises, and every
    operation in the batch fails with :class:`StoreUnavailable`.

    Invariant: a future resolves only after the transaction holding its operation is durable.
    """

    def __init__(
        self,
        execute: Callable[[list[Callable[[], object]]], Awaitable[list[object]]],
        *,
        max_batch: int = 512,
    ) -> None:
        self._execute = execute
        self._max_batch = max_batch
        self._queue: list[_Op[object]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.failure: str | None = None  # the last commit's error, until one succeeds

    def start(self) -> None:
        """Start the committing task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="group-commit")

    async def submit(self, run: Callable[[], T]) -> T:
        """Run ``run`` in the next transaction and return its result once durable."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._queue.append(_Op(run, future))  # type: ignore[arg-type]
        self._wake.set()
        return await future

    async def aclose(self) -> None:
        """Commit what is queued, then stop; idempotent."""
        self._closed = True
        if self._task is not None:
            self._wake.set()
            await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._queue[: self._max_batch]
            del self._queue[: self._max_batch]
            await self._commit(batch)

    async def _commit(self, batch: list[_Op[object]]) -> None:
        try:
            results = await self._execute([op.run for op in batch])
        except Exception as e:  # noqa: BLE001 - every failure of the commit fails the batch
            error = (
                e if isinstance(e, StoreUnavailable) else StoreUnavailable(f"commit failed: {e}")
            )
            error.__cause__ = e
            self.failure = str(error)
            for op in batch:
                if not op.future.done():
                    op.future.set_exception(error)
            return
        self.failure = None
        for op, result in zip(batch, results, strict=True):
            if op.future.done():
                continue
            if isinstance(result, BaseException):
                op.future.set_exception(result)
            else:
                op.future.set_result(result)
