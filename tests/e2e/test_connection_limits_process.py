"""``conveyor serve``'s connection limits from its command line, over real sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import Platform

BOUND = 10.0


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    # Given `conveyor serve` with an idle timeout of 0.5 s and at most 2 connections
    p = Platform(tmp_path)
    p.serve_args = ["--idle-timeout", "0.5", "--header-timeout", "0.5", "--max-connections", "2"]
    p.start()
    yield p
    if p.proc is not None:
        p.proc.stop()


def until_closed(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    conn.settimeout(BOUND)
    received = b""
    try:
        while chunk := conn.recv(65536):
            received += chunk
    except TimeoutError:
        pytest.fail(f"the connection stayed open {BOUND} s")
    except ConnectionResetError:
        pass
    return received


def test_serve_closes_idle_connections_and_refuses_those_over_its_cap(
    platform: Platform,
) -> None:
    # When two clients connect and say nothing, and a third connects meanwhile
    with (
        socket.create_connection(("127.0.0.1", platform.port)) as first,
        socket.create_connection(("127.0.0.1", platform.port)) as second,
    ):
        with socket.create_connection(("127.0.0.1", platform.port)) as third:
            refused = until_closed(third)

        # Then the third is answered 503 at once, and the two idle ones are closed unanswered
        assert refused.startswith(b"HTTP/1.1 503")
        assert b'"too_many_connections"' in refused
        assert until_closed(first) == until_closed(second) == b""

    # And a request whose headers never end is cut off
    with socket.create_connection(("127.0.0.1", platform.port)) as slow:
        slow.sendall(b"GET /v1/health HTTP/1.1\r\nHost: t\r\n")
        assert until_closed(slow) == b""
