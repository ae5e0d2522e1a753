"""The shape of every component that holds resources (trio's ``AsyncResource``).

``async with component:`` acquires what it needs (``_enter``) and always releases it
(``aclose``), which is idempotent.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class AsyncResource(abc.ABC):
    """An async context manager around ``_enter`` and an idempotent ``aclose``."""

    async def __aenter__(self) -> Self:
        await self._enter()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def _enter(self) -> None:  # noqa: B027 - a no-op default, not abstract by design
        """Acquire what the component needs; nothing by default."""

    @abc.abstractmethod
    async def aclose(self) -> None:
        """Release every resource; idempotent."""


class Resource(abc.ABC):
    """The blocking twin: a context manager around an idempotent ``close``."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @abc.abstractmethod
    def close(self) -> None:
        """Release every resource; idempotent."""
