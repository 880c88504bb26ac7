"""--demo's configuration: the simulator's endpoint and keys, the file's names and settings."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from exporter.cli import main
from exporter.config import AuthMethod, Config, Thresholds
from exporter.demo import (
    DEMO_POLL_INTERVAL,
    DEMO_POLL_INTERVAL_ENV,
    demo_config,
    demo_poll_interval,
)
from tests.helpers import builders as b

ENDPOINT = "http://127.0.0.1:1234/rest/v3.1/"


class TestDemoConfig:
    def test_without_file(self):
        """Without a config file the demo polls one account named demo every 30 s."""
        config = demo_config(None, ENDPOINT, [("user1", "key1")], DEMO_POLL_INTERVAL)
        (account,) = config.accounts
        assert account.name == "demo"
        assert account.endpoint == ENDPOINT
        assert account.auth.method is AuthMethod.CLASSIC
        assert account.auth.username == "user1"
        assert account.auth.api_key.reveal() == "key1"
        assert config.poll_interval_seconds == 30

    def test_with_file(self):
        """With a file, names, thresholds and global settings stay; endpoint and keys change."""
        limits = Thresholds(monthly_budget_usd=Decimal(77))
        base = Config(
            accounts=(b.account("prod", limits), b.account("staging")),
            page_size=17,
            top_categories=3,
        )
        config = demo_config(base, ENDPOINT, [("u1", "k1"), ("u2", "k2")], 5.0)
        assert [a.name for a in config.accounts] == ["prod", "staging"]
        assert config.accounts[0].thresholds.monthly_budget_usd == Decimal(77)
        assert [a.auth.api_key.reveal() for a in config.accounts] == ["k1", "k2"]
        assert {a.endpoint for a in config.accounts} == {ENDPOINT}
        assert (config.page_size, config.top_categories) == (17, 3)
        assert config.poll_interval_seconds == 5.0

    def test_poll_interval_override(self, monkeypatch):
        """SOFTLAYER_DEMO_POLL_INTERVAL overrides the demo's interval; garbage is refused."""
        monkeypatch.setenv(DEMO_POLL_INTERVAL_ENV, "2s")
        assert demo_poll_interval(None) == 2.0
        monkeypatch.setenv(DEMO_POLL_INTERVAL_ENV, "soon")
        with pytest.raises(ValueError, match="invalid duration"):
            demo_poll_interval(None)
        monkeypatch.delenv(DEMO_POLL_INTERVAL_ENV)
        assert demo_poll_interval(b.config()) == 900

    def test_poll_interval_override_must_be_positive(self, monkeypatch):
        """A zero override is refused: a Config could not be built with it."""
        monkeypatch.setenv(DEMO_POLL_INTERVAL_ENV, "0s")
        with pytest.raises(ValueError, match="longer than 0s"):
            demo_poll_interval(None)

    def test_file_intervals_give_way_to_the_demo_interval(self):
        """Per-account intervals of the file are dropped: the demo polls all at one interval."""
        base = Config(accounts=(b.account("prod"),))
        base = dataclasses.replace(
            base, accounts=(dataclasses.replace(base.accounts[0], poll_interval_seconds=3600.0),)
        )
        config = demo_config(base, ENDPOINT, [("u1", "k1")], 5.0)
        assert config.poll_interval_of(config.accounts[0]) == 5.0


def test_bad_override_is_a_usage_error(capsys, monkeypatch):
    """A bad SOFTLAYER_DEMO_POLL_INTERVAL exits 2 before anything starts."""
    monkeypatch.setenv(DEMO_POLL_INTERVAL_ENV, "soon")
    assert main(["--demo", "--once"]) == 2
    assert f"{DEMO_POLL_INTERVAL_ENV}: invalid duration 'soon'" in capsys.readouterr().err
