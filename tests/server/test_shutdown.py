"""SIGTERM during a poll: the real process exits 0 within 5 s and closes cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from exporter.demo import DEMO_POLL_INTERVAL_ENV
from tests.helpers.builders import PLANTED_KEY
from tests.helpers.processes import poll_until, spawn_exporter

pytestmark = pytest.mark.e2e

SHUTDOWN_LIMIT_SECONDS = 5.0
STARTUP_LIMIT_SECONDS = 30.0


@dataclass
class HangingApi:
    """A 'SoftLayer' that accepts requests and never answers them."""

    url: str
    request_seen: asyncio.Event
    release: asyncio.Event


@pytest.fixture(name="hanging")
async def _hanging() -> AsyncIterator[HangingApi]:
    seen, release = asyncio.Event(), asyncio.Event()
    api = HangingApi("", seen, release)

    async def handler(request: web.Request) -> web.Response:
        seen.set()
        await release.wait()
        return web.json_response({})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    api.url = f"http://{host}:{port}/rest/v3.1/"
    yield api
    release.set()
    await runner.cleanup()


@dataclass
class Exporter:
    proc: asyncio.subprocess.Process
    url: str
    lines: list[dict[str, object]]
    reader: asyncio.Task[None]
    #: Set when the log says a poll ended (the first poll event).
    polled: asyncio.Event


@contextlib.asynccontextmanager
async def running_exporter(*args: str, env: dict[str, str]) -> AsyncIterator[Exporter]:
    """The exporter on an ephemeral port, its JSON log lines collected; killed if left running."""
    proc = await spawn_exporter(
        "--web.listen-address", "127.0.0.1:0", *args, env=env, stdout=asyncio.subprocess.DEVNULL
    )
    lines: list[dict[str, object]] = []
    listening: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    polled = asyncio.Event()

    async def read() -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            event = json.loads(line)
            lines.append(event)
            if event.get("event") == "listening" and not listening.done():
                listening.set_result(event["urls"][0])
            elif event.get("event") == "poll":
                polled.set()
        if not listening.done():
            listening.set_exception(AssertionError(f"exporter exited: {lines}"))

    reader = asyncio.create_task(read())
    try:
        url = await asyncio.wait_for(listening, STARTUP_LIMIT_SECONDS)
        yield Exporter(proc, url, lines, reader, polled)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def stop(exporter: Exporter, signum: int = signal.SIGTERM) -> int:
    """Send ``signum`` and return the exit code, which must come within the shutdown limit."""
    exporter.proc.send_signal(signum)
    code = await asyncio.wait_for(exporter.proc.wait(), SHUTDOWN_LIMIT_SECONDS)
    await exporter.reader
    return code


def hanging_config(tmp_path: Path, hanging: HangingApi) -> Path:
    """A config polling the hanging API once an hour, with a request timeout far away."""
    config = tmp_path / "c.yaml"
    config.write_text(
        f"poll_interval: 1h\nrequest_timeout: 5m\naccounts:\n  - name: prod\n"
        f"    endpoint: {hanging.url}\n"
        f"    auth: {{method: classic, username: u, api_key_env: SL_KEY}}\n"
    )
    return config


async def test_sigterm_during_poll(tmp_path, hanging):
    """A poll hanging on SoftLayer is cancelled by SIGTERM; exit 0 within 5 s."""
    config = hanging_config(tmp_path, hanging)
    async with running_exporter(
        "--config.file", str(config), env={"SL_KEY": PLANTED_KEY}
    ) as exporter:
        await asyncio.wait_for(hanging.request_seen.wait(), STARTUP_LIMIT_SECONDS)
        async with aiohttp.ClientSession() as session:
            async with session.get(exporter.url + "/healthz") as resp:
                assert resp.status == 200
            async with session.get(exporter.url + "/readyz") as resp:
                assert resp.status == 503  # the first cycle is still hanging
        started = time.monotonic()
        code = await stop(exporter)
        elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < SHUTDOWN_LIMIT_SECONDS
    events = [line["event"] for line in exporter.lines]
    assert "shutting_down" in events
    assert "poller_stopped" in events
    assert not [line for line in exporter.lines if line["level"] == "error"]
    assert PLANTED_KEY not in json.dumps(exporter.lines)


async def test_sigint_when_idle(tmp_path):
    """SIGINT (Ctrl-C) between polls also exits 0; an unreachable API is not fatal."""
    config = tmp_path / "c.yaml"
    config.write_text(
        "poll_interval: 1h\nretry: {attempts: 1}\naccounts:\n  - name: prod\n"
        "    endpoint: http://127.0.0.1:9/rest/v3.1/\n"
        "    auth: {method: apikey, api_key_env: SL_KEY}\n"
    )
    async with running_exporter(
        "--config.file", str(config), env={"SL_KEY": PLANTED_KEY}
    ) as exporter:
        # The first cycle ends with its poll event; /readyz turns 200 once /metrics serves
        # it, which only the endpoint itself can tell.
        await asyncio.wait_for(exporter.polled.wait(), STARTUP_LIMIT_SECONDS)
        async with aiohttp.ClientSession() as session:

            async def ready() -> bool | None:
                async with session.get(exporter.url + "/readyz") as resp:
                    return True if resp.status == 200 else None

            def alive() -> None:
                assert exporter.proc.returncode is None, exporter.lines

            await poll_until(
                "ready", ready, alive=alive, report=lambda: str(exporter.lines[-20:]),
                deadline=STARTUP_LIMIT_SECONDS,
            )  # fmt: skip
            async with session.get(exporter.url + "/metrics") as resp:
                text = await resp.text()
            assert 'softlayer_up{account="prod"} 0.0' in text
        code = await stop(exporter, signal.SIGINT)
    assert code == 0
    assert PLANTED_KEY not in json.dumps(exporter.lines)
    polls = [line for line in exporter.lines if line["event"] == "poll"]
    assert [(p["account"], p["outcome"]) for p in polls] == [("prod", "failed")]


async def test_second_sigterm_during_shutdown_still_exits_0(tmp_path, hanging):
    """A SIGTERM sent while the exporter is already stopping changes nothing: exit 0."""
    config = hanging_config(tmp_path, hanging)
    async with running_exporter(
        "--config.file", str(config), env={"SL_KEY": PLANTED_KEY}
    ) as exporter:
        await asyncio.wait_for(hanging.request_seen.wait(), STARTUP_LIMIT_SECONDS)
        exporter.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(seen(exporter, "shutting_down"), SHUTDOWN_LIMIT_SECONDS)
        with contextlib.suppress(ProcessLookupError):  # it may be gone already: fine too
            exporter.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(exporter.proc.wait(), SHUTDOWN_LIMIT_SECONDS)
        await exporter.reader
    assert code == 0
    assert not [line for line in exporter.lines if line["level"] == "error"]


async def test_sighup_without_a_config_file_is_logged(tmp_path):
    """SIGHUP in --demo (nothing to read again) is a log line, not the default exit 129."""
    async with running_exporter("--demo", env={DEMO_POLL_INTERVAL_ENV: "1h"}) as exporter:
        exporter.proc.send_signal(signal.SIGHUP)
        await asyncio.wait_for(seen(exporter, "reload_unavailable"), STARTUP_LIMIT_SECONDS)
        assert exporter.proc.returncode is None
        code = await stop(exporter)
    assert code == 0


async def seen(exporter: Exporter, event: str) -> None:
    """Return once the exporter has logged ``event`` (checked as its lines arrive)."""
    while not any(line.get("event") == event for line in exporter.lines):
        if exporter.reader.done():
            raise AssertionError(f"exporter exited before {event!r}: {exporter.lines}")
        await asyncio.sleep(0.01)
