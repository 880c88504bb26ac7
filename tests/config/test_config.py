"""The config loader: valid files load, every invalid one lists every problem, path-qualified."""

from __future__ import annotations

import dataclasses
import math
import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from exporter.config import (
    ALL_SOURCES,
    PRIVATE_ENDPOINT,
    PRIVATE_IAM_TOKEN_URL,
    PUBLIC_ENDPOINT,
    AccountConfig,
    AuthConfig,
    AuthMethod,
    Config,
    ConfigError,
    RetryConfig,
    Secret,
    Thresholds,
    config_from_dict,
    load_config,
    parse_duration,
)
from exporter.configspec import parse_setting, setting_of
from exporter.snapshot import Source
from tests.helpers.builders import PLANTED_KEY

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


def account_b(**extra: object) -> dict[str, object]:
    """A second account, valid but for ``extra``."""
    return {"name": "b", "auth": {"method": "apikey", "api_key_env": "SL_KEY"}, **extra}


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
        assert prod.thresholds.open_invoice_grace_seconds == 30 * 86400
        assert (prod.sources, prod.poll_interval_seconds) == (ALL_SOURCES, None)
        assert staging.sources == ALL_SOURCES - {Source.NEXT_INVOICE_ITEMS}
        assert config.poll_interval_of(staging) == 3600
        assert staging.auth.iam_token_url == PRIVATE_IAM_TOKEN_URL

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
        assert config.max_requests_per_second == 45
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
            ({"max_requests_per_second": 60}, "max_requests_per_second: must be >= 0.1 and <= 50"),
            ({"max_requests_per_second": 0}, "max_requests_per_second: must be >= 0.1"),
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
                account_b(thresholds={"monthly_budget_usd": "lots"}),
                "accounts[1].thresholds.monthly_budget_usd: must be an amount in USD",
            ),
            (
                account_b(thresholds={"monthly_budget_usd": -5}),
                "accounts[1].thresholds.monthly_budget_usd: must be a finite amount >= 0",
            ),
            (
                account_b(thresholds={"forecast_surge_ratio": 0}),
                "accounts[1].thresholds.forecast_surge_ratio: must be > 0",
            ),
            (
                account_b(thresholds={"pending_invoice_max_age": "35 days"}),
                "accounts[1].thresholds.pending_invoice_max_age: invalid duration",
            ),
            (
                account_b(thresholds={"budget": 1}),
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


class TestBounds:
    @pytest.mark.parametrize(
        ("overrides", "expected"),
        [
            ({"poll_interval": "999999999999d"}, "poll_interval: invalid duration"),
            ({"poll_interval": "2d"}, "poll_interval: must be at most 1d, got 2d"),
            ({"poll_interval": "9" * 400 + "s"}, "poll_interval: invalid duration"),
            ({"request_timeout": "1h"}, "request_timeout: must be at most 10m"),
            ({"invoice_lookback": "11y"}, "invoice_lookback: must be at most 10y"),
            ({"retry": {"max_backoff": "2h"}}, "retry.max_backoff: must be at most 1h"),
            ({"max_requests_per_second": 0.0001}, "max_requests_per_second: must be >= 0.1"),
            ({"max_requests_per_second": float("inf")}, "max_requests_per_second: must be"),
            ({"max_requests_per_second": float("nan")}, "max_requests_per_second: must be"),
            ({"page_size": 10**4000}, "page_size: must be between 1 and 1000, got (an integer"),
            ({"poll_jitter": None}, "poll_jitter: must not be null"),
        ],
    )
    def test_global_bound(self, overrides, expected):
        """Durations, rates and counts are bounded; huge or odd numbers are refused clearly."""
        found = problems(minimal(**overrides))
        assert any(p.startswith(expected) for p in found), found

    @pytest.mark.parametrize(
        ("thresholds", "expected"),
        [
            ({"monthly_budget_usd": "1e400"}, "monthly_budget_usd: must be a finite amount"),
            ({"monthly_budget_usd": "NaN"}, "monthly_budget_usd: must be a finite amount"),
            ({"forecast_surge_ratio": float("inf")}, "forecast_surge_ratio: must be > 0"),
            ({"pending_invoice_max_age": "400d"}, "pending_invoice_max_age: must be at most"),
            ({"open_invoice_grace": "1y2d"}, "open_invoice_grace: must be at most 366d"),
            ({"open_invoice_grace": 30}, "open_invoice_grace: must be a duration"),
        ],
    )
    def test_threshold_bound(self, thresholds, expected):
        """Threshold amounts, ratios and ages are bounded too."""
        raw = minimal()
        raw["accounts"][0]["thresholds"] = thresholds  # type: ignore[index]
        found = problems(raw)
        assert any(p.startswith(f"accounts[0].thresholds.{expected}") for p in found), found

    def test_duration_parser_refuses_beyond_100_years(self):
        """parse_duration never overflows: 400 digits or 101y are refused."""
        with pytest.raises(ValueError, match="longer than 100y"):
            parse_duration("9" * 400 + "d")
        with pytest.raises(ValueError, match="longer than 100y"):
            parse_duration("101y")
        assert parse_duration("100y") == 100 * 365 * 86400


class TestTagsAndYaml:
    def write(self, tmp_path: Path, text: str) -> Path:
        path = tmp_path / "c.yaml"
        path.write_text(text)
        return path

    @pytest.mark.parametrize(
        ("line", "expected"),
        [
            ("poll_jitter: !!float abc", "poll_jitter: must be a number, got an invalid !!float"),
            ("page_size: !!int 12x", "page_size: must be an integer, got an invalid !!int"),
            (
                "request_timeout: !!timestamp 2024-13-45",
                "request_timeout: must be a duration like 30s, 15m, 90d, got an invalid",
            ),
            ("top_categories: !!int 0x" + "f" * 5000, "top_categories: must be an integer, got an"),
        ],
    )
    def test_bad_tagged_value_is_path_qualified(self, tmp_path, line, expected):
        """A tag on a bad value is reported under its key, with its line, not as a traceback."""
        path = self.write(tmp_path, f"{line}\naccounts: []\n")
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=ENV)
        assert info.value.problems[0].startswith(expected), info.value.problems

    def test_float_tag_on_inline_key_never_echoes(self, tmp_path):
        """api_key: !!float <key> is refused without the key appearing anywhere."""
        path = self.write(
            tmp_path,
            "accounts:\n  - name: a\n"
            f"    auth: {{method: apikey, api_key: !!float {PLANTED_KEY}}}\n",
        )
        with pytest.raises(ConfigError) as info:
            load_config(path, environ=ENV)
        assert "accounts[0].auth.api_key: inline secrets are not allowed" in str(info.value)
        assert PLANTED_KEY not in str(info.value)

    def test_deep_nesting(self, tmp_path):
        """YAML nested 20,000 deep is one clear problem."""
        path = self.write(tmp_path, "accounts: " + "[" * 20_000 + "]" * 20_000 + "\n")
        with pytest.raises(ConfigError, match=r"line 1, column \d+: invalid YAML: nesting deeper"):
            load_config(path, environ=ENV)

    def test_config_file_size_is_bounded(self, tmp_path):
        """A config file over 1 MiB (or /dev/zero) is refused without reading it all."""
        with pytest.raises(ConfigError, match="larger than 1024 KiB"):
            load_config("/dev/zero", environ=ENV)

    def test_not_utf8(self, tmp_path):
        """A file that is not UTF-8 says so, with the byte offset and no content."""
        path = tmp_path / "c.yaml"
        path.write_bytes(b"accounts: \xff\n")
        with pytest.raises(ConfigError, match=r"not UTF-8 text \(byte 10\)"):
            load_config(path, environ=ENV)

    def test_directory(self, tmp_path):
        """A directory given as the config file is named as such."""
        with pytest.raises(ConfigError, match="is a directory"):
            load_config(tmp_path, environ=ENV)


