"""A real Prometheus scrapes the exporter over TLS with basic auth (Debian's prometheus)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.webconfig import load_web_config
from tests.conftest import require_tool
from tests.helpers import builders as b

from .conftest import run_app

pytestmark = pytest.mark.e2e

PASSWORD = "scrape-me"
DEADLINE_SECONDS = 60.0


async def _start_prometheus(
    config_path: Path, data_dir: Path
) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    proc = await asyncio.create_subprocess_exec(
        require_tool("prometheus"),
        f"--config.file={config_path}",
        f"--storage.tsdb.path={data_dir}",
        "--web.listen-address=127.0.0.1:0",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stderr is not None
    address = None
    log: list[str] = []
    while address is None:
        line = await asyncio.wait_for(proc.stderr.readline(), timeout=DEADLINE_SECONDS)
        if not line:
            raise AssertionError("prometheus exited:\n" + "".join(log))
        text = line.decode(errors="replace")
        log.append(text)
        match = re.search(r'msg="Listening on" address=(\S+)', text)
        if match:
            address = match.group(1)

    async def drain() -> None:
        # Keep reading so Prometheus never blocks on a full pipe.
        assert proc.stderr is not None
        while await proc.stderr.readline():
            pass

    return proc, f"http://{address}", asyncio.create_task(drain())


async def _up_values(session: aiohttp.ClientSession, base: str) -> dict[str, float]:
    async with session.get(base + "/api/v1/query", params={"query": "up"}) as resp:
        body = await resp.json()
    return {r["metric"]["job"]: float(r["value"][1]) for r in body["data"]["result"]}


@pytest.mark.prometheus
async def test_prometheus_scrapes_over_tls_with_basic_auth(tmp_path, certs):
    """up is 1 with the right password over TLS and 0 with a wrong one."""
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()
    web_path = tmp_path / "web.yml"
    web_path.write_text(
        f"tls_server_config:\n  cert_file: {certs.cert}\n  key_file: {certs.key}\n"
        f"basic_auth_users:\n  prometheus: '{hashed}'\n"
    )
    runner, url = await run_app(b.state(b.full_snapshot()), None, load_web_config(web_path))
    target = url.removeprefix("https://")
    jobs = []
    for job, password in (("good", PASSWORD), ("bad", "wrong")):
        jobs.append(
            f"""  - job_name: {job}
    scheme: https
    tls_config: {{ca_file: {certs.ca}}}
    basic_auth: {{username: prometheus, password: {password}}}
    static_configs: [{{targets: ["{target}"]}}]
"""
        )
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        "global: {scrape_interval: 1s, scrape_timeout: 1s}\nscrape_configs:\n" + "".join(jobs)
    )
    proc, base, drain = await _start_prometheus(prom_config, tmp_path / "data")
    try:
        async with aiohttp.ClientSession() as session:
            deadline = time.monotonic() + DEADLINE_SECONDS
            up: dict[str, float] = {}
            # Wait for a condition (both jobs scraped), polling the query API.
            while set(up) != {"good", "bad"} and time.monotonic() < deadline:
                await asyncio.sleep(0.25)
                with contextlib.suppress(aiohttp.ClientError):
                    up = await _up_values(session, base)
            assert up == {"good": 1.0, "bad": 0.0}
            async with session.get(
                base + "/api/v1/query", params={"query": "softlayer_account_balance_usd"}
            ) as resp:
                result = (await resp.json())["data"]["result"]
            assert [float(r["value"][1]) for r in result] == [-12.34]
    finally:
        proc.terminate()
        await proc.wait()
        drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain
        await runner.cleanup()
