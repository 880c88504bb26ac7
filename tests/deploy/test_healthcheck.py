"""The image's health check finds the exporter's port in its own flags, not in the image."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from exporter.cli import build_parser
from exporter.healthcheck import DEFAULT_PORT, _arguments, find_exporter, healthz_url
from exporter.server import DEFAULT_PORT as SERVER_PORT

SCRIPT = "/opt/venv/bin/softlayer-billing-exporter"


def _fake_proc(tmp_path: Path, processes: dict[int, list[str]]) -> Path:
    proc = tmp_path / "proc"
    for pid, argv in processes.items():
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "cmdline").write_bytes(b"\0".join(a.encode() for a in argv) + b"\0")
    (proc / "self").mkdir(parents=True, exist_ok=True)
    return proc


def test_default_port_is_the_exporters() -> None:
    """The health check's default port is the exporter's."""
    assert DEFAULT_PORT == SERVER_PORT


@pytest.mark.parametrize(
    ("flags", "url"),
    [
        ([], f"http://127.0.0.1:{SERVER_PORT}/healthz"),
        (["--web.listen-address=:9000"], "http://127.0.0.1:9000/healthz"),
        (["--web.listen-address", "0.0.0.0:9001"], "http://127.0.0.1:9001/healthz"),
        (["--web.listen-address=[::]:9002"], "http://[::1]:9002/healthz"),
        (["--web.listen-address=10.0.0.5:9003"], "http://10.0.0.5:9003/healthz"),
        (
            ["--web.listen-address=:1", "--web.listen-address=:9004"],
            "http://127.0.0.1:9004/healthz",
        ),
    ],
)
def test_url_follows_the_listen_address_as_the_cli_parses_it(flags: list[str], url: str) -> None:
    """Same flags, same answer as the exporter's own parser (last flag wins, both spellings)."""
    assert healthz_url(flags) == url
    parsed = build_parser().parse_args(["--demo", *flags]).listen_address
    assert healthz_url([f"--web.listen-address={parsed}"]) == url


def test_tls_web_config_means_https(tmp_path: Path) -> None:
    """A web config with tls_server_config is probed over https; basic auth alone is not."""
    tls = tmp_path / "tls.yml"
    tls.write_text("tls_server_config:\n  cert_file: a.crt\n  key_file: a.key\n")
    auth = tmp_path / "auth.yml"
    auth.write_text("basic_auth_users:\n  alice: $2b$12$abc\n")
    assert healthz_url([f"--web.config.file={tls}", "--web.listen-address=:9100"]) == (
        "https://127.0.0.1:9100/healthz"
    )
    assert healthz_url(["--web.config.file", str(auth)]).startswith("http://")


def test_ephemeral_port_is_refused() -> None:
    """:0 has no port to probe: a clear error instead of probing port 0."""
    with pytest.raises(LookupError, match="no fixed port"):
        healthz_url(["--web.listen-address=127.0.0.1:0"])


def test_finds_pid_1_or_the_only_exporter(tmp_path: Path) -> None:
    """PID 1 wins (the image); else the only exporter process; several is an error."""
    image = [sys.executable, SCRIPT, "--web.listen-address=:9000"]
    module = [sys.executable, "-m", "exporter", "--web.listen-address=:9001"]
    other = ["/bin/sh", "-c", "sleep 1"]
    assert find_exporter(_fake_proc(tmp_path / "a", {1: image, 7: module, 9: other})) == image
    assert find_exporter(_fake_proc(tmp_path / "b", {1: other, 7: module})) == module
    with pytest.raises(LookupError, match="several"):
        find_exporter(_fake_proc(tmp_path / "c", {5: image, 7: module}))
    with pytest.raises(LookupError, match="no softlayer-billing-exporter"):
        find_exporter(_fake_proc(tmp_path / "d", {1: other}))
    assert _arguments(image) == ["--web.listen-address=:9000"]
    assert _arguments(module) == ["--web.listen-address=:9001"]


def test_exited_exporter_is_unhealthy() -> None:
    """The named process is gone: exit 1 with the reason on stderr."""
    gone = subprocess.Popen(["true"])
    gone.wait(timeout=30)
    result = subprocess.run(
        [sys.executable, "-m", "exporter.healthcheck", "--pid", str(gone.pid)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("healthcheck: ")
    assert f"/proc/{gone.pid}/cmdline" in result.stderr