class TestNoEcho:
    def test_key_pasted_as_env_name(self):
        """A key pasted as api_key_env (a valid variable name) is not echoed."""
        raw = minimal()
        raw["accounts"][0]["auth"]["api_key_env"] = PLANTED_KEY  # type: ignore[index]
        found = problems(raw)
        assert found == [
            "accounts[0].auth.api_key_env: environment variable named here "
            "(name not shown: it may be a credential) is not set or empty"
        ]

    def test_key_pasted_as_file_name(self, tmp_path):
        """A key pasted as api_key_file is not echoed as a path."""
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "apikey", "api_key_file": PLANTED_KEY}  # type: ignore[index]
        found = problems(raw, base_dir=tmp_path)
        assert found == [
            "accounts[0].auth.api_key_file: file not found: "
            "(path not shown: it may be a credential)"
        ]

    def test_key_pasted_as_a_setting(self):
        """A key pasted under a non-secret key is described, not quoted."""
        found = problems(minimal(poll_interval=PLANTED_KEY))
        hidden = f"(a string of {len(PLANTED_KEY)} characters, not shown: it may be a credential)"
        hint = "(use a number with a unit: 30s, 15m, 2h, 90d)"
        assert found == [f"poll_interval: invalid duration {hidden} {hint}"]


class TestKeyFiles:
    def load_key(self, tmp_path: Path, content: bytes, mode: int = 0o600) -> Config:
        key = tmp_path / "key"
        key.write_bytes(content)
        key.chmod(mode)
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "apikey", "api_key_file": "key"}  # type: ignore[index]
        return config_from_dict(raw, base_dir=tmp_path)

    def test_trailing_newline_stripped_quietly(self, tmp_path):
        """A key file with one line and a newline loads without a warning."""
        config = self.load_key(tmp_path, PLANTED_KEY.encode() + b"\n")
        assert config.accounts[0].auth.api_key.reveal() == PLANTED_KEY
        assert config.warnings == ()

    def test_dev_zero(self):
        """api_key_file: /dev/zero is refused after 4 KiB, not read for ever."""
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "apikey", "api_key_file": "/dev/zero"}  # type: ignore[index]
        assert problems(raw) == [
            "accounts[0].auth.api_key_file: larger than 4 KiB, not an API key: /dev/zero"
        ]

    @pytest.mark.parametrize(
        ("content", "warning"),
        [
            (b"\xef\xbb\xbf" + PLANTED_KEY.encode() + b"\n", "starts with a byte order mark"),
            (PLANTED_KEY.encode() + b"\nsecond line\n", "has more than one line"),
        ],
    )
    def test_bom_and_second_line_warn(self, tmp_path, content, warning):
        """A BOM or a second line is warned about (no secret in it); the first line is used."""
        config = self.load_key(tmp_path, content)
        assert config.accounts[0].auth.api_key.reveal() == PLANTED_KEY
        (found,) = config.warnings
        assert found.startswith(f"accounts[0].auth.api_key_file: {warning}")
        assert PLANTED_KEY not in found

    def test_world_readable_warns(self, tmp_path):
        """A key file every user can read is warned about, with its mode."""
        config = self.load_key(tmp_path, PLANTED_KEY.encode(), mode=0o644)
        assert config.warnings == (
            "accounts[0].auth.api_key_file: is readable by every user (mode 0644); "
            "make it 0600 or 0640",
        )

    def test_readable_by_own_group_is_fine(self, tmp_path):
        """Group-readable by the exporter's own group (Kubernetes fsGroup, 0440) is no warning."""
        assert self.load_key(tmp_path, PLANTED_KEY.encode(), mode=0o440).warnings == ()

    def test_control_characters_refused(self, tmp_path):
        """A key with control characters is refused without quoting it."""
        key = tmp_path / "key"
        key.write_bytes(b"abc\x07def")
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "apikey", "api_key_file": "key"}  # type: ignore[index]
        assert problems(raw, base_dir=tmp_path) == [
            f"accounts[0].auth.api_key_file: contains control characters: {key}"
        ]


