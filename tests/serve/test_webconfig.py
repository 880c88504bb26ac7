"""--web.config.file: exporter-toolkit TLS and bcrypt basic auth, over loopback."""

from __future__ import annotations

import base64
import ssl
import subprocess
from pathlib import Path

import aiohttp
import bcrypt
import pytest

from exporter.snapshot import ExporterState
from exporter.webconfig import WebConfigError, load_web_config
from tests.conftest import require_tool

from . import builders as b
from .conftest import FakePoller, run_app

PASSWORD = "correct horse battery staple"


@pytest.fixture(name="hashed", scope="module")
def _hashed() -> str:
    # Cost 4 keeps the tests fast; production hashes use 10-12.
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write(tmp_path, text: str):
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def client_context(certs, *, with_cert: bool = False) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certs.ca))
    if with_cert:
        context.load_cert_chain(certs.client_cert, certs.client_key)
    return context


class TestBasicAuth:
    async def test_password_checked(self, tmp_path, hashed):
        """Right password: 200; wrong or missing password: 401 with a Basic challenge."""
        web = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n"))
        runner, url = await run_app(b.state(b.full_snapshot()), None, web)
        try:
            async with aiohttp.ClientSession() as session:
                good = basic("prometheus", PASSWORD)
                async with session.get(url + "/metrics", headers=good) as resp:
                    assert resp.status == 200
                # The second request is answered from the verification cache.
                async with session.get(url + "/metrics", headers=good) as resp:
                    assert resp.status == 200
                for headers in (basic("prometheus", "wrong"), basic("nobody", PASSWORD), {}):
                    async with session.get(url + "/metrics", headers=headers) as resp:
                        assert resp.status == 401
                        assert resp.headers["WWW-Authenticate"].startswith("Basic ")
                async with session.get(url + "/") as resp:
                    assert resp.status == 401
                async with session.get(
                    url + "/metrics", headers={"Authorization": "Basic !!notbase64"}
                ) as resp:
                    assert resp.status == 401
        finally:
            await runner.cleanup()

    async def test_probes_stay_open(self, tmp_path, hashed):
        """/healthz and /readyz answer without credentials, for kubelet probes."""
        web = load_web_config(write(tmp_path, f"basic_auth_users:\n  prometheus: '{hashed}'\n"))
        state = ExporterState(("prod",))
        runner, url = await run_app(state, FakePoller(state), web)
        try:
            async with aiohttp.ClientSession() as session:
                async with session.get(url + "/healthz") as resp:
                    assert resp.status == 200
                async with session.get(url + "/readyz") as resp:
                    assert resp.status == 503  # not ready, but not 401
        finally:
            await runner.cleanup()


class TestTLS:
    async def test_tls_with_basic_auth(self, tmp_path, certs, hashed):
        """HTTPS with basic auth works; plain HTTP to the TLS port fails."""
        web = load_web_config(
            write(
                tmp_path,
                f"""
tls_server_config:
  cert_file: {certs.cert}
  key_file: {certs.key}
  min_version: TLS12
basic_auth_users:
  prometheus: '{hashed}'
http_server_config:
  headers:
    X-Frame-Options: deny
""",
            )
        )
        runner, url = await run_app(b.state(b.full_snapshot()), None, web)
        assert url.startswith("https://")
        try:
            connector = aiohttp.TCPConnector(ssl=client_context(certs))
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.get(
                    url + "/metrics", headers=basic("prometheus", PASSWORD)
                ) as resp:
                    assert resp.status == 200
                    assert resp.headers["X-Frame-Options"] == "deny"
                    assert "softlayer_up" in await resp.text()
                async with session.get(
                    url + "/metrics", headers=basic("prometheus", "nope")
                ) as resp:
                    assert resp.status == 401
            async with aiohttp.ClientSession() as plain:
                with pytest.raises(aiohttp.ClientError):
                    async with plain.get(url.replace("https://", "http://") + "/metrics") as resp:
                        await resp.read()
        finally:
            await runner.cleanup()

    async def test_client_certificates(self, tmp_path, certs):
        """RequireAndVerifyClientCert refuses clients without a certificate from the CA."""
        web = load_web_config(
            write(
                tmp_path,
                f"""
tls_server_config:
  cert_file: {certs.cert}
  key_file: {certs.key}
  client_ca_file: {certs.ca}
  client_auth_type: RequireAndVerifyClientCert
""",
            )
        )
        runner, url = await run_app(b.state(b.full_snapshot()), None, web)
        try:
            with_cert = aiohttp.TCPConnector(ssl=client_context(certs, with_cert=True))
            async with (
                aiohttp.ClientSession(connector=with_cert) as session,
                session.get(url + "/metrics") as resp,
            ):
                assert resp.status == 200
            without = aiohttp.TCPConnector(ssl=client_context(certs))
            async with aiohttp.ClientSession(connector=without) as session:
                with pytest.raises(aiohttp.ClientError):
                    async with session.get(url + "/metrics") as resp:
                        await resp.read()
        finally:
            await runner.cleanup()

    def test_relative_paths(self, tmp_path, certs):
        """cert_file and key_file are relative to the web config file."""
        (tmp_path / "s.crt").write_bytes(certs.cert.read_bytes())
        (tmp_path / "s.key").write_bytes(certs.key.read_bytes())
        web = load_web_config(
            write(tmp_path, "tls_server_config: {cert_file: s.crt, key_file: s.key}\n")
        )
        assert web.ssl_context is not None


