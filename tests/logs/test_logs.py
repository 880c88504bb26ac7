"""Logging: JSON lines off a terminal, level filter, and redaction of anything secret-looking."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from exporter.cli import main
from exporter.logs import REDACTED, configure_logging, redact, register_secret
from exporter.simulator import AccountSpec, Scenario, ThreadedSimulator
from tests.helpers.builders import PLANTED_KEY


@pytest.fixture(autouse=True)
def _reset():
    yield
    structlog.reset_defaults()
    for handler in list(logging.getLogger().handlers):
        logging.getLogger().removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


class TestFormat:
    def test_json_when_not_a_tty(self):
        """auto renders one JSON object per event when the stream is not a terminal."""
        out = io.StringIO()
        configure_logging("info", "auto", out)
        structlog.get_logger().info("poll", account="prod", outcome="ok")
        (event,) = lines(out)
        assert event["event"] == "poll"
        assert event["account"] == "prod"
        assert event["level"] == "info"
        assert "timestamp" in event

    def test_console(self):
        """console renders key=value text."""
        out = io.StringIO()
        configure_logging("info", "console", out)
        structlog.get_logger().info("poll", account="prod")
        assert "account=prod" in out.getvalue()
        assert not out.getvalue().startswith("{")

    def test_level_filter(self):
        """Events below the level are dropped."""
        out = io.StringIO()
        configure_logging("warning", "json", out)
        structlog.get_logger().info("hidden")
        structlog.get_logger().warning("shown")
        assert [e["event"] for e in lines(out)] == ["shown"]

    def test_stdlib_loggers_are_json(self):
        """aiohttp's standard-library log records are rendered and redacted the same way."""
        out = io.StringIO()
        configure_logging("info", "json", out)
        logging.getLogger("aiohttp.server").error(
            "failed: Authorization: Basic dXNlcjpwYXNzd29yZA=="
        )
        (event,) = lines(out)
        assert event["level"] == "error"
        assert isinstance(event["event"], str)
        assert "dXNlcjpwYXNzd29yZA" not in event["event"]

    def test_bad_arguments(self):
        """Unknown levels and formats are refused with a clear message."""
        with pytest.raises(ValueError, match="log level must be one of"):
            configure_logging("loud", "json")
        with pytest.raises(ValueError, match="log format must be one of"):
            configure_logging("info", "xml")


class TestRedaction:
    def test_secret_keys_and_known_values(self):
        """Values under secret-sounding keys and registered secrets never reach the output."""
        out = io.StringIO()
        configure_logging("debug", "json", out)
        register_secret(PLANTED_KEY)
        log = structlog.get_logger()
        log.info("x", api_key="abc", token="t", nested={"password": "p"}, note=f"key={PLANTED_KEY}")
        try:
            raise RuntimeError(f"boom {PLANTED_KEY}")
        except RuntimeError:
            log.exception("failed")
        text = out.getvalue()
        assert PLANTED_KEY not in text
        first, second = lines(out)
        assert first["api_key"] == REDACTED
        assert first["token"] == REDACTED
        assert first["nested"] == {"password": REDACTED}
        assert second["event"] == "failed"

    def test_the_cli_registers_every_loaded_key(self, tmp_path, monkeypatch, capsys):
        """A key the CLI loaded is redacted from a later line no pattern would catch.

        No earlier test can have registered it: the registry starts empty in every test.
        """
        scenario = Scenario.generate(seed=5, accounts=[AccountSpec(items=2, invoice_months=1)])
        account = scenario.accounts[0]
        account.api_key = PLANTED_KEY
        monkeypatch.setenv("SL_TEST_KEY", PLANTED_KEY)
        with ThreadedSimulator(scenario, host="127.0.0.1", port=0) as sim:
            config = tmp_path / "c.yaml"
            config.write_text(
                f"accounts:\n  - name: a\n    endpoint: {sim.endpoint}\n    auth: "
                f"{{method: classic, username: {json.dumps(account.username)}, "
                "api_key_env: SL_TEST_KEY}\n"
            )
            assert main(["--config.file", str(config), "--once", "--log.format", "json"]) == 0
        structlog.get_logger().error("library_error", detail=f"upstream said {PLANTED_KEY}")
        err = capsys.readouterr().err
        assert PLANTED_KEY not in err
        assert f"upstream said {REDACTED}" in err

    @pytest.mark.parametrize(
        "text",
        [
            "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
            "https://apikey:SomeIbmCloudKey@api.softlayer.com/rest/v3.1/",
            "GET /identity/token?apikey=abcdef123456",
            "key " + "0123456789abcdef" * 4,
            "ibm key " + "A" * 22 + "_-" + "b" * 20,
        ],
    )
    def test_patterns(self, text):
        """Secret-looking substrings are replaced even when nobody registered them."""
        cleaned = redact(text)
        assert REDACTED in cleaned
        assert cleaned != text
