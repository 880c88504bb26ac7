"""The config loader: valid files load, every invalid one lists every problem, path-qualified."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest

from exporter.config import (
    PRIVATE_ENDPOINT,
    PUBLIC_ENDPOINT,
    AuthMethod,
    ConfigError,
    config_from_dict,
    load_config,
    parse_duration,
)

from .builders import PLANTED_KEY

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"
ENV = {"SL_KEY": PLANTED_KEY}


def minimal(**overrides: object) -> dict[str, object]:
    account: dict[str, object] = {
        "name": "prod",
        "auth": {"method": "classic", "username": "u", "api_key_env": "SL_KEY"},
    }
    raw: dict[str, object] = {"accounts": [account]}
    raw.update(overrides)
    return raw


def problems(raw: object, **kwargs: object) -> list[str]:
    with pytest.raises(ConfigError) as info:
        config_from_dict(raw, environ=ENV, **kwargs)  # type: ignore[arg-type]
    return info.value.problems


class TestValid:
    def test_example_loads(self, tmp_path):
        """config.example.yaml loads once its referenced secrets exist."""
        key_file = tmp_path / "ibm-key"
        key_file.write_text("ibm-cloud-key\n")
        text = EXAMPLE.read_text().replace(
            "/run/secrets/softlayer-staging-ibm-api-key", str(key_file)
        )
        (tmp_path / "config.yaml").write_text(text)
        config = load_config(tmp_path / "config.yaml", environ={"SOFTLAYER_API_KEY": "classic-key"})
        prod, staging = config.accounts
        assert config.poll_interval_seconds == 900
        assert config.invoice_lookback_seconds == 90 * 86400
        assert prod.endpoint == PUBLIC_ENDPOINT
        assert staging.endpoint == PRIVATE_ENDPOINT
        assert prod.auth.api_key.reveal() == "classic-key"
        assert staging.auth.api_key.reveal() == "ibm-cloud-key"  # newline stripped
        assert staging.auth.method is AuthMethod.IAM
        assert staging.thresholds.monthly_budget_usd == Decimal(5000)
        assert prod.thresholds.pending_invoice_max_age_seconds == 35 * 86400

    def test_example_only_lacks_secrets(self):
        """Unmodified, the example's only problems are its two unresolved secret references."""
        with pytest.raises(ConfigError) as info:
            load_config(EXAMPLE, environ={})
        assert [p.split(":")[0] for p in info.value.problems] == [
            "accounts[0].auth.api_key_env",
            "accounts[1].auth.api_key_file",
        ]

    def test_example_checks_without_secrets(self):
        """With resolve_secrets=False the example validates (the --demo path)."""
        config = load_config(EXAMPLE, environ={}, resolve_secrets=False)
        assert [a.name for a in config.accounts] == ["production", "staging"]

    def test_defaults(self):
        """A minimal config gets the documented defaults."""
        config = config_from_dict(minimal(), environ=ENV)
        assert config.poll_interval_seconds == 900
        assert config.max_requests_per_second == 10
        assert config.page_size == 100
        assert config.top_categories == 20
        assert config.accounts[0].endpoint == PUBLIC_ENDPOINT

    def test_custom_url_gets_trailing_slash(self):
        """A custom endpoint URL is accepted and normalised to end with a slash."""
        raw = minimal()
        raw["accounts"][0]["endpoint"] = "http://127.0.0.1:8080/rest/v3.1"  # type: ignore[index]
        assert config_from_dict(raw, environ=ENV).accounts[0].endpoint.endswith("/rest/v3.1/")

    def test_thresholds_are_decimal(self):
        """USD thresholds become exact Decimals, whether written as float, int or string."""
        raw = minimal()
        raw["accounts"][0]["thresholds"] = {  # type: ignore[index]
            "open_invoice_balance_usd": 0.1,
            "account_balance_usd": "1234.56",
            "monthly_budget_usd": 5000,
            "pending_invoice_max_age": None,
            "forecast_surge_ratio": None,
        }
        limits = config_from_dict(raw, environ=ENV).accounts[0].thresholds
        assert limits.open_invoice_balance_usd == Decimal("0.1")
        assert limits.account_balance_usd == Decimal("1234.56")
        assert limits.monthly_budget_usd == Decimal(5000)
        assert limits.pending_invoice_max_age_seconds is None
        assert limits.forecast_surge_ratio is None
        assert limits.category_surge_ratio == 1.5

    def test_relative_key_file(self, tmp_path):
        """A relative api_key_file is resolved against the config file's directory."""
        (tmp_path / "key").write_text("from-file")
        (tmp_path / "c.yaml").write_text(
            textwrap.dedent("""
            accounts:
              - name: a
                auth: {method: apikey, api_key_file: key}
        """)
        )
        assert load_config(tmp_path / "c.yaml").accounts[0].auth.api_key.reveal() == "from-file"

    @pytest.mark.parametrize(
        ("text", "seconds"),
        [
            ("30s", 30),
            ("15m", 900),
            ("2h", 7200),
            ("90d", 90 * 86400),
            ("1h30m", 5400),
            ("500ms", 0.5),
        ],
    )
    def test_durations(self, text, seconds):
        """Prometheus-style durations are parsed into seconds."""
        assert parse_duration(text) == seconds


