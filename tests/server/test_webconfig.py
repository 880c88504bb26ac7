"""--web.config.file: exporter-toolkit TLS and bcrypt basic auth, over loopback."""

from __future__ import annotations

import asyncio
import base64
import os
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from structlog.testing import capture_logs

from exporter.snapshot import ExporterState
from exporter.webconfig import BasicAuth, WebConfig, WebConfigError, load_web_config
from tests.conftest import require_tool
from tests.helpers import builders as b

from .conftest import Certs, FakePoller, run_app

PASSWORD = "correct horse battery staple"


@pytest.fixture(name="hashed", scope="module")
def _hashed() -> str:
    # Cost 4 keeps the tests fast; production hashes use 10-12.
    return bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "web.yml"
    path.write_text(text)
    return path


def client_context(certs: Certs, *, with_cert: bool = False) -> ssl.SSLContext:
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


def web_file(tmp_path: Path, text: str) -> WebConfig:
    return load_web_config(write(tmp_path, text))


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(WebConfigError) as info:
        load_web_config(write(tmp_path, text))
    return info.value.problems


class TestToolkitChecks:
    def test_yaml_error_has_line_and_column(self, tmp_path):
        """A syntax error says where, like promtool, and no traceback leaves the loader."""
        (found,) = problems_of(tmp_path, "tls_server_config:\n  min_version: [TLS12\nfoo: 1\n")
        assert found.startswith("line 3, column 4: invalid YAML:")
        assert "expected ',' or ']'" in found

    def test_size_is_bounded(self, tmp_path):
        """A huge file (or /dev/zero) is refused after 64 KiB, not read for ever."""
        (found,) = problems_of(tmp_path, "# " + "x" * (64 * 1024) + "\n")
        assert "larger than 64 KiB" in found

    def test_depth_is_bounded(self, tmp_path):
        """YAML nested 20,000 deep is a clear error, not a RecursionError."""
        (found,) = problems_of(tmp_path, "basic_auth_users: " + "[" * 20_000 + "]" * 20_000)
        assert "nesting deeper than" in found

    def test_client_auth_type_of_the_wrong_type(self, tmp_path, certs):
        """client_auth_type: [a] is a listed problem, not a crash."""
        found = problems_of(
            tmp_path,
            f"tls_server_config: {{cert_file: {certs.cert}, key_file: {certs.key}, "
            "client_auth_type: [a]}\n",
        )
        assert any(
            p.startswith("tls_server_config.client_auth_type: must be one of") for p in found
        )

    def test_min_version_above_max_version(self, tmp_path, certs):
        """min_version TLS13 with max_version TLS12 (every handshake would fail) is refused."""
        found = problems_of(
            tmp_path,
            f"tls_server_config: {{cert_file: {certs.cert}, key_file: {certs.key}, "
            "min_version: TLS13, max_version: TLS12}\n",
        )
        assert found == ["tls_server_config: min_version TLS13 is above max_version TLS12"]

    def test_only_the_toolkit_headers(self, tmp_path):
        """Content-Length and friends cannot be configured; enumerated values are checked."""
        found = problems_of(
            tmp_path,
            "http_server_config:\n  headers:\n"
            "    Content-Length: '0'\n    X-Frame-Options: allowall\n"
            "    X-Content-Type-Options: nosniff\n",
        )
        assert found == [
            "http_server_config.headers.Content-Length: this header can not be configured "
            "(allowed: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, "
            "X-XSS-Protection, Content-Security-Policy)",
            "http_server_config.headers.X-Frame-Options: must be one of deny, sameorigin, "
            "got 'allowall'",
        ]

    def test_control_characters_in_headers(self, tmp_path):
        """A CR/LF in a header value (it would split every response) is refused."""
        found = problems_of(
            tmp_path,
            "http_server_config:\n  headers:\n"
            '    Content-Security-Policy: "a\\r\\nSet-Cookie: x"\n',
        )
        assert found == [
            "http_server_config.headers.Content-Security-Policy: "
            "contains a control character (CR, LF, ...)"
        ]
        assert "Set-Cookie" not in str(found)

    def test_no_bcrypt_work_at_import(self):
        """Importing the server modules computes no bcrypt hash (start-up stays fast)."""
        code = (
            "import bcrypt\n"
            "def boom(*a, **k): raise SystemExit('bcrypt used at import')\n"
            "bcrypt.hashpw = bcrypt.gensalt = bcrypt.checkpw = boom\n"
            "import exporter.webconfig, exporter.server, exporter.cli\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stderr


class TestResponseHeaders:
    async def test_on_every_response(self, tmp_path, hashed):
        """Configured headers and the minimal Server header are on 200, 401, 404 and 503."""
        web = web_file(
            tmp_path,
            f"basic_auth_users:\n  prometheus: '{hashed}'\n"
            "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
            "    Content-Security-Policy: \"default-src 'none'\"\n",
        )
        runner, url = await run_app(b.state(b.full_snapshot()), None, web, max_requests=1)
        app = runner.app
        try:
            async with aiohttp.ClientSession() as session:
                good = basic("prometheus", PASSWORD)
                statuses = []
                for path, headers in (
                    ("/metrics", good),
                    ("/metrics", {}),
                    ("/nowhere", good),
                    ("/healthz", {}),
                ):
                    async with session.get(url + path, headers=headers) as resp:
                        statuses.append(resp.status)
                        assert resp.headers["X-Frame-Options"] == "deny", path
                        assert resp.headers["Content-Security-Policy"] == "default-src 'none'"
                        assert resp.headers["Server"] == "softlayer-billing-exporter"
                assert statuses == [200, 401, 404, 200]
        finally:
            await runner.cleanup()
        assert app is not None


class TestBcrypt:
    async def test_one_check_at_a_time_and_results_cached(self, monkeypatch, hashed):
        """Concurrent checks run bcrypt one at a time; a repeated guess costs no bcrypt."""
        auth = BasicAuth({"prometheus": hashed.encode()})
        await auth.prepare()
        running = max_running = 0
        real = bcrypt.checkpw
        lock = threading.Lock()

        def counting(password: bytes, hashed_password: bytes) -> bool:
            nonlocal running, max_running
            with lock:
                running += 1
                max_running = max(max_running, running)
            try:
                return real(password, hashed_password)
            finally:
                with lock:
                    running -= 1

        monkeypatch.setattr(bcrypt, "checkpw", counting)
        guesses = [f"guess-{n}" for n in range(6)]
        results = await asyncio.gather(
            *(auth.check("prometheus", g) for g in guesses * 3),
            auth.check("nobody", "guess-0"),
            auth.check("prometheus", PASSWORD),
        )
        assert results == [False] * 19 + [True]
        assert max_running == 1
        # Six distinct wrong guesses, one unknown user, one right password: 8 bcrypt runs.
        assert auth.bcrypt_checks == 8
        assert await auth.check("prometheus", PASSWORD)
        assert await auth.check("nobody", "guess-0") is False
        assert auth.bcrypt_checks == 8

    async def test_decoy_costs_what_the_configured_hashes_cost(self):
        """Unknown users are checked against a hash of the highest configured cost."""
        cheap = bcrypt.hashpw(b"a", bcrypt.gensalt(rounds=4))
        dearer = bcrypt.hashpw(b"b", bcrypt.gensalt(rounds=6))
        auth = BasicAuth({"one": cheap, "two": dearer})
        assert auth.decoy_cost is None  # nothing hashed before the server starts
        await auth.prepare()
        assert auth.decoy_cost == 6


class TestCertificateReload:
    async def test_a_replaced_certificate_is_served_without_restart(self, tmp_path, certs):
        """The next handshake after a certificate is replaced on disk gets the new one; a
        half-written replacement (new certificate, old key) keeps the old one serving."""
        (tmp_path / "s.crt").write_bytes(certs.cert.read_bytes())
        (tmp_path / "s.key").write_bytes(certs.key.read_bytes())
        web = web_file(tmp_path, "tls_server_config: {cert_file: s.crt, key_file: s.key}\n")
        fresh_cert, fresh_key = second_server_certificate(tmp_path, certs)
        runner, url = await run_app(b.state(b.full_snapshot()), None, web)
        try:
            first = await served_certificate(url, certs)
            replace(tmp_path / "s.crt", fresh_cert.read_bytes())
            with capture_logs() as logs:
                half = await served_certificate(url, certs)
            assert [e["event"] for e in logs] == ["tls_reload_failed"]
            replace(tmp_path / "s.key", fresh_key.read_bytes())
            with capture_logs() as logs:
                second = await served_certificate(url, certs)
            assert [e["event"] for e in logs] == ["tls_reloaded"]
        finally:
            await runner.cleanup()
        assert half == first
        assert second != first
        assert second == ssl.PEM_cert_to_DER_cert(fresh_cert.read_text())


def replace(path: Path, data: bytes) -> None:
    """Swap a file in as certificate tools do: write aside, rename over."""
    aside = path.with_suffix(".new")
    aside.write_bytes(data)
    os.replace(aside, path)


def second_server_certificate(tmp_path: Path, certs: Certs) -> tuple[Path, Path]:
    """Another certificate for 127.0.0.1 from the same CA."""
    openssl = require_tool("openssl")
    key, csr, crt = tmp_path / "n.key", tmp_path / "n.csr", tmp_path / "n.crt"

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", "/CN=renewed", "-keyout", key, "-out", csr)  # fmt: skip
    ext = tmp_path / "n.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", csr, "-CA", certs.ca, "-CAkey", certs.ca.with_suffix(".key"),
        "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", crt)  # fmt: skip
    return crt, key


async def served_certificate(url: str, certs: Certs) -> bytes:
    """The DER certificate the server presents on a new connection."""
    host, port = url.removeprefix("https://").rsplit(":", 1)
    _, writer = await asyncio.open_connection(host, int(port), ssl=client_context(certs))
    try:
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")  # get_extra_info answers Any
        der = tls.getpeercert(binary_form=True)
        assert der is not None, "the server presented no certificate"
        return der
    finally:
        writer.close()
        await writer.wait_closed()