class TestNewKeys:
    def test_sources_switch_off(self):
        """sources: maps a source to false to switch it off; the others stay on."""
        raw = minimal()
        raw["accounts"][0]["sources"] = {"next_invoice_items": False, "invoices": True}  # type: ignore[index]
        account = config_from_dict(raw, environ=ENV).accounts[0]
        assert account.sources == ALL_SOURCES - {Source.NEXT_INVOICE_ITEMS}
        assert "invoices" in account.sources  # the members are strings too

    def test_sources_default_all(self):
        """Without sources: every source is polled."""
        assert config_from_dict(minimal(), environ=ENV).accounts[0].sources == ALL_SOURCES

    @pytest.mark.parametrize(
        ("sources", "expected"),
        [
            ({"items": False}, "accounts[0].sources.items: unknown key"),
            ({"invoices": "no"}, "accounts[0].sources.invoices: must be true or false"),
            (["invoices"], "accounts[0].sources: must be a mapping, got list"),
            (
                {s.value: False for s in Source},
                "accounts[0].sources: must leave at least one source switched on",
            ),
        ],
    )
    def test_sources_invalid(self, sources, expected):
        """Unknown sources, non-booleans and switching everything off are refused."""
        raw = minimal()
        raw["accounts"][0]["sources"] = sources  # type: ignore[index]
        found = problems(raw)
        assert any(p.startswith(expected) for p in found), found

    def test_per_account_poll_interval(self):
        """An account's poll_interval overrides the global one; without it, the global applies."""
        raw = minimal(poll_interval="10m")
        raw["accounts"].append(  # type: ignore[attr-defined]
            {
                "name": "b",
                "poll_interval": "1h",
                "auth": {"method": "apikey", "api_key_env": "SL_KEY"},
            }
        )
        config = config_from_dict(raw, environ=ENV)
        first, second = config.accounts
        assert (first.poll_interval_seconds, second.poll_interval_seconds) == (None, 3600)
        assert config.poll_interval_of(first) == 600
        assert config.poll_interval_of(second) == 3600

    def test_per_account_poll_interval_bounded(self):
        """The per-account poll_interval has the global one's range."""
        raw = minimal()
        raw["accounts"][0]["poll_interval"] = "2d"  # type: ignore[index]
        assert problems(raw) == ["accounts[0].poll_interval: must be at most 1d, got 2d"]

    def test_open_invoice_grace(self):
        """thresholds.open_invoice_grace defaults to 30d, takes a duration, null disables it."""
        assert config_from_dict(minimal(), environ=ENV).accounts[
            0
        ].thresholds.open_invoice_grace_seconds == (30 * 86400)
        for value, seconds in (("7d", 7 * 86400), ("0s", 0), (None, None)):
            raw = minimal()
            raw["accounts"][0]["thresholds"] = {"open_invoice_grace": value}  # type: ignore[index]
            limits = config_from_dict(raw, environ=ENV).accounts[0].thresholds
            assert limits.open_invoice_grace_seconds == seconds

    def test_private_endpoint_pairs_with_private_iam(self):
        """endpoint: private defaults the IAM token URL to the private IAM endpoint."""
        raw = minimal()
        raw["accounts"][0]["endpoint"] = "private"  # type: ignore[index]
        raw["accounts"][0]["auth"] = {"method": "iam", "api_key_env": "SL_KEY"}  # type: ignore[index]
        auth = config_from_dict(raw, environ=ENV).accounts[0].auth
        assert auth.iam_token_url == PRIVATE_IAM_TOKEN_URL

    def test_explicit_iam_url_wins_over_private_default(self):
        """An explicit iam_token_url is kept on the private endpoint."""
        raw = minimal()
        raw["accounts"][0]["endpoint"] = "private"  # type: ignore[index]
        raw["accounts"][0]["auth"] = {  # type: ignore[index]
            "method": "iam",
            "api_key_env": "SL_KEY",
            "iam_token_url": "https://iam.example/identity/token",
        }
        auth = config_from_dict(raw, environ=ENV).accounts[0].auth
        assert auth.iam_token_url == "https://iam.example/identity/token"

    def test_public_endpoint_keeps_public_iam(self):
        """The public endpoint keeps the public IAM token URL."""
        raw = minimal()
        raw["accounts"][0]["auth"] = {"method": "iam", "api_key_env": "SL_KEY"}  # type: ignore[index]
        assert config_from_dict(raw, environ=ENV).accounts[0].auth.iam_token_url == (
            "https://iam.cloud.ibm.com/identity/token"
        )


