"""One registered handler: how to decode its payload and how to call it.

Everything about a handler's signature is worked out once, at registration, so a delivery
does no inspection: it decodes, builds the context only when asked for, and calls.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import typing
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TypeAlias

from conveyor.execution._payload import PayloadDecoder, payload_decoder
from conveyor.execution.context import EventContext
from conveyor.model import Subscription

HandlerFunc: TypeAlias = Callable[..., object]
"""A handler: ``(payload)`` or ``(payload, ctx)``, ``async def`` or plain ``def``."""

CONTEXT_NAMES = frozenset({"ctx", "event"})
_POSITIONAL = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
_VARIADIC = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)


@dataclass(frozen=True, slots=True)
class Handler:
    """A handler bound to its subscription.

    Attributes:
        subscription: the subscription it serves.
        func: the user's function.
        decode: turns the payload's JSON into the declared type (raises ``PayloadError``).
        is_async: ``func`` is a coroutine function; otherwise it runs in a thread.
        context_param: the name of the parameter that receives the :class:`EventContext`.
        context_by_keyword: pass the context by keyword (it is keyword-only).
    """

    subscription: Subscription
    func: HandlerFunc
    decode: PayloadDecoder
    is_async: bool
    context_param: str | None
    context_by_keyword: bool

    @property
    def wants_context(self) -> bool:
        """Whether the handler takes an :class:`EventContext`."""
        return self.context_param is not None

    async def call(
        self, payload: object, context: EventContext | None, executor: Executor | None
    ) -> None:
        """Run the handler once; whatever it raises propagates.

        Args:
            payload: the decoded payload.
            context: the event's context (required when :attr:`wants_context`).
            executor: the thread pool for a sync handler (``None``: the loop's default).
        """
        args: tuple[object, ...] = (payload,)
        kwargs: dict[str, object] = {}
        if self.context_param is not None:
            if self.context_by_keyword:
                kwargs[self.context_param] = context
            else:
                args = (payload, context)
        if self.is_async:
            await typing.cast("Awaitable[object]", self.func(*args, **kwargs))
            return
        # The thread sees the caller's context variables (trace context), as with to_thread.
        call = functools.partial(contextvars.copy_context().run, self.func, *args, **kwargs)
        await asyncio.get_running_loop().run_in_executor(executor, call)


def build_handler(func: HandlerFunc, subscription: Subscription) -> Handler:
    """Inspect ``func`` and bind it to ``subscription``.

    Args:
        func: the handler function.
        subscription: the subscription it serves.

    Returns:
        The bound handler.

    Raises:
        TypeError: the signature is not ``(payload)`` or ``(payload, ctx)``, or an annotation
            cannot be resolved or decoded into.
    """
    where = f"handler {_qualname(func)!r}"
    params = list(inspect.signature(func).parameters.values())
    if not params or params[0].kind not in _POSITIONAL:
        raise TypeError(f"{where} must take the payload as its first positional parameter")
    hints = _type_hints(func, where)
    payload = params[0]
    context = _context_param(params[1:], hints, where)
    decode = payload_decoder(hints.get(payload.name, inspect.Parameter.empty))
    return Handler(
        subscription=subscription,
        func=func,
        decode=decode,
        is_async=_is_async(func),
        context_param=None if context is None else context.name,
        context_by_keyword=context is not None and context.kind not in _POSITIONAL,
    )


def _context_param(
    rest: list[inspect.Parameter], hints: dict[str, object], where: str
) -> inspect.Parameter | None:
    # Invariant: every parameter after the payload is the context, variadic, or has a default.
    found: inspect.Parameter | None = None
    for param in rest:
        is_context = hints.get(param.name) is EventContext or (
            param.name in CONTEXT_NAMES and param.name not in hints
        )
        if is_context and found is None:
            found = param
        elif param.kind not in _VARIADIC and param.default is inspect.Parameter.empty:
            raise TypeError(
                f"{where}: parameter {param.name!r} is neither the payload nor the context; "
                "a handler takes (payload) or (payload, ctx: EventContext)"
            )
    return found


def _type_hints(func: HandlerFunc, where: str) -> dict[str, object]:
    target = func if inspect.isroutine(func) else type(func).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except (NameError, TypeError) as e:
        raise TypeError(
            f"{where}: cannot resolve its annotations ({e}); define the payload type at "
            "module level"
        ) from e


def _is_async(func: HandlerFunc) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    call = getattr(func, "__call__", None)  # noqa: B004 - an async __call__ counts too
    return call is not None and inspect.iscoroutinefunction(call)


def _qualname(func: HandlerFunc) -> str:
    return getattr(func, "__qualname__", None) or repr(func)