class TestInvalid:
    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"poll_interval": 900}, "poll_interval: must be a duration"),
            ({"poll_interval": "15 minutes"}, "poll_interval: invalid duration"),
            ({"poll_interval": "0s"}, "poll_interval: must be at least 1s"),
            ({"poll_jitter": 1.5}, "poll_jitter: must be >= 0 and <= 1"),
            ({"poll_jitter": "x"}, "poll_jitter: must be a number"),
            ({"request_timeout": "1d1x"}, "request_timeout: invalid duration"),
            ({"max_requests_per_second": 60}, "max_requests_per_second: must be > 0 and <= 50"),
            ({"max_requests_per_second": 0}, "max_requests_per_second: must be > 0"),
            ({"max_concurrent_requests": 0}, "max_concurrent_requests: must be between 1 and 64"),
            ({"page_size": True}, "page_size: must be an integer, got boolean"),
            ({"page_size": 2.5}, "page_size: must be an integer"),
            ({"retry": {"attempts": 0}}, "retry.attempts: must be between 1 and 10"),
            ({"retry": {"backoff": "1s"}}, "retry.backoff: unknown key"),
            ({"retry": "often"}, "retry: must be a mapping"),
            (
                {"retry": {"initial_backoff": "10s", "max_backoff": "1s"}},
                "retry.max_backoff: must not be shorter",
            ),
            ({"invoice_lookback": "1h"}, "invoice_lookback: must be at least 1d"),
            ({"top_categories": 0}, "top_categories: must be between 1 and 100"),
            ({"colour": "blue"}, "colour: unknown key"),
            ({"accounts": []}, "accounts: must list at least one account"),
            ({"accounts": {"name": "a"}}, "accounts: must be a list"),
            ({"accounts": ["prod"]}, "accounts[0]: must be a mapping, got string"),
        ],
    )
    def test_global_problem(self, overrides, expected):
        """Each bad global value is reported with its key path."""
        found = problems(minimal(**overrides))
        assert any(p.startswith(expected) for p in found), found

    @pytest.mark.parametrize(
        ("account", "expected"),
        [
            ({"auth": {"method": "apikey", "api_key_env": "SL_KEY"}}, "accounts[1].name: required"),
            (
                {"name": "a b", "auth": {"method": "apikey", "api_key_env": "SL_KEY"}},
                "accounts[1].name: must match",
            ),
            (
                {
                    "name": "b",
                    "endpoint": "staging",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                },
                "accounts[1].endpoint: must be public, private or an http(s) URL",
            ),
            (
                {
                    "name": "b",
                    "endpoint": "ftp://h/",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                },
                "accounts[1].endpoint: must be an http(s) URL",
            ),
            ({"name": "b"}, "accounts[1].auth: required"),
            (
                {"name": "b", "auth": {"method": "oauth", "api_key_env": "SL_KEY"}},
                "accounts[1].auth.method: must be classic, apikey or iam",
            ),
            (
                {"name": "b", "auth": {"method": "classic", "api_key_env": "SL_KEY"}},
                "accounts[1].auth.username: required for method classic",
            ),
            (
                {"name": "b", "auth": {"method": "apikey"}},
                "accounts[1].auth: exactly one of api_key_env or api_key_file",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY", "api_key_file": "f"},
                },
                "accounts[1].auth: exactly one of api_key_env or api_key_file is required, "
                "not both",
            ),
            (
                {"name": "b", "auth": {"method": "apikey", "api_key_env": "UNSET_VAR"}},
                "accounts[1].auth.api_key_env: environment variable UNSET_VAR is not set",
            ),
            (
                {"name": "b", "auth": {"method": "apikey", "api_key_env": "no-such name"}},
                "accounts[1].auth.api_key_env: must be an environment variable name",
            ),
            (
                {"name": "b", "auth": {"method": "apikey", "api_key_file": "/nonexistent/key"}},
                "accounts[1].auth.api_key_file: file not found",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "iam", "api_key_env": "SL_KEY", "iam_token_url": "nope"},
                },
                "accounts[1].auth.iam_token_url: must be an http(s) URL",
            ),
            (
                {"name": "b", "auth": {"method": "apikey", "api_key_env": "SL_KEY", "scope": 1}},
                "accounts[1].auth.scope: unknown key",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                    "thresholds": {"monthly_budget_usd": "lots"},
                },
                "accounts[1].thresholds.monthly_budget_usd: must be an amount in USD",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                    "thresholds": {"monthly_budget_usd": -5},
                },
                "accounts[1].thresholds.monthly_budget_usd: must be a finite amount >= 0",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                    "thresholds": {"forecast_surge_ratio": 0},
                },
                "accounts[1].thresholds.forecast_surge_ratio: must be > 0",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                    "thresholds": {"pending_invoice_max_age": "35 days"},
                },
                "accounts[1].thresholds.pending_invoice_max_age: invalid duration",
            ),
            (
                {
                    "name": "b",
                    "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
                    "thresholds": {"budget": 1},
                },
                "accounts[1].thresholds.budget: unknown key",
            ),
            (
                {"name": "prod", "auth": {"method": "apikey", "api_key_env": "SL_KEY"}},
                "accounts[1].name: duplicate account name 'prod' (also accounts[0])",
            ),
        ],
    )
    def test_account_problem(self, account, expected):
        """Each bad account value is reported with its path, index included."""
        raw = minimal()
        raw["accounts"].append(account)  # type: ignore[attr-defined]
        found = problems(raw)
        assert any(p.startswith(expected) for p in found), found

    def test_every_problem_is_listed(self, tmp_path):
        """All problems of a file are reported at once, in file order."""
        path = tmp_path / "bad.yaml"
        path.write_text(
            textwrap.dedent("""
            poll_interval: soon
            page_size: 0
            accounts:
              - name: a
                auth: {method: classic, username: u, api_key_file: missing-key}
              - name: a
                endpoint: nowhere
                auth: {method: apikey, api_key_env: SL_KEY}
        """)
        )
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=ENV)
        assert info.value.problems == [
            "poll_interval: invalid duration 'soon' (use a number with a unit: 30s, 15m, 2h, 90d)",
            "page_size: must be between 1 and 1000, got 0",
            f"accounts[0].auth.api_key_file: file not found: {tmp_path / 'missing-key'}",
            "accounts[1].endpoint: must be public, private or an http(s) URL, got 'nowhere'",
            "accounts[1].name: duplicate account name 'a' (also accounts[0])",
        ]
        assert str(info.value).startswith(f"invalid config file {path}:\n  - poll_interval:")

    def test_inline_secret_refused_without_echo(self):
        """An inline api_key is refused, and its value appears in no message."""
        raw = minimal()
        raw["accounts"][0]["auth"]["api_key"] = PLANTED_KEY  # type: ignore[index]
        raw["accounts"][0]["auth"]["password"] = PLANTED_KEY  # type: ignore[index]
        raw["accounts"][0]["auth"]["my_secret"] = PLANTED_KEY  # type: ignore[index]
        with pytest.raises(ConfigError) as info:
            config_from_dict(raw, environ=ENV)
        found = info.value.problems
        assert (
            "accounts[0].auth.api_key: inline secrets are not allowed; "
            "use api_key_env or api_key_file" in found
        )
        assert "accounts[0].auth.my_secret: unknown key" in found
        assert PLANTED_KEY not in str(info.value)

    def test_credentials_in_url_not_echoed(self):
        """A URL with user:password is refused without quoting it."""
        raw = minimal()
        raw["accounts"][0]["endpoint"] = f"https://user:{PLANTED_KEY}@api.example/rest/"  # type: ignore[index]
        found = problems(raw)
        assert found == ["accounts[0].endpoint: must not contain credentials (user:password@)"]

    def test_file_errors(self, tmp_path):
        """Missing, unreadable YAML and non-mapping files give a clear error."""
        with pytest.raises(ConfigError, match="file not found"):
            load_config(tmp_path / "absent.yaml")
        (tmp_path / "broken.yaml").write_text("accounts: [\n")
        with pytest.raises(ConfigError, match="invalid YAML"):
            load_config(tmp_path / "broken.yaml")
        (tmp_path / "list.yaml").write_text("- 1\n")
        with pytest.raises(ConfigError, match="must be a mapping"):
            load_config(tmp_path / "list.yaml")
        (tmp_path / "empty.yaml").write_text("")
        with pytest.raises(ConfigError, match="accounts: required"):
            load_config(tmp_path / "empty.yaml")

    def test_empty_key_file(self, tmp_path):
        """An empty secret file is an error, not an empty credential."""
        (tmp_path / "key").write_text("\n")
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "apikey", "api_key_file": "key"}  # type: ignore[index]
        found = problems(raw, base_dir=tmp_path)
        assert found == [f"accounts[0].auth.api_key_file: file is empty: {tmp_path / 'key'}"]


class TestSecrets:
    def test_repr_hides_the_key(self):
        """repr and str of the whole config never show the key."""
        config = config_from_dict(minimal(), environ=ENV)
        assert config.accounts[0].auth.api_key.reveal() == PLANTED_KEY
        assert PLANTED_KEY not in repr(config)
        assert PLANTED_KEY not in str(config)
