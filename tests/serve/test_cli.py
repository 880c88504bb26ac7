"""The command line without a SoftLayer: usage errors exit 2 and list every problem."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap

import pytest

from exporter.cli import build_parser, display_url, main

from .builders import PLANTED_KEY


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


class TestUsageErrors:
    def test_config_required(self, capsys):
        """Without --config.file or --demo the exporter refuses to start."""
        code, _, err = run_main(capsys)
        assert code == 2
        assert "--config.file is required" in err

    def test_every_config_problem_listed(self, capsys, tmp_path, monkeypatch):
        """An invalid config exits 2 and prints every problem, path-qualified."""
        monkeypatch.setenv("SL_TEST_KEY", PLANTED_KEY)
        path = tmp_path / "bad.yaml"
        path.write_text(
            textwrap.dedent("""
            poll_interval: 5
            unknown_thing: true
            accounts:
              - name: a
                auth: {method: classic, username: u, api_key_env: SL_TEST_KEY}
              - name: b
                auth: {method: apikey, api_key_file: missing.key}
              - name: a
                auth: {method: apikey, api_key: inline-oops}
        """)
        )
        code, out, err = run_main(capsys, "--config.file", str(path))
        assert code == 2
        assert out == ""
        assert f"invalid config file {path}:" in err
        for expected in (
            "  - unknown_thing: unknown key",
            "  - poll_interval: must be a duration",
            "  - accounts[1].auth.api_key_file: file not found",
            "  - accounts[2].auth.api_key: inline secrets are not allowed",
            "  - accounts[2].name: duplicate account name 'a' (also accounts[0])",
        ):
            assert expected in err
        assert PLANTED_KEY not in err
        assert "inline-oops" not in err

    def test_missing_config_file(self, capsys, tmp_path):
        """A config file that does not exist exits 2."""
        code, _, err = run_main(capsys, "--config.file", str(tmp_path / "nope.yaml"))
        assert code == 2
        assert "file not found" in err

    def test_bad_listen_address(self, capsys, tmp_path):
        """A malformed --web.listen-address exits 2."""
        code, _, err = run_main(capsys, "--demo", "--web.listen-address", "localhost")
        assert code == 2
        assert "--web.listen-address: listen address must be [host]:port" in err

    def test_bad_web_config(self, capsys, tmp_path):
        """An invalid --web.config.file exits 2 listing its problems."""
        web = tmp_path / "web.yml"
        web.write_text("basic_auth_users:\n  admin: hunter2\ntls_server_config: {}\n")
        code, _, err = run_main(capsys, "--demo", "--web.config.file", str(web))
        assert code == 2
        assert "basic_auth_users.admin: must be a bcrypt hash" in err
        assert "tls_server_config.cert_file: required" in err
        assert "hunter2" not in err

    def test_bad_choice(self, capsys):
        """argparse rejects an unknown --log.format with exit 2."""
        with pytest.raises(SystemExit) as info:
            main(["--demo", "--log.format", "xml"])
        assert info.value.code == 2
        assert "invalid choice" in capsys.readouterr().err

    def test_console_script_exit_code(self, tmp_path):
        """The installed command (python -m exporter) exits 2 on a bad config."""
        path = tmp_path / "c.yaml"
        path.write_text("accounts: 3\n")
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--config.file", str(path)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 2
        assert "accounts: must be a list, got integer" in result.stderr


class TestFlags:
    def test_defaults(self):
        """The documented defaults: port 29610 on all interfaces, info, auto format."""
        args = build_parser().parse_args([])
        assert args.listen_address == ":29610"
        assert args.log_level == "info"
        assert args.log_format == "auto"
        assert not args.demo
        assert not args.once

    def test_display_url(self):
        """A wildcard bind is shown as a loopback URL a person can open."""
        assert display_url(["http://0.0.0.0:29610"]) == "http://127.0.0.1:29610"
        assert display_url(["http://[::]:29610"]) == "http://127.0.0.1:29610"
        assert display_url(["https://10.0.0.1:1"]) == "https://10.0.0.1:1"


class TestListenFailure:
    def test_port_in_use(self, capsys, tmp_path, monkeypatch):
        """A port already in use is reported and exits 1, not with a traceback."""
        monkeypatch.setenv("SL_TEST_KEY", PLANTED_KEY)
        path = tmp_path / "c.yaml"
        path.write_text(
            "accounts:\n  - name: a\n    endpoint: http://127.0.0.1:9/rest/v3.1/\n"
            "    auth: {method: apikey, api_key_env: SL_TEST_KEY}\n"
        )
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            code, _, err = run_main(
                capsys,
                "--config.file",
                str(path),
                "--web.listen-address",
                f"127.0.0.1:{port}",
                "--log.format",
                "json",
            )
        assert code == 1
        events = [json.loads(line) for line in err.splitlines()]
        errors = [e["event"] for e in events if e["level"] == "error"]
        assert errors == ["listen_failed"]
        assert "poller_stopped" in [e["event"] for e in events]  # started by setup, stopped
        assert PLANTED_KEY not in err
