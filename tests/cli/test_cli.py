"""The command line without a SoftLayer: usage errors exit 2 and list every problem."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from exporter.cli import build_parser, display_url, main
from tests.helpers.builders import PLANTED_KEY


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
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

    @pytest.mark.e2e
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


class TestConfigCheck:
    def write(self, tmp_path: Path, body: str) -> str:
        path = tmp_path / "c.yaml"
        path.write_text(textwrap.dedent(body))
        return str(path)

    def test_valid_config_exits_0_without_network(self, capsys, tmp_path, monkeypatch):
        """A valid file checks out (exit 0) without connecting to its API or IAM endpoints."""
        monkeypatch.setenv("SL_TEST_KEY", PLANTED_KEY)
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen()
            url = f"http://127.0.0.1:{listener.getsockname()[1]}"
            path = self.write(
                tmp_path,
                f"""
                accounts:
                  - name: a
                    endpoint: {url}/rest/v3.1/
                    auth: {{method: iam, api_key_env: SL_TEST_KEY, iam_token_url: {url}/token}}
                  - name: b
                    endpoint: private
                    auth: {{method: iam, api_key_env: SL_TEST_KEY}}
                """,
            )
            code, out, err = run_main(capsys, "--config.file", path, "--config.check")
            # Any connection would already sit in the backlog: the check is synchronous.
            listener.setblocking(False)
            with pytest.raises(BlockingIOError):
                listener.accept()
        assert code == 0, err
        assert out == f"config file {path}: valid, 2 account(s): a, b\n"
        assert PLANTED_KEY not in out + err

    def test_invalid_config_same_messages_as_start_up(self, capsys, tmp_path):
        """An invalid file exits 2 with exactly the messages a start-up prints."""
        path = self.write(
            tmp_path,
            """
            poll_interval: 999999999999d
            accounts:
              - name: a
                auth: {method: apikey, api_key_file: missing.key}
            """,
        )
        check = run_main(capsys, "--config.file", path, "--config.check")
        start = run_main(capsys, "--config.file", path)
        assert check[0] == start[0] == 2
        assert check[2] == start[2]
        assert "poll_interval: invalid duration '999999999999d': longer than 100y" in check[2]
        assert "accounts[0].auth.api_key_file: file not found" in check[2]

    def test_missing_secret_is_reported(self, capsys, tmp_path, monkeypatch):
        """The check reads the secrets it can: an unset variable fails it."""
        monkeypatch.delenv("SL_UNSET_KEY", raising=False)
        path = self.write(
            tmp_path,
            """
            accounts:
              - name: a
                auth: {method: apikey, api_key_env: SL_UNSET_KEY}
            """,
        )
        code, _, err = run_main(capsys, "--config.file", path, "--config.check")
        assert code == 2
        assert "accounts[0].auth.api_key_env: environment variable SL_UNSET_KEY is not set" in err

    def test_needs_a_config_file(self, capsys):
        """--config.check without --config.file is a usage error."""
        code, _, err = run_main(capsys, "--demo", "--config.check")
        assert code == 2
        assert "--config.check needs --config.file" in err

    def test_checks_the_web_config_too(self, capsys, tmp_path, monkeypatch):
        """A bad --web.config.file fails the check like a start-up."""
        monkeypatch.setenv("SL_TEST_KEY", PLANTED_KEY)
        path = self.write(
            tmp_path, "accounts: [{name: a, auth: {method: apikey, api_key_env: SL_TEST_KEY}}]\n"
        )
        web = tmp_path / "web.yml"
        web.write_text("basic_auth_users:\n  admin: hunter2\n")
        code, _, err = run_main(
            capsys, "--config.file", path, "--web.config.file", str(web), "--config.check"
        )
        assert code == 2
        assert "basic_auth_users.admin: must be a bcrypt hash" in err

    def test_key_file_warning_is_logged(self, capsys, tmp_path):
        """A world-readable key file passes the check with a logged warning, no secret."""
        key = tmp_path / "key"
        key.write_text(PLANTED_KEY + "\n")
        key.chmod(0o644)
        path = self.write(
            tmp_path, "accounts: [{name: a, auth: {method: apikey, api_key_file: key}}]\n"
        )
        code, _, err = run_main(
            capsys, "--config.file", path, "--config.check", "--log.format", "json"
        )
        assert code == 0
        (event,) = [json.loads(line) for line in err.splitlines()]
        assert event["event"] == "config_warning"
        assert event["problem"].startswith("accounts[0].auth.api_key_file: is readable by every")
        assert PLANTED_KEY not in err

    @pytest.mark.parametrize(
        "text",
        [
            "accounts: " + "[" * 20_000 + "]" * 20_000 + "\n",
            "poll_interval: " + "9" * 400 + "s\naccounts: []\n",
            f"accounts: [{{name: a, auth: {{method: apikey, api_key: !!float {PLANTED_KEY}}}}}]\n",
            "poll_jitter: !!float x\nrequest_timeout: !!timestamp y\npage_size: !!int z\n",
            "accounts: [{name: a, auth: {method: apikey, api_key_file: /dev/zero}}]\n",
            "max_requests_per_second: 0.0001\naccounts: []\n",
        ],
        ids=["deep", "400-digits", "float-key", "tags", "dev-zero", "slow-rate"],
    )
    @pytest.mark.e2e
    def test_hostile_inputs_exit_2_without_traceback(self, tmp_path, text):
        """Hostile config files exit 2 with a message, never a traceback or the secret."""
        path = tmp_path / "c.yaml"
        path.write_text(text)
        result = subprocess.run(
            [sys.executable, "-m", "exporter", "--config.file", str(path), "--config.check"],
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        assert result.returncode == 2, result.stderr
        assert f"invalid config file {path}:" in result.stderr
        assert "Traceback" not in result.stderr
        assert PLANTED_KEY not in result.stderr


class TestModules:
    def test_demo_does_not_import_the_command_line(self):
        """exporter.demo is imported by the command line, never the other way round."""
        code = "import sys, exporter.demo; print('exporter.cli' in sys.modules)"
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        assert result.stdout.strip() == "False"
