"""One pooled HTTP session to a Conveyor node: URLs, requests, answers and errors."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from yarl import URL

from conveyor._client.errors import error_from_answer
from conveyor.errors import ConveyorError

__all__ = ["Answer", "HttpSession"]

T = TypeVar("T")

_ENCODER = msgspec.json.Encoder()
_HEADERS = {"Accept": "application/json", "User-Agent": "conveyor-client"}
_JSON_HEADERS = {**_HEADERS, "Content-Type": "application/json"}


class Answer(NamedTuple):
    """A successful answer's status and body."""

    status: int
    content: bytes


def _segment(value: str) -> str:
    """Percent-encode one path segment; reject those a URL would resolve away."""
    if value in ("", ".", ".."):
        raise ValueError(f"{value!r} cannot name a resource")
    return quote(value, safe="")


class HttpSession:
    """A lazily opened, keep-alive ``aiohttp.ClientSession`` bound to one base URL.

    Args:
        base_url: the node's URL, ``http(s)://host:port`` with an optional path prefix.
        timeout: seconds one request may take in all.

    Raises:
        ValueError: the URL is not absolute http(s), or the timeout is not positive.
    """

    def __init__(self, base_url: str, *, timeout: float) -> None:
        url = URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError(f"base_url must be an absolute http(s) URL, not {base_url!r}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, not {timeout!r}")
        self.base_url = base_url
        self._root = url.with_path(url.raw_path.rstrip("/") + "/v1", encoded=True)
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._closed = False

    def _open(self) -> aiohttp.ClientSession:
        if self._closed:
            raise RuntimeError("the Conveyor client is closed")
        if self._session is None:
            # Created on first use so that it binds to the loop that runs the requests.
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def request(
        self,
        method: str,
        path: Sequence[str],
        body: msgspec.Struct | None = None,
        *,
        query: Mapping[str, str] | None = None,
        also_ok: tuple[int, ...] = (),
    ) -> Answer:
        """Send one request and return its answer when it succeeded.

        Args:
            method: the HTTP method.
            path: the segments after ``/v1``, unencoded.
            body: the JSON body, if any.
            query: query parameters, unencoded.
            also_ok: error statuses whose body is the answer, not an error (a failing
                node's health, 503).

        Raises:
            ConveyorError: the answer was an error (the subclass its status stands for), or
                the node could not be reached or did not answer in time.
            RuntimeError: the client is closed.
            ValueError: a path segment is empty, ``.`` or ``..``.

        Returns:
            The status and body of an answer below 400.
        """
        url = self._root.with_path(
            "/".join([self._root.raw_path, *map(_segment, path)]), encoded=True
        )
        if query:
            url = url.with_query(query)
        data = None if body is None else _ENCODER.encode(body)
        session = self._open()
        try:
            async with session.request(
                method, url, data=data, headers=_HEADERS if data is None else _JSON_HEADERS
            ) as response:
                content = await response.read()
                retry_after = response.headers.get("Retry-After")
        except TimeoutError as e:
            message = f"no answer from Conveyor at {self.base_url} within {self._timeout}s"
            raise ConveyorError(message) from e
        except aiohttp.ClientError as e:
            raise ConveyorError(f"cannot reach Conveyor at {self.base_url}: {e}") from e
        if response.status >= 400 and response.status not in also_ok:
            raise error_from_answer(
                response.status, content, resource=url.path, retry_after=retry_after
            )
        return Answer(response.status, content)

    def decode(self, answer: Answer, decoder: msgspec.json.Decoder[T]) -> T:
        """Decode a successful answer's body.

        Raises:
            ConveyorError: the body is not the type the API promises.

        Returns:
            The decoded body.
        """
        try:
            return decoder.decode(answer.content)
        except msgspec.DecodeError as e:
            raise ConveyorError(f"unexpected answer from Conveyor at {self.base_url}: {e}") from e

    async def aclose(self) -> None:
        """Close the session and its pooled connections; later calls do nothing."""
        self._closed = True
        session, self._session = self._session, None
        if session is not None:
            await session.close()
