"""Helpers of the reliability tests: a real exporter process, its JSON logs and its scrapes."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from tests.field.conftest import Relay
from tests.helpers.processes import exporter_command, poll_until

#: Deadline for anything the tests wait on; a wait that hits it is a failure, not a timing claim.
DEADLINE_SECONDS = 60.0

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]

#: Families that change every cycle by design (timings, attempts, counters); the rest is data.
VOLATILE = {
    "softlayer_up",
    "softlayer_source_up",
    "softlayer_source_last_success_timestamp_seconds",
    "softlayer_source_last_attempt_timestamp_seconds",
    "softlayer_poll_duration_seconds",
    "softlayer_next_poll_timestamp_seconds",
    "softlayer_api_requests_total",
    "softlayer_api_errors_total",
    "softlayer_api_request_duration_seconds_bucket",
    "softlayer_api_request_duration_seconds_sum",
    "softlayer_api_request_duration_seconds_count",
    "softlayer_api_request_duration_seconds_created",
    "softlayer_api_requests_created",
    "softlayer_api_errors_created",
    # Projections to the end of the billing cycle move with the poll's time by design.
    "softlayer_next_invoice_projected_pre_tax_usd",
    "softlayer_next_invoice_category_projected_usd",
}


def parse_samples(text: str) -> Samples:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def data_of(samples: Samples, account: str) -> Samples:
    """The billing data one account exports: what must survive a fault unchanged."""
    return {
        key: value
        for key, value in samples.items()
        if key[0].startswith("softlayer_")
        and key[0] not in VOLATILE
        and ("account", account) in key[1]
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def account_yaml(
    name: str, endpoint: str, auth: str, extra: str = "thresholds: {monthly_budget_usd: 1000}"
) -> str:
    return f"  - name: {name}\n    endpoint: {endpoint}\n    auth: {auth}\n    {extra}\n"


def classic_auth(username: str, env_name: str) -> str:
    return f"{{method: classic, username: {json.dumps(username)}, api_key_env: {env_name}}}"


def iam_auth(token_url: str, env_name: str) -> str:
    return f"{{method: iam, api_key_env: {env_name}, iam_token_url: {token_url}}}"


def write_config(path: Path, accounts_yaml: Iterable[str], header: str) -> Path:
    path.write_text(header + "accounts:\n" + "".join(accounts_yaml))
    return path


def fast_header(budget: float, timeout: str = "1s", attempts: int = 2) -> str:
    """Shortest legal poll interval, no jitter, fast retries."""
    return (
        "poll_interval: 1s\npoll_jitter: 0\n"
        f"request_timeout: {timeout}\nmax_requests_per_second: {budget}\n"
        f"retry: {{attempts: {attempts}, initial_backoff: 10ms, max_backoff: 20ms}}\n"
    )


class ExporterProcess:
    """The real ``softlayer-billing-exporter`` in a subprocess, with its JSON logs parsed live."""

    def __init__(
        self, config: Path, env: dict[str, str], *extra: str, wrapper: Iterable[str] = ()
    ) -> None:
        self.args = [
            *wrapper,
            *exporter_command(),
            "--config.file",
            str(config),
            "--web.listen-address",
            "127.0.0.1:0",
            "--log.format",
            "json",
            *extra,
        ]
        self.env = {**os.environ, **env}
        self.proc: asyncio.subprocess.Process | None = None
        self.events: list[dict[str, Any]] = []
        self.stderr_lines: list[str] = []
        self.stdout = b""
        self.url = ""
        self._changed = asyncio.Condition()
        self._readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> ExporterProcess:
        self.proc = await asyncio.create_subprocess_exec(
            *self.args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )
        self._readers = [
            asyncio.create_task(self._read_stderr()),
            asyncio.create_task(self._read_stdout()),
        ]
        listening = await self.wait_for(lambda: self._first("listening"))
        self.url = listening["urls"][0].rstrip("/")
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()
        for task in self._readers:
            await asyncio.wait_for(task, DEADLINE_SECONDS)

    async def _read_stderr(self) -> None:
        assert self.proc is not None
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            async with self._changed:
                self.stderr_lines.append(line)
                try:
                    event = json.loads(line)
                except ValueError:
                    event = None
                if isinstance(event, dict):
                    self.events.append(event)
                self._changed.notify_all()

    async def _read_stdout(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        self.stdout = await self.proc.stdout.read()

    def _first(self, name: str) -> dict[str, Any] | None:
        return next((e for e in self.events if e.get("event") == name), None)

    async def wait_for(self, predicate: Callable[[], Any]) -> Any:
        """Wait for the log to satisfy ``predicate`` (returns its truthy value)."""

        async def waiting() -> Any:
            async with self._changed:
                while not (result := predicate()):
                    if self.proc is not None and self.proc.returncode is not None:
                        raise AssertionError("exporter exited:\n" + "\n".join(self.stderr_lines))
                    await self._changed.wait()
                return result

        try:
            return await asyncio.wait_for(waiting(), DEADLINE_SECONDS)
        except TimeoutError:
            raise AssertionError(
                "condition not met; log:\n" + "\n".join(self.stderr_lines[-40:])
            ) from None

    def polls(self, account: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == "poll" and e.get("account") == account]

    async def more_polls(self, accounts: Iterable[str], n: int) -> dict[str, dict[str, Any]]:
        """Wait until every account logged ``n`` more poll events; returns each one's last."""
        accounts = list(accounts)
        start = {a: len(self.polls(a)) for a in accounts}
        await self.wait_for(lambda: all(len(self.polls(a)) >= start[a] + n for a in accounts))
        return {a: self.polls(a)[-1] for a in accounts}

    async def get(self, session: aiohttp.ClientSession, path: str) -> tuple[int, str]:
        async with session.get(self.url + path) as resp:
            return resp.status, await resp.text()

    async def scrape(self, session: aiohttp.ClientSession) -> Samples:
        status, text = await self.get(session, "/metrics")
        assert status == 200, text
        return parse_samples(text)

    async def scrape_after(
        self, session: aiohttp.ClientSession, polls: dict[str, dict[str, Any]]
    ) -> Samples:
        """Scrape once /metrics serves the polls logged (``more_polls``' result).

        /metrics is rendered ahead, shortly after a poll is published, so a scrape right after
        the poll event may still get the rendering before it. Each poll event's
        ``attempted_at`` is what the account's ``softlayer_source_last_attempt_timestamp_seconds``
        shows once its poll is served.
        """

        async def served() -> Samples | None:
            samples = await self.scrape(session)
            for account, event in polls.items():
                attempts = [
                    v
                    for (name, labels), v in samples.items()
                    if name == "softlayer_source_last_attempt_timestamp_seconds"
                    and ("account", account) in labels
                ]
                if not attempts or max(attempts) < event["attempted_at"]:
                    return None
            return samples

        def alive() -> None:
            assert self.proc is not None
            assert self.proc.returncode is None, "\n".join(self.stderr_lines[-40:])

        return await poll_until(
            "/metrics to serve the polls logged",
            served,
            alive=alive,
            report=lambda: "\n".join(self.stderr_lines[-40:]),
            deadline=DEADLINE_SECONDS,
        )

    async def terminate(self) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), DEADLINE_SECONDS)


def _port_sharing_socket() -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    return sock


class Gate(Relay):
    """A relay to ``target_port`` on a port that refuses connections while closed.

    The port stays bound by a socket that never listens (with SO_REUSEPORT, so the relay's
    listener can share it): while the gate is closed every connection is refused, and no
    other process can take the port in between, as one could after a server released it.
    """

    def __init__(self, target_port: int) -> None:
        super().__init__(target_port, admit="127.0.0.1")
        self._holder = _port_sharing_socket()
        self._holder.bind(("127.0.0.1", 0))
        self.port = int(self._holder.getsockname()[1])

    async def __aenter__(self) -> Gate:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
        self._holder.close()

    async def open(self) -> None:
        """Accept connections again, on the same port."""
        listener = _port_sharing_socket()
        listener.bind(("127.0.0.1", self.port))
        self._server = await asyncio.start_server(self._handle, sock=listener)

    async def close(self) -> None:
        """Refuse new connections and drop the open ones, like a server that went away."""
        if self._server is None:
            return
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None