class TestInvalid:
    def test_every_problem_listed(self, tmp_path):
        """All problems are listed with their key path, and a plain password is not echoed."""
        path = write(
            tmp_path,
            """
tls_server_config:
  cert_file: missing.crt
  client_auth_type: Sometimes
  cipher_suites: [TLS_AES_128_GCM_SHA256]
  min_version: SSL3
basic_auth_users:
  alice: plaintext-password-oops
extra: 1
""",
        )
        with pytest.raises(WebConfigError) as info:
            load_web_config(path)
        found = info.value.problems
        assert "extra: unknown key" in found
        assert "tls_server_config.cipher_suites: not supported by this exporter" in found
        assert f"tls_server_config.cert_file: file not found: {tmp_path / 'missing.crt'}" in found
        assert "tls_server_config.key_file: required" in found
        assert any(
            p.startswith("tls_server_config.client_auth_type: must be one of") for p in found
        )
        assert any(p.startswith("tls_server_config.min_version: must be one of") for p in found)
        assert any(p.startswith("basic_auth_users.alice: must be a bcrypt hash") for p in found)
        assert "plaintext-password-oops" not in str(info.value)

    def test_ca_without_verification(self, tmp_path, certs):
        """A client CA with NoClientCert is refused, as exporter-toolkit does."""
        path = write(
            tmp_path,
            f"""
tls_server_config: {{cert_file: {certs.cert}, key_file: {certs.key}, client_ca_file: {certs.ca}}}
""",
        )
        with pytest.raises(WebConfigError, match="client_ca_file: set, but client_auth_type"):
            load_web_config(path)

    def test_missing_file(self, tmp_path):
        """A missing web config file is reported."""
        with pytest.raises(WebConfigError, match="file not found"):
            load_web_config(tmp_path / "absent.yml")


class TestPromtool:
    def test_accepts_our_format(self, tmp_path, certs, hashed):
        """promtool check web-config accepts a file this exporter accepts."""
        promtool = require_tool("promtool")
        path = write(
            tmp_path,
            f"""
tls_server_config:
  cert_file: {certs.cert}
  key_file: {certs.key}
  client_ca_file: {certs.ca}
  client_auth_type: RequireAndVerifyClientCert
basic_auth_users:
  prometheus: '{hashed}'
""",
        )
        load_web_config(path)
        result = subprocess.run(
            [promtool, "check", "web-config", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


EXAMPLE = Path(__file__).resolve().parents[2] / "web-config.example.yml"


class TestShippedExample:
    def test_example_loads_and_passes_promtool(self):
        """The shipped web-config.example.yml loads here and passes promtool check web-config."""
        web = load_web_config(EXAMPLE)
        assert set(web.users) == {"prometheus"}
        result = subprocess.run(
            [require_tool("promtool"), "check", "web-config", str(EXAMPLE)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr

    def test_example_tls_block(self, tmp_path, certs):
        """The example's commented TLS block works once uncommented, for us and promtool."""
        (tmp_path / "tls").mkdir()
        (tmp_path / "tls" / "server.crt").write_bytes(certs.cert.read_bytes())
        (tmp_path / "tls" / "server.key").write_bytes(certs.key.read_bytes())
        lines = []
        for original in EXAMPLE.read_text().splitlines():
            line = original
            stripped = line.removeprefix("# ")
            if stripped.startswith(
                ("tls_server_config:", "  cert_file:", "  key_file:", "  min_version:")
            ):
                line = stripped
            lines.append(line)
        path = tmp_path / "web.yml"
        path.write_text("\n".join(lines) + "\n")
        assert load_web_config(path).ssl_context is not None
        result = subprocess.run(
            [require_tool("promtool"), "check", "web-config", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
