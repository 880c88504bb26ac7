"""The exporter behind a corporate egress proxy: HTTPS_PROXY, HTTP_PROXY and NO_PROXY.

A real forward proxy (Debian's tinyproxy) carries the exporter's requests to the simulator.
The simulator sits behind a relay that admits only the proxy's outgoing address, so a
request that bypassed the proxy is refused; the proxy's own log and the simulator's request
count must agree with the exporter's. Loopback is proxied like any other host unless
NO_PROXY lists it (the exporter resolves the proxy with the standard library's environment
rules, not aiohttp's ``trust_env``); if that ever stopped, the poll would fail at the relay.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from yarl import URL

from exporter.netdiag import proxy_for
from exporter.simulator import Scenario, SimulatorServer
from tests.conftest import refused_port
from tests.field.conftest import (
    PROXY_SOURCE,
    Certs,
    Relay,
    run_once,
    tinyproxy,
    write_config,
)


@contextlib.asynccontextmanager
async def relayed(
    tmp_path: Path,
    sim: SimulatorServer,
    scenario: Scenario,
    certs: Certs | None = None,
    *,
    iam: bool = False,
) -> AsyncIterator[tuple[Relay, Path]]:
    """The simulator behind a relay only the proxy may reach (TLS with ``certs``), and the
    exporter's config for it: classic auth, or IAM through the relay's token URL."""
    account = scenario.accounts[0]
    tls = None if certs is None else certs.server_context()
    async with Relay(sim.port, admit=PROXY_SOURCE, tls=tls) as relay:
        auth = (
            {"method": "iam", "iam_token_url": f"{relay.url}/identity/token"}
            if iam
            else {"method": "classic", "username": account.username}
        )
        endpoint = f"{relay.url}/rest/v3.1/"
        yield relay, write_config(tmp_path / "config.yaml", endpoint=endpoint, auth=auth)


def _secrets(scenario: Scenario) -> list[str]:
    account = scenario.accounts[0]
    return [account.api_key, account.iam_api_key]


@pytest.mark.e2e
async def test_http_endpoint_through_http_proxy(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """HTTP_PROXY carries every request; the proxy's log lists each one the simulator served."""
    account = scenario.accounts[0]
    async with relayed(tmp_path, sim, scenario) as (relay, config):
        with tinyproxy(tmp_path) as proxy:
            sim.reset_stats()
            run = await run_once(config, account.api_key, HTTP_PROXY=proxy.url)
            logged = proxy.requests()
    assert run.returncode == 0, run.stderr
    assert relay.refused == []
    prefix = f"GET {relay.url}/rest/v3.1/"
    proxied = [line for line in logged if line.startswith(prefix)]
    requests = run.named("api_request")
    assert sim.stats.total > 3  # paged lists: more than one request per method
    assert len(proxied) == sim.stats.total == len(requests)
    latest = scenario.truth(account.id).latest_recurring_invoice
    assert latest is not None
    assert {line.split("?")[0].removeprefix(prefix) for line in proxied} == {
        "SoftLayer_Account/getObject.json",
        "SoftLayer_Account/getInvoices.json",
        "SoftLayer_Account/getNextInvoiceTopLevelBillingItems.json",
        f"SoftLayer_Billing_Invoice/{latest.id}/getInvoiceTopLevelItems.json",
    }
    (started,) = run.named("poll")
    assert started["outcome"] == "ok"
    for secret in _secrets(scenario):
        assert secret not in run.stderr
        assert secret not in "\n".join(logged)


@pytest.mark.e2e
async def test_https_endpoint_and_iam_through_connect_tunnel(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario, certs: Certs
) -> None:
    """HTTPS_PROXY tunnels TLS (CONNECT) to the API and the IAM token URL; NO_PROXY bypasses it."""
    account = scenario.accounts[0]
    async with relayed(tmp_path, sim, scenario, certs, iam=True) as (relay, config):
        with tinyproxy(tmp_path) as proxy:
            sim.reset_stats()
            run = await run_once(
                config, account.iam_api_key, HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(certs.ca)
            )
            tunnels = [line for line in proxy.requests() if line.startswith("CONNECT ")]
            # The contrast: the same run with the relay's host in NO_PROXY goes direct.
            direct = await run_once(
                config,
                account.iam_api_key,
                HTTPS_PROXY=proxy.url,
                NO_PROXY="127.0.0.1",
                SSL_CERT_FILE=str(certs.ca),
            )
            tunnels_after = [line for line in proxy.requests() if line.startswith("CONNECT ")]
    assert run.returncode == 0, run.stderr
    assert tunnels
    assert all(line == f"CONNECT 127.0.0.1:{relay.port} HTTP/1.1" for line in tunnels)
    assert sim.stats.token_requests >= 1
    assert sim.stats.total == len(run.named("api_request"))
    # Every connection the relay let through was a tunnel; the direct ones were refused.
    assert relay.admitted == len(tunnels)
    assert direct.returncode == 1
    assert tunnels_after == tunnels
    assert relay.refused
    assert set(relay.refused) == {"127.0.0.1"}
    assert direct.sample("softlayer_api_errors_total", account="prod", reason="network")
    for secret in _secrets(scenario):
        assert secret not in run.stderr + direct.stderr


