"""The topic methods of :class:`~conveyor.AsyncClient`: create, replace, read, list."""

from __future__ import annotations

from collections.abc import Mapping

import msgspec

from conveyor._client.checks import checked
from conveyor._client.http import HttpSession
from conveyor.errors import Conflict
from conveyor.model import (
    DEFAULT_MAX_PAYLOAD_BYTES,
    DEFAULT_PARTITIONS,
    DEFAULT_RETENTION_SECONDS,
    SchemaSettings,
    Topic,
)

__all__ = ["TopicMethods"]

# Invariant: decoders are built once per process; msgspec decoders are thread-safe.
_CREATED = 201
_TOPIC = msgspec.json.Decoder(Topic)
_TOPICS = msgspec.json.Decoder(list[Topic])


class TopicMethods:
    """Topics: create, replace, read, list.

    Mixed into :class:`AsyncClient`.
    """

    _http: HttpSession

    async def create_topic(
        self,
        name: str,
        *,
        partitions: int = DEFAULT_PARTITIONS,
        schema: Mapping[str, object] | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
        retention_seconds: int = DEFAULT_RETENTION_SECONDS,
        exist_ok: bool = True,
        schema_settings: SchemaSettings | None = None,
    ) -> Topic:
        """Create a topic, or accept it as it is when it exists with this very definition.

        Args:
            name: the topic's name.
            partitions: how many partitions (1 to 256).
            schema: a JSON Schema (draft 2020-12) that every payload must conform to.
            max_payload_bytes: the largest payload accepted, in bytes of JSON.
            retention_seconds: how long finished events are kept.
            exist_ok: accept an existing topic with the same definition; when ``False``,
                any existing topic is a conflict.
            schema_settings: bind the topic to a registry subject (excludes ``schema``).

        Raises:
            Conflict: the topic exists with another definition, or exists and not
                ``exist_ok``.
            InvalidRequest: a value breaks a rule (``field`` and ``rule`` name it).

        Returns:
            The topic as stored.
        """
        topic = Topic(
            name=name,
            partitions=partitions,
            schema=dict(schema) if schema is not None else None,
            max_payload_bytes=max_payload_bytes,
            retention_seconds=retention_seconds,
            schema_settings=schema_settings,
        )
        answer = await self._http.request("POST", ["topics"], checked(topic))
        # The server answers 200, not 201, when an identical topic already exists.
        if answer.status != _CREATED and not exist_ok:
            raise Conflict(f"topic {name!r} already exists")
        return self._http.decode(answer, _TOPIC)

    async def put_topic(self, topic: Topic) -> Topic:
        """Create a topic or replace its definition.

        Raises:
            InvalidRequest: a value breaks a rule, or the change is not allowed.

        Returns:
            The topic as stored.
        """
        answer = await self._http.request("PUT", ["topics", topic.name], checked(topic))
        return self._http.decode(answer, _TOPIC)

    async def get_topic(self, name: str) -> Topic:
        """Read a topic's definition.

        Raises:
            NotFound: there is no such topic.

        Returns:
            The topic.
        """
        return self._http.decode(await self._http.request("GET", ["topics", name]), _TOPIC)

    async def list_topics(self) -> list[Topic]:
        """List every topic.

        Returns:
            The topics, in the server's order.
        """
        return self._http.decode(await self._http.request("GET", ["topics"]), _TOPICS)