class TestRecords:
    """Records check themselves wherever they are built, so that no consumer re-checks."""

    def auth(self) -> AuthConfig:
        return AuthConfig(method=AuthMethod.APIKEY, api_key=Secret("k"))

    def test_classic_auth_needs_a_username(self):
        """A classic AuthConfig without a username cannot be built."""
        with pytest.raises(
            ConfigError, match=re.escape("AuthConfig.username: required for method classic")
        ):
            AuthConfig(method=AuthMethod.CLASSIC, api_key=Secret("k"))

    @pytest.mark.parametrize(
        ("kwargs", "expected"),
        [
            ({"poll_interval_seconds": 0.0}, "Config.poll_interval_seconds: must be > 0"),
            ({"poll_interval_seconds": 1e12}, "Config.poll_interval_seconds: must be > 0 and <="),
            ({"poll_jitter": 1.5}, "Config.poll_jitter: must be >= 0 and <= 1"),
            ({"max_requests_per_second": 0.0}, "Config.max_requests_per_second: must be > 0"),
            ({"max_requests_per_second": math.inf}, "Config.max_requests_per_second: must be > 0"),
            ({"max_concurrent_requests": 0}, "Config.max_concurrent_requests: must be >= 1"),
            ({"page_size": 2.5}, "Config.page_size: must be an integer"),
            ({"invoice_lookback_seconds": -1.0}, "Config.invoice_lookback_seconds: must be > 0"),
        ],
    )
    def test_config_invariants(self, kwargs, expected):
        """Values no code can work with are refused when a Config is built in code."""
        account = AccountConfig(name="a", endpoint="http://h/", auth=self.auth())
        with pytest.raises(ConfigError, match=re.escape(expected)):
            Config(accounts=(account,), **kwargs)

    def test_code_may_go_beyond_the_file_range(self):
        """Tests may poll a simulator faster than a file may poll SoftLayer."""
        account = AccountConfig(name="a", endpoint="http://h/", auth=self.auth())
        config = Config(
            accounts=(account,),
            poll_interval_seconds=0.01,
            max_requests_per_second=500,
            top_categories=1000,
        )
        assert config.max_requests_per_second == 500.0
        assert isinstance(config.max_requests_per_second, float)  # int normalised

    def test_retry_invariants(self):
        """attempts >= 1 and max_backoff >= initial_backoff hold for every RetryConfig."""
        with pytest.raises(ConfigError, match=re.escape("RetryConfig.attempts: must be >= 1")):
            RetryConfig(attempts=0)
        with pytest.raises(ConfigError, match="max_backoff_seconds: must not be shorter"):
            RetryConfig(initial_backoff_seconds=2, max_backoff_seconds=1)

    def test_account_invariants(self):
        """Account names, endpoints and sources are checked on every AccountConfig."""
        with pytest.raises(ConfigError, match=re.escape("AccountConfig.name: must match")):
            AccountConfig(name="a b", endpoint="http://h/", auth=self.auth())
        with pytest.raises(ConfigError, match=re.escape("AccountConfig.endpoint: must be an http")):
            AccountConfig(name="a", endpoint="ftp://h/", auth=self.auth())
        with pytest.raises(
            ConfigError, match=re.escape("AccountConfig.sources: must leave at least one")
        ):
            AccountConfig(name="a", endpoint="http://h/", auth=self.auth(), sources=frozenset())

    def test_unique_account_names(self):
        """A Config cannot hold two accounts of one name, nor none."""
        account = AccountConfig(name="a", endpoint="http://h/", auth=self.auth())
        with pytest.raises(ConfigError, match="account names must be unique"):
            Config(accounts=(account, account))
        with pytest.raises(ConfigError, match="must list at least one account"):
            Config(accounts=())

    def test_replace_rechecks(self):
        """dataclasses.replace (how --demo derives configs) runs the checks again."""
        account = AccountConfig(name="a", endpoint="http://h/", auth=self.auth())
        with pytest.raises(ConfigError, match="poll_jitter"):
            dataclasses.replace(Config(accounts=(account,)), poll_jitter=-1.0)

    def test_threshold_invariants(self):
        """Threshold amounts must be finite Decimals >= 0."""
        with pytest.raises(
            ConfigError, match=re.escape("Thresholds.monthly_budget_usd: must be a finite")
        ):
            Thresholds(monthly_budget_usd=Decimal("-1"))


class TestExample:
    def test_example_shows_every_declared_key_with_its_default(self):
        """config.example.yaml lists every declared setting with the declared default."""
        example = yaml.safe_load(EXAMPLE.read_text())
        account = example["accounts"][0]
        where = {
            Config: example,
            RetryConfig: example["retry"],
            Thresholds: account["thresholds"],
        }
        for cls, section in where.items():
            for item in dataclasses.fields(cls):
                spec = setting_of(item)
                if spec is None:
                    continue
                assert spec.key in section, f"{cls.__name__}.{item.name}: {spec.key} not shown"
                raw = section[spec.key]
                value, problem = parse_setting(spec, raw)
                assert problem is None, problem
                assert value == item.default, f"{spec.key}: example {raw!r} != {item.default!r}"
        assert "sources" in account
        assert "poll_interval" in account
