"""The example lambda that `make run` serves.

Run it yourself with ``conveyor worker examples.hello:app`` against ``conveyor serve``.
"""

from __future__ import annotations

import msgspec

from conveyor import EventContext, Lambda, Retry

app = Lambda("hello")


class Greeting(msgspec.Struct):
    """The payload of the ``greetings`` topic."""

    name: str
    times: int = 1


@app.handler("greetings")
async def greet(greeting: Greeting, ctx: EventContext) -> None:
    """Print a greeting; a name starting with "flaky" fails its first attempt."""
    if greeting.name.startswith("flaky") and ctx.attempt == 1:
        raise Retry("flaky on purpose: the first attempt fails", after=0.5)
    for _ in range(greeting.times):
        print(f"hello, {greeting.name}! (event {ctx.id[:12]}…, attempt {ctx.attempt})", flush=True)
