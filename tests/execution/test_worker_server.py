"""The worker's HTTP server, over real HTTP on 127.0.0.1 (without platform registration)."""

from __future__ import annotations

import asyncio

import aiohttp
import msgspec
import pytest
from execution_fakes import push, until

from conveyor.execution import Lambda, Retry, Worker
from conveyor.model import Outcome
from conveyor.wire.push import PushRequest, PushResponse, PushResult, push_response_decoder


async def post(http: aiohttp.ClientSession, url: str, request: PushRequest) -> PushResponse:
    async with http.post(url, data=msgspec.json.encode(request)) as answer:
        assert answer.status == 200, await answer.text()
        assert answer.content_type == "application/json"
        return push_response_decoder.decode(await answer.read())


async def test_a_push_is_answered_with_one_result_per_event() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: int) -> None:
        if payload % 2:
            raise Retry("odd", after=5)

    async with Worker(app, register=False) as worker, aiohttp.ClientSession() as http:
        # When
        response = await post(http, worker.url, push("billing.charge", 0, 1, 2))

    # Then
    assert worker.url.startswith("http://127.0.0.1:")
    assert worker.url.endswith("/conveyor/push")
    assert response.results == [
        PushResult("e0", Outcome.SUCCESS),
        PushResult("e1", Outcome.RETRY, after=5, error="odd"),
        PushResult("e2", Outcome.SUCCESS),
    ]


async def test_handler_calls_over_all_pushes_never_exceed_the_concurrency_limit() -> None:
    # Given a worker limited to 3 calls at once, and a handler that records its peak
    app = Lambda("billing")
    running = peak = 0

    @app.handler("orders")
    async def charge(payload: int) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1

    async with (
        Worker(app, register=False, concurrency=3) as worker,
        aiohttp.ClientSession() as http,
    ):
        # When 10 events arrive in two concurrent pushes
        responses = await asyncio.gather(
            post(http, worker.url, push("billing.charge", *range(5))),
            post(http, worker.url, push("billing.charge", *range(5))),
        )

    # Then every event succeeded, and exactly 3 ran at once at the peak
    assert [r.status for resp in responses for r in resp.results] == [Outcome.SUCCESS] * 10
    assert peak == 3
    assert worker.handled == 10


async def test_a_sync_handler_runs_in_the_workers_thread_pool() -> None:
    # Given
    app = Lambda("billing")
    threads: list[str] = []

    @app.handler("orders")
    def charge(payload: object) -> None:
        import threading

        threads.append(threading.current_thread().name)

    async with Worker(app, register=False) as worker, aiohttp.ClientSession() as http:
        # When
        response = await post(http, worker.url, push("billing.charge", {}))

    # Then
    assert response.results == [PushResult("e0", Outcome.SUCCESS)]
    assert len(threads) == 1
    assert threads[0].startswith("conveyor-billing")


async def test_health_reports_the_lambda_and_its_counts() -> None:
    # Given
    app = Lambda("billing")

    @app.handler("orders")
    async def charge(payload: object) -> None: ...

    async with Worker(app, register=False) as worker, aiohttp.ClientSession() as http:
        await post(http, worker.url, push("billing.charge", 1, 2))

        # When
        async with http.get(f"http://127.0.0.1:{worker.port}/conveyor/health") as answer:
            status, health = answer.status, await answer.json()

    # Then
    assert status == 200
    assert health == {"status": "ok", "lambda": "billing", "in_flight": 0, "handled": 2}


async def test_a_body_that_is_not_a_push_is_refused_with_400() -> None:
    # Given
    app = Lambda("billing")

    # When
    async with (
        Worker(app, register=False) as worker,
        aiohttp.ClientSession() as http,
        http.post(worker.url, data=b'{"events": 3}') as answer,
    ):
        status, body = answer.status, await answer.json()

    # Then
    assert status == 400
    assert body["error"]["code"] == "invalid_request"
    assert "$.events" in body["error"]["message"]


async def test_draining_answers_new_pushes_503_while_in_flight_ones_finish() -> None:
    # Given a push whose handler is running and waits to be released
    app = Lambda("billing")
    started, release = asyncio.Event(), asyncio.Event()

    @app.handler("orders")
    async def charge(payload: str) -> None:
        started.set()
        await release.wait()

    async with (
        Worker(app, register=False) as worker,
        aiohttp.ClientSession() as http,
        asyncio.timeout(5),
        asyncio.TaskGroup() as tasks,
    ):
        first = tasks.create_task(post(http, worker.url, push("billing.charge", "slow")))
        await started.wait()

        # When the worker drains
        drained = tasks.create_task(worker.drain())
        await until(lambda: worker.draining)

        # Then a new push is throttled, while the first is still running
        async with http.post(
            worker.url, data=msgspec.json.encode(push("billing.charge", "late"))
        ) as late:
            assert late.status == 503
            assert late.headers["Retry-After"] == "1"
        async with http.get(f"http://127.0.0.1:{worker.port}/conveyor/health") as health:
            assert health.status == 503
            assert (await health.json())["status"] == "draining"
        assert not first.done()
        assert not drained.done()
        assert worker.in_flight == 1

        # And once released, the in-flight push gets its answer and the drain completes
        release.set()

    assert first.result().results == [PushResult("e0", Outcome.SUCCESS)]
    assert worker.handled == 1
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(worker.url):
            pass


async def test_closing_a_worker_twice_is_harmless() -> None:
    # Given
    worker = Worker(Lambda("billing"), register=False)
    await worker.start()

    # When
    await worker.aclose()
    await worker.aclose()

    # Then
    with pytest.raises(aiohttp.ClientConnectionError):
        async with aiohttp.ClientSession() as http, http.get(worker.url):
            pass
