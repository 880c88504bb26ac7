"""A real Debian Prometheus server for tests: started on a TSDB directory, queried over HTTP.

Started with a retention long enough to keep backfilled months (the default of 15 days would
delete them), on loopback port 0 (it logs the port it bound: no port is picked here and then
taken by someone else first) and a configuration given by the test; stopped by pid. Every wait
polls the log or the HTTP API until a deadline; nothing sleeps for a fixed time.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import pytest
import yaml

from tests.helpers.processes import poll_until

DEADLINE_SECONDS = 60.0
#: Prometheus logs the address it bound (exporter-toolkit's web package).
_LISTENING_ON = re.compile(r'msg="Listening on" address=(\S+)')


class PrometheusServer:
    """``async with PrometheusServer(binary, workdir, storage=..., config=...) as server``."""

    def __init__(
        self,
        binary: str,
        workdir: Path,
        *,
        storage: Path,
        config: dict[str, Any] | None = None,
    ) -> None:
        self.binary = binary
        self.workdir = workdir
        self.storage = storage
        self.config = config or {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"}}
        self.address = ""  # host:port, known once the server logged it
        self.api = ""
        self.log = workdir / "prometheus.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None

    def _start(self) -> None:
        config = self.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config), encoding="utf-8")
        with self.log.open("wb") as out:
            self._process = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={self.storage}",
                    "--storage.tsdb.retention.time=5y",
                    "--web.listen-address=127.0.0.1:0",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.workdir,
            )

    async def __aenter__(self) -> PrometheusServer:
        self._start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20))
        self.address = await self.until("Prometheus to log its address", self._bound)
        self.api = f"http://{self.address}/api/v1"
        await self.until("Prometheus ready", self._ready)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._http is not None:
            await self._http.close()
        process = self._process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(process.wait, 20)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait, 20)

    def report(self) -> str:
        """The tail of the server's log, for failure messages."""
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    async def _bound(self) -> str | None:
        match = _LISTENING_ON.search(self.log.read_text(encoding="utf-8", errors="replace"))
        return match.group(1) if match else None

    async def _ready(self) -> bool | None:
        assert self._http is not None
        async with self._http.get(f"http://{self.address}/-/ready") as response:
            return True if response.status == 200 else None

    async def until(self, what: str, probe: Any, deadline: float = DEADLINE_SECONDS) -> Any:
        """Poll ``probe`` until it returns something other than None; fail at the deadline."""
        return await poll_until(
            what, probe, alive=self._alive, report=self.report, deadline=deadline
        )

    def _alive(self) -> None:
        assert self._process is not None
        if self._process.poll() is not None:
            pytest.fail(f"prometheus exited with {self._process.returncode}:\n{self.report()}")

    async def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """Run an instant query (at ``at``, unix time, else now); return its vector."""
        assert self._http is not None
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(float(at))
        async with self._http.get(f"{self.api}/query", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    async def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[dict[str, Any]]:
        """Run a range query; return its matrix."""
        assert self._http is not None
        params = {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
        async with self._http.get(f"{self.api}/query_range", params=params) as response:
            body = await response.json()
        assert body["status"] == "success", (expr, body)
        result: list[dict[str, Any]] = body["data"]["result"]
        return result
