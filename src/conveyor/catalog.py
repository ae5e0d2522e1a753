"""The catalog: topics and subscriptions, cached in memory over the store.

Writes go to the store first and reach the cache only once durable; readers on the hot path
(publish, dispatch) read the cache. Listeners hear of subscription changes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

import msgspec

from conveyor.codecs.validation import PayloadValidator, compile_schema
from conveyor.errors import InvalidRequest, NotFound
from conveyor.model import Control, Subscription, Topic
from conveyor.store.ports import CatalogPort

SubscriptionListener = Callable[[Subscription], None]
RemovalListener = Callable[[str], Awaitable[None]]

_T = TypeVar("_T")


def _found(kind: str, known: Mapping[str, _T], name: str) -> _T:
    """``known[name]``, or :class:`NotFound` naming the ``kind``."""
    value = known.get(name)
    if value is None:
        raise NotFound(kind, name)
    return value


class Catalog:
    """Topics (with compiled schemas) and subscriptions.

    Args:
        store: the durable store.
    """

    def __init__(self, store: CatalogPort) -> None:
        self._store = store
        self._topics: dict[str, Topic] = {}
        self._validators: dict[str, PayloadValidator] = {}
        self._subs: dict[str, Subscription] = {}
        self._on_put: list[SubscriptionListener] = []
        self._on_remove: list[RemovalListener] = []
        self._on_topic: list[Callable[[Topic], None]] = []

    async def load(self) -> None:
        """Read the catalog from the store."""
        for topic in await self._store.list_topics():
            self._cache_topic(topic)
        for sub in await self._store.list_subscriptions():
            self._subs[sub.name] = sub

    async def refresh(self) -> None:
        """Catch up with changes made through other nodes, and tell the listeners."""
        for topic in await self._store.list_topics():
            if self._topics.get(topic.name) != topic:
                self._cache_topic(topic)
        current = {s.name: s for s in await self._store.list_subscriptions()}
        for name, sub in current.items():
            if self._subs.get(name) != sub:
                self._subs[name] = sub
                for listener in self._on_put:
                    listener(sub)
        for name in [n for n in self._subs if n not in current]:
            del self._subs[name]
            for remove in self._on_remove:
                await remove(name)

    async def find_topic_fresh(self, name: str) -> Topic:
        """A topic by name, reading the store when this node has not seen it yet.

        Raises:
            NotFound: no such topic.
        """
        topic = self._topics.get(name)
        if topic is None:
            for stored in await self._store.list_topics():
                if stored.name == name:
                    self._cache_topic(stored)
                    return stored
            raise NotFound("topic", name)
        return topic

    def listen(self, on_put: SubscriptionListener, on_remove: RemovalListener) -> None:
        """Be told when a subscription is created, changed or removed."""
        self._on_put.append(on_put)
        self._on_remove.append(on_remove)

    def listen_topics(self, on_new: Callable[[Topic], None]) -> None:
        """Be told when a topic this node had not seen appears (here or on another node)."""
        self._on_topic.append(on_new)

    # -- topics -----------------------------------------------------------------------------
    def topic(self, name: str) -> Topic:
        """A topic by name.

        Raises:
            NotFound: no such topic.
        """
        return _found("topic", self._topics, name)

    def find_topic(self, name: str) -> Topic | None:
        """A topic by name, or ``None``."""
        return self._topics.get(name)

    def validator(self, name: str) -> PayloadValidator | None:
        """The compiled schema of a topic, or ``None`` when it has none."""
        return self._validators.get(name)

    def topics(self) -> list[Topic]:
        """Every topic, by name."""
        return [self._topics[n] for n in sorted(self._topics)]

    async def put_topic(self, topic: Topic) -> bool:
        """Create or update a topic; return whether it was created.

        Raises:
            InvalidRequest: its schema is not a valid JSON Schema.
            Conflict: it exists with another partition count.
        """
        if topic.schema is not None:
            compile_schema(topic.schema)
        created = await self._store.put_topic(topic)
        self._cache_topic(topic)
        return created

    def _cache_topic(self, topic: Topic) -> None:
        new = topic.name not in self._topics
        self._topics[topic.name] = topic
        if new:
            for listener in self._on_topic:
                listener(topic)
        if topic.schema is None:
            self._validators.pop(topic.name, None)
        else:
            self._validators[topic.name] = compile_schema(topic.schema)

    # -- subscriptions ----------------------------------------------------------------------
    def subscription(self, name: str) -> Subscription:
        """A subscription by name.

        Raises:
            NotFound: no such subscription.
        """
        return _found("subscription", self._subs, name)

    def subscriptions(self, topic: str | None = None) -> list[Subscription]:
        """Every subscription (of one topic, when given), by name."""
        return [
            self._subs[n]
            for n in sorted(self._subs)
            if topic is None or self._subs[n].topic == topic
        ]

    async def put_subscription(self, sub: Subscription) -> bool:
        """Create or update a subscription; return whether it was created.

        Raises:
            NotFound: its topic does not exist.
            InvalidRequest: its dead-letter topic does not exist or is its own topic.
            Conflict: it exists for another topic.
        """
        self.topic(sub.topic)
        if sub.dead_letter_topic is not None:
            if sub.dead_letter_topic == sub.topic:
                raise InvalidRequest(
                    "dead_letter_topic must differ from the subscription's topic",
                    field="/dead_letter_topic",
                    rule="distinct",
                )
            if sub.dead_letter_topic not in self._topics:
                raise InvalidRequest(
                    f"dead_letter_topic {sub.dead_letter_topic!r} does not exist",
                    field="/dead_letter_topic",
                    rule="exists",
                )
        if sub.filter is not None:
            _check_filter(sub.filter)
        created = await self._store.put_subscription(sub)
        current = self._subs.get(sub.name)
        if not created and current is not None:
            sub = msgspec.structs.replace(sub, control=current.control)  # the store kept it
        self._cache_subscription(sub)
        return created

    async def set_control(self, name: str, control: Control) -> Subscription:
        """Replace a subscription's run-time gates (pause, rate limit, purge).

        Raises:
            NotFound: no such subscription.
        """
        self.subscription(name)
        sub = await self._store.set_control(name, control)
        self._cache_subscription(sub)
        return sub

    def _cache_subscription(self, sub: Subscription) -> None:
        self._subs[sub.name] = sub
        for listener in self._on_put:
            listener(sub)

    async def delete_subscription(self, name: str) -> None:
        """Delete a subscription and its progress.

        Raises:
            NotFound: no such subscription.
        """
        self.subscription(name)
        for listener in self._on_remove:
            await listener(name)
        await self._store.delete_subscription(name)
        self._subs.pop(name, None)


def _check_filter(pattern: dict[str, object]) -> None:
    """Refuse an invalid filter pattern, naming its place under ``/filter``."""
    from conveyor.delivery.filters import FilterError, compile_filter

    try:
        compile_filter(pattern)
    except FilterError as e:
        raise InvalidRequest(e.message, field="/filter" + (e.field or ""), rule=e.rule) from e
