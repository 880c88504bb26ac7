"""--demo's configuration: the simulator's endpoint and keys, the file's names and settings."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exporter.config import AuthMethod, Thresholds
from exporter.demo import (
    DEMO_POLL_INTERVAL,
    DEMO_POLL_INTERVAL_ENV,
    demo_config,
    demo_poll_interval,
)

from . import builders as b

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
        base = b.Config(
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
