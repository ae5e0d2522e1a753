"""``load_app`` and ``run_worker``: the worker as the CLI starts it."""

from __future__ import annotations

import asyncio
import re
import signal
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import msgspec
import pytest
from execution_fakes import FakePlatform, push

from conveyor.execution import Lambda, load_app
from conveyor.model import Outcome
from conveyor.wire.push import PushResult, push_response_decoder
from conveyor.wire.schemas import ErrorBody

APP_SOURCE = """
import asyncio
import msgspec
from conveyor.execution import Lambda

class Order(msgspec.Struct):
    sku: str

app = Lambda("billing")
not_an_app = 42

@app.handler("orders")
async def charge(order: Order) -> None:
    await asyncio.sleep(0.3 if order.sku == "slow" else 0)
"""


@pytest.fixture
def app_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module holding APP_SOURCE in the current directory, under a unique name."""
    name = f"app_{uuid.uuid4().hex}"
    (tmp_path / f"{name}.py").write_text(APP_SOURCE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield name
    sys.modules.pop(name, None)


def test_load_app_imports_the_lambda_from_the_current_directory(app_module: str) -> None:
    # Given / When
    app = load_app(f"{app_module}:app")

    # Then
    assert isinstance(app, Lambda)
    assert [s.name for s in app.subscriptions()] == ["billing.charge"]


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        ("no_colon", "expected 'module:attribute'"),
        ("{module}:", "expected 'module:attribute'"),
        ("missing_module_xyz:app", "cannot import module 'missing_module_xyz'"),
        ("{module}:nope", "has no attribute 'nope'"),
        ("{module}:not_an_app", "is a int, not a conveyor Lambda"),
    ],
)
def test_load_app_explains_a_reference_it_cannot_use(
    app_module: str, ref: str, message: str
) -> None:
    # Given / When / Then
    with pytest.raises(ValueError, match=re.escape(message)):
        load_app(ref.format(module=app_module))


def test_an_import_error_inside_the_app_module_propagates_as_is(
    app_module: str, tmp_path: Path
) -> None:
    # Given a module that imports a package that is not installed
    (tmp_path / f"{app_module}.py").write_text("import surely_not_installed_pkg\n")

    # When / Then
    with pytest.raises(ModuleNotFoundError, match="surely_not_installed_pkg"):
        load_app(f"{app_module}:app")


async def start_worker_process(module: str, cwd: Path, server: str) -> asyncio.subprocess.Process:
    code = (
        "from conveyor.execution import run_worker; "
        f"run_worker({module + ':app'!r}, server={server!r}, host='127.0.0.1', port=0, "
        "concurrency=4, advertise_host=None)"
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def test_run_worker_serves_until_sigterm_then_answers_in_flight_work_and_exits_0(
    app_module: str, tmp_path: Path
) -> None:
    # Given a worker process registered with the platform
    async with FakePlatform(topics={"orders"}) as platform:
        process = await start_worker_process(app_module, tmp_path, platform.url)
        try:
            assert process.stdout is not None
            ready = (await asyncio.wait_for(process.stdout.readline(), 10)).decode()
            found = re.fullmatch(
                r"conveyor worker: lambda billing serving (http://127\.0\.0\.1:(\d+)"
                r"/conveyor/push) \(1 subscriptions\)\n",
                ready,
            )
            assert found is not None, ready
            url, port = found.group(1), found.group(2)
            body = msgspec.json.encode(push("billing.charge", {"sku": "slow"}))

            async with aiohttp.ClientSession() as http, asyncio.TaskGroup() as tasks:
                health_url = f"http://127.0.0.1:{port}/conveyor/health"

                async def post_slow_event() -> tuple[int, bytes]:
                    async with http.post(url, data=body) as response:
                        return response.status, await response.read()

                async def in_flight() -> int:
                    async with http.get(health_url) as health:
                        count: int = (await health.json())["in_flight"]
                        return count

                # When SIGTERM arrives while a push is being handled
                answer = tasks.create_task(post_slow_event())
                for _ in range(500):
                    if await in_flight() > 0:
                        break
                    await asyncio.sleep(0.01)
                else:
                    pytest.fail("the slow push never started")
                process.send_signal(signal.SIGTERM)
                _, stderr = await asyncio.wait_for(process.communicate(), 10)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    # Then the push was still answered, and the process exited 0 after deregistering
    status, response = answer.result()
    assert status == 200
    assert push_response_decoder.decode(response).results == [PushResult("e0", Outcome.SUCCESS)]
    assert process.returncode == 0, stderr.decode()
    assert platform.calls[-1].method == "DELETE"


async def test_run_worker_exits_1_explaining_a_refused_registration(
    app_module: str, tmp_path: Path
) -> None:
    # Given a platform that refuses the subscription
    refusal = ErrorBody(code="invalid_request", message="no", field="retry", rule="type")
    async with FakePlatform(topics={"orders"}, refuse_subscriptions=(400, refusal)) as platform:
        # When
        process = await start_worker_process(app_module, tmp_path, platform.url)
        stdout, stderr = await asyncio.wait_for(process.communicate(), 10)

    # Then
    assert process.returncode == 1
    assert stdout == b""
    assert (
        "conveyor worker: error: the platform refused subscription 'billing.charge' "
        "(HTTP 400 invalid_request, field 'retry', rule 'type'): no"
    ) in stderr.decode()