@pytest.mark.e2e
async def test_proxy_that_refuses_the_tunnel(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario, certs: Certs
) -> None:
    """A proxy that allows CONNECT to port 443 only: a clear error, counted as network."""
    account = scenario.accounts[0]
    async with relayed(tmp_path, sim, scenario, certs) as (relay, config):
        with tinyproxy(tmp_path, "ConnectPort 443") as proxy:
            sim.reset_stats()
            run = await run_once(
                config, account.api_key, HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(certs.ca)
            )
            logged = proxy.requests()
    assert run.returncode == 1
    assert any(line.startswith(f"CONNECT 127.0.0.1:{relay.port}") for line in logged)
    assert sim.stats.total == 0
    assert relay.admitted == 0
    assert run.sample("softlayer_api_errors_total", account="prod", reason="network")
    assert run.sample("softlayer_api_errors_total", account="prod", reason="auth") in (None, 0.0)
    (warning,) = run.named("api_failing")  # once, not once per source
    assert warning["reason"] == "network"
    assert "the proxy refused the tunnel: HTTP 403" in warning["error"]
    assert "NO_PROXY" in warning["hint"]
    assert "HTTPS_PROXY" in warning["hint"]
    (poll,) = run.named("poll")
    assert poll["outcome"] == "failed"


@pytest.mark.e2e
async def test_proxy_that_is_down(tmp_path: Path, scenario: Scenario) -> None:
    """HTTPS_PROXY naming a port nobody listens on: the error names the proxy, not the API."""
    account = scenario.accounts[0]
    config = write_config(
        tmp_path / "config.yaml",
        endpoint="https://api.softlayer.com/rest/v3.1/",
        auth={"method": "classic", "username": account.username},
    )
    with refused_port() as port:
        run = await run_once(config, account.api_key, HTTPS_PROXY=f"http://127.0.0.1:{port}")
    assert run.returncode == 1
    assert run.sample("softlayer_api_errors_total", account="prod", reason="network")
    (warning,) = run.named("api_failing")
    assert warning["error"].endswith(
        f": cannot connect to the proxy 127.0.0.1:{port}: Connection refused"
    )
    assert "HTTPS_PROXY" in warning["hint"]
    assert "ssl:default" not in run.stderr


@pytest.mark.e2e
async def test_netrc_is_not_consulted(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario
) -> None:
    """A ~/.netrc entry for the API host changes nothing (aiohttp's trust_env would clash)."""
    account = scenario.accounts[0]
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login someone password elsewhere\n", encoding="utf-8")
    netrc.chmod(0o600)
    async with relayed(tmp_path, sim, scenario) as (_, config):
        with tinyproxy(tmp_path) as proxy:
            run = await run_once(config, account.api_key, HTTP_PROXY=proxy.url, NETRC=str(netrc))
    assert run.returncode == 0, run.stderr
    assert "elsewhere" not in run.stderr


@pytest.mark.parametrize(
    ("env", "url", "expected"),
    [
        ({"HTTPS_PROXY": "http://p:3128"}, "https://api.softlayer.com/rest/v3.1/", "http://p:3128"),
        ({"HTTPS_PROXY": "http://p:3128"}, "http://127.0.0.1:9/rest/v3.1/", None),
        ({"HTTP_PROXY": "p:8080"}, "http://127.0.0.1:9/", "http://p:8080"),
        (
            {"https_proxy": "http://low:1", "HTTPS_PROXY": "http://UP:2"},
            "https://a.b/",
            "http://low:1",
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": ".softlayer.com"},
            "https://api.softlayer.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "softlayer.com"},
            "https://api.softlayer.com/",
            None,
        ),
        (
            {"HTTPS_PROXY": "http://p:1", "NO_PROXY": "other.com"},
            "https://api.softlayer.com/",
            "http://p:1",
        ),
        ({"HTTPS_PROXY": "http://p:1", "NO_PROXY": "*"}, "https://api.softlayer.com/", None),
        ({"HTTPS_PROXY": "https://p:1"}, "https://api.softlayer.com/", None),
    ],
)
def test_proxy_resolution_follows_the_environment_rules(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], url: str, expected: str | None
) -> None:
    """Scheme picks the variable, lower case wins, NO_PROXY matches host suffixes and '*'."""
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    found = proxy_for(url)
    assert (str(found["proxy"]) if found else None) == expected


def test_proxy_credentials_become_proxy_authorization(monkeypatch: pytest.MonkeyPatch) -> None:
    """user:password in the proxy URL is sent as Proxy-Authorization, not left in the URL."""
    monkeypatch.setenv("HTTPS_PROXY", "http://alice:s%40cret@p:3128")
    found = proxy_for("https://api.softlayer.com/rest/v3.1/")
    assert found["proxy"] == URL("http://p:3128")
    expected = "Basic " + base64.b64encode(b"alice:s@cret").decode()
    assert found["proxy_headers"] == {"Proxy-Authorization": expected}


@pytest.mark.e2e
async def test_proxy_that_wants_credentials(
    tmp_path: Path, sim: SimulatorServer, scenario: Scenario, certs: Certs
) -> None:
    """A proxy with basic auth: credentials in HTTPS_PROXY pass; without them, 407 and a hint."""
    account = scenario.accounts[0]
    async with relayed(tmp_path, sim, scenario, certs) as (_, config):
        with tinyproxy(tmp_path, "BasicAuth alice pr0xy-pa55") as proxy:
            with_credentials = proxy.url.replace("http://", "http://alice:pr0xy-pa55@")
            ok = await run_once(
                config, account.api_key, HTTPS_PROXY=with_credentials, SSL_CERT_FILE=str(certs.ca)
            )
            refused = await run_once(
                config, account.api_key, HTTPS_PROXY=proxy.url, SSL_CERT_FILE=str(certs.ca)
            )
    assert ok.returncode == 0, ok.stderr
    assert "pr0xy-pa55" not in ok.stderr + ok.exposition
    assert refused.returncode == 1
    (warning,) = refused.named("api_failing")
    assert "the proxy refused the tunnel: HTTP 407" in warning["error"]
    assert "credentials" in warning["hint"]
    assert refused.sample("softlayer_api_errors_total", account="prod", reason="network")
