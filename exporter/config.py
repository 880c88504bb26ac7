"""Configuration records of the exporter.

The records are frozen: the loaded configuration is shared by the poller, the client and
the collector and must never change under them. Secrets are wrapped in :class:`Secret`
so that no ``repr``, log line or error message can show them by accident.

The YAML loader (``load_config``) lives further down in this module; every key it accepts
is shown in ``config.example.yaml`` with its default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import yaml

__all__ = [
    "PRIVATE_ENDPOINT",
    "PUBLIC_ENDPOINT",
    "AccountConfig",
    "AuthConfig",
    "AuthMethod",
    "Config",
    "ConfigError",
    "RetryConfig",
    "Secret",
    "Thresholds",
    "config_from_dict",
    "load_config",
    "parse_duration",
]

PUBLIC_ENDPOINT: Final = "https://api.softlayer.com/rest/v3.1/"
PRIVATE_ENDPOINT: Final = "https://api.service.softlayer.com/rest/v3.1/"
DEFAULT_IAM_TOKEN_URL: Final = "https://iam.cloud.ibm.com/identity/token"  # noqa: S105 (a URL)


class Secret:
    """A credential whose value is only reachable through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret value; call this only where it goes on the wire."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


class AuthMethod(StrEnum):
    """How an account authenticates against the SoftLayer API."""

    CLASSIC = "classic"  # Basic username:classic-api-key
    APIKEY = "apikey"  # Basic apikey:<IBM Cloud API key>
    IAM = "iam"  # IBM Cloud API key exchanged for an IAM bearer token


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Credentials of one account."""

    method: AuthMethod
    api_key: Secret
    username: str | None = None  # classic only
    iam_token_url: str = DEFAULT_IAM_TOKEN_URL


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-account alert thresholds, exported as gauges; ``None`` disables the alert."""

    open_invoice_balance_usd: Decimal | None = None
    account_balance_usd: Decimal | None = None
    monthly_budget_usd: Decimal | None = None
    pending_invoice_max_age_seconds: float | None = 35 * 86400.0
    # How long an invoice may stay open before an unpaid balance over the threshold is
    # money at risk (exported as softlayer_alert_threshold_seconds{kind="open_invoice_grace"}).
    open_invoice_grace_seconds: float | None = 30 * 86400.0
    forecast_surge_ratio: float | None = 1.25
    category_surge_ratio: float | None = 1.5


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One SoftLayer account to poll."""

    name: str
    endpoint: str
    auth: AuthConfig
    thresholds: Thresholds = field(default_factory=Thresholds)


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retries of one request, for failures a retry can help."""

    attempts: int = 3
    initial_backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration."""

    accounts: tuple[AccountConfig, ...]
    poll_interval_seconds: float = 15 * 60.0
    poll_jitter: float = 0.1
    request_timeout_seconds: float = 60.0
    max_requests_per_second: float = 10.0
    max_concurrent_requests: int = 4
    page_size: int = 100
    retry: RetryConfig = field(default_factory=RetryConfig)
    invoice_lookback_seconds: float = 90 * 86400.0
    top_categories: int = 20


# --------------------------------------------------------------------------------------------
# Loader: YAML (or an already parsed mapping) -> validated, frozen Config.
# --------------------------------------------------------------------------------------------


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem, path-qualified.

    Messages name the offending key and, for non-secret keys, the offending value; they never
    contain a credential (secrets are only ever referenced by environment variable or file).
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        header = f"invalid config file {source}:" if source else "invalid config:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


_DURATION_UNITS: Final = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 7 * 86400.0,
    "y": 365 * 86400.0,
}
_DURATION_PART: Final = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION: Final = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
_ACCOUNT_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]+")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SHOWN: Final = 60  # characters of an offending value quoted back in a message

_TOP_KEYS: Final = frozenset(
    {
        "poll_interval",
        "poll_jitter",
        "request_timeout",
        "max_requests_per_second",
        "max_concurrent_requests",
        "page_size",
        "retry",
        "invoice_lookback",
        "top_categories",
        "accounts",
    }
)
_RETRY_KEYS: Final = frozenset({"attempts", "initial_backoff", "max_backoff"})
_ACCOUNT_KEYS: Final = frozenset({"name", "endpoint", "auth", "thresholds"})
_AUTH_KEYS: Final = frozenset(
    {"method", "username", "api_key_env", "api_key_file", "iam_token_url"}
)
# Keys that would hold a credential inline: refused with a pointer to the allowed forms.
_INLINE_SECRET_KEYS: Final = frozenset({"api_key", "apikey", "password", "token", "key"})
_THRESHOLD_USD_KEYS: Final = (
    "open_invoice_balance_usd",
    "account_balance_usd",
    "monthly_budget_usd",
)
_THRESHOLD_RATIO_KEYS: Final = ("forecast_surge_ratio", "category_surge_ratio")
_THRESHOLD_KEYS: Final = frozenset(
    {*_THRESHOLD_USD_KEYS, *_THRESHOLD_RATIO_KEYS, "pending_invoice_max_age", "open_invoice_grace"}
)
#: SoftLayer answers HTTP 500 RateLimitExceeded above 50 requests/second.
SOFTLAYER_RATE_LIMIT: Final = 50.0


def parse_duration(text: str) -> float:
    """Parse a Prometheus-style duration (``30s``, ``15m``, ``1h30m``, ``90d``) into seconds.

    Raises:
        ValueError: the text is not such a duration.

    """
    if not _DURATION.fullmatch(text):
        msg = f"invalid duration {_show(text)} (use a number with a unit: 30s, 15m, 2h, 90d)"
        raise ValueError(msg)
    return sum(int(n) * _DURATION_UNITS[unit] for n, unit in _DURATION_PART.findall(text))


def _show(value: object) -> str:
    """Quote a (non-secret) offending value for an error message, shortened."""
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(value), type(value).__name__)


class _Checker:
    """Collects every problem instead of stopping at the first one."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path, resolve_secrets: bool) -> None:
        self.problems: list[str] = []
        self.environ = environ
        self.base_dir = base_dir
        self.resolve_secrets = resolve_secrets

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'top level'}: {message}")

    def mapping(self, value: object, path: str, allowed: frozenset[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {_type_name(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.problem(path, f"keys must be strings, got {_show(key)}")
            elif key not in allowed:
                # Never quote the value: an unknown key may well hold a pasted credential.
                self.problem(_join(path, key), "unknown key")
        return {k: v for k, v in value.items() if isinstance(k, str) and k in allowed}

    def duration(
        self, raw: Mapping[str, Any], key: str, path: str, *, default: float, minimum: float
    ) -> float:
        if key not in raw:
            return default
        value = raw[key]
        where = _join(path, key)
        if not isinstance(value, str):
            self.problem(
                where,
                f"must be a duration like 30s, 15m, 90d, got {_type_name(value)} {_show(value)}",
            )
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as err:
            self.problem(where, str(err))
            return default
        if seconds < minimum:
            self.problem(where, f"must be at least {_format_seconds(minimum)}, got {value}")
        return seconds

    def number(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: float,
        minimum: float,
        maximum: float | None = None,
        exclusive_minimum: bool = False,
    ) -> float:
        if key not in raw:
            return default
        value = raw[key]
        where = _join(path, key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(where, f"must be a number, got {_type_name(value)} {_show(value)}")
            return default
        low_ok = value > minimum if exclusive_minimum else value >= minimum
        if not low_ok or (maximum is not None and value > maximum):
            self.problem(
                where, f"must be {_range(minimum, maximum, exclusive_minimum)}, got {value}"
            )
        return float(value)

    def integer(
        self,
        raw: Mapping[str, Any],
        key: str,
        path: str,
        *,
        default: int,
        minimum: int,
        maximum: int,
    ) -> int:
        if key not in raw:
            return default
        value = raw[key]
        where = _join(path, key)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(where, f"must be an integer, got {_type_name(value)} {_show(value)}")
            return default
        if not minimum <= value <= maximum:
            self.problem(where, f"must be between {minimum} and {maximum}, got {value}")
        return value

    def url(self, value: object, path: str) -> str | None:
        if not isinstance(value, str):
            self.problem(path, f"must be a URL string, got {_type_name(value)}")
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            self.problem(path, f"must be an http(s) URL, got {_show(value)}")
            return None
        if parts.username or parts.password:
            # Do not echo it: the userinfo part of a URL is a credential.
            self.problem(path, "must not contain credentials (user:password@)")
            return None
        return value


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _range(minimum: float, maximum: float | None, exclusive_minimum: bool) -> str:
    low = f"> {minimum:g}" if exclusive_minimum else f">= {minimum:g}"
    return low if maximum is None else f"{low} and <= {maximum:g}"


def _format_seconds(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        size = _DURATION_UNITS[unit]
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Read, validate and freeze a YAML configuration file.

    Args:
        path: the YAML file.
        environ: where ``api_key_env`` names are looked up (default ``os.environ``).
        resolve_secrets: when false, secret references are checked for form only and
            not read (``--demo`` replaces the credentials anyway).

    Raises:
        ConfigError: listing every problem found, each prefixed with its key path.

    """
    source = os.fspath(path)
    try:
        text = Path(source).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], source) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([f"cannot read: {err.__class__.__name__}"], source) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(err, "problem", None) or "syntax error"
        raise ConfigError([f"{where}invalid YAML: {problem}"], source) from None
    return config_from_dict(
        raw,
        environ=environ,
        base_dir=Path(source).resolve().parent,
        resolve_secrets=resolve_secrets,
        source=source,
    )


def config_from_dict(
    raw: object,
    *,
    environ: Mapping[str, str] | None = None,
    base_dir: str | os.PathLike[str] = ".",
    resolve_secrets: bool = True,
    source: str | None = None,
) -> Config:
    """Validate an already parsed configuration mapping; see :func:`load_config`.

    Relative ``api_key_file`` paths are resolved against ``base_dir`` (the config file's
    directory when loading a file).
    """
    checker = _Checker(os.environ if environ is None else environ, Path(base_dir), resolve_secrets)
    top = checker.mapping({} if raw is None else raw, "", _TOP_KEYS)
    if top is None:
        raise ConfigError(checker.problems, source)
    # Checked in the order of config.example.yaml, so problems are listed in file order.
    poll_interval = checker.duration(top, "poll_interval", "", default=15 * 60.0, minimum=1.0)
    poll_jitter = checker.number(top, "poll_jitter", "", default=0.1, minimum=0.0, maximum=1.0)
    request_timeout = checker.duration(top, "request_timeout", "", default=60.0, minimum=1.0)
    max_rps = checker.number(
        top,
        "max_requests_per_second",
        "",
        default=10.0,
        minimum=0.0,
        maximum=SOFTLAYER_RATE_LIMIT,
        exclusive_minimum=True,
    )
    max_concurrent = checker.integer(
        top, "max_concurrent_requests", "", default=4, minimum=1, maximum=64
    )
    page_size = checker.integer(top, "page_size", "", default=100, minimum=1, maximum=1000)
    retry = _retry(checker, top.get("retry", {}), "retry")
    lookback = checker.duration(top, "invoice_lookback", "", default=90 * 86400.0, minimum=86400.0)
    top_categories = checker.integer(top, "top_categories", "", default=20, minimum=1, maximum=100)
    accounts = _accounts(checker, top.get("accounts"))
    config = Config(
        accounts=accounts,
        poll_interval_seconds=poll_interval,
        poll_jitter=poll_jitter,
        request_timeout_seconds=request_timeout,
        max_requests_per_second=max_rps,
        max_concurrent_requests=max_concurrent,
        page_size=page_size,
        retry=retry,
        invoice_lookback_seconds=lookback,
        top_categories=top_categories,
    )
    if checker.problems:
        raise ConfigError(checker.problems, source)
    return config


def _retry(checker: _Checker, value: object, path: str) -> RetryConfig:
    raw = checker.mapping(value, path, _RETRY_KEYS)
    if raw is None:
        return RetryConfig()
    attempts = checker.integer(raw, "attempts", path, default=3, minimum=1, maximum=10)
    initial = checker.duration(raw, "initial_backoff", path, default=1.0, minimum=0.001)
    maximum = checker.duration(raw, "max_backoff", path, default=30.0, minimum=0.001)
    if maximum < initial:
        checker.problem(_join(path, "max_backoff"), "must not be shorter than initial_backoff")
    return RetryConfig(
        attempts=attempts,
        initial_backoff_seconds=initial,
        max_backoff_seconds=maximum,
    )


def _accounts(checker: _Checker, value: object) -> tuple[AccountConfig, ...]:
    if value is None:
        checker.problem("accounts", "required: list at least one account")
        return ()
    if not isinstance(value, list):
        checker.problem("accounts", f"must be a list, got {_type_name(value)}")
        return ()
    if not value:
        checker.problem("accounts", "must list at least one account")
    accounts: list[AccountConfig] = []
    seen: dict[str, int] = {}
    for index, item in enumerate(value):
        path = f"accounts[{index}]"
        account = _account(checker, item, path)
        # Checked on the raw name, so a duplicate is reported even if the account has
        # other problems too.
        name = item.get("name") if isinstance(item, dict) else None
        if isinstance(name, str) and name in seen:
            checker.problem(
                _join(path, "name"),
                f"duplicate account name {name!r} (also accounts[{seen[name]}])",
            )
        elif isinstance(name, str):
            seen[name] = index
        if account is not None:
            accounts.append(account)
    return tuple(accounts)


def _account(checker: _Checker, value: object, path: str) -> AccountConfig | None:
    raw = checker.mapping(value, path, _ACCOUNT_KEYS)
    if raw is None:
        return None
    name = raw.get("name")
    if name is None:
        checker.problem(_join(path, "name"), "required")
        name = ""
    elif not isinstance(name, str) or not _ACCOUNT_NAME.fullmatch(name):
        checker.problem(_join(path, "name"), f"must match [a-zA-Z0-9_.-]+, got {_show(name)}")
        name = ""
    endpoint = _endpoint(checker, raw.get("endpoint", "public"), _join(path, "endpoint"))
    auth = _auth(checker, raw.get("auth"), _join(path, "auth"))
    thresholds = _thresholds(checker, raw.get("thresholds", {}), _join(path, "thresholds"))
    if auth is None or endpoint is None or not name:
        return None
    return AccountConfig(name=name, endpoint=endpoint, auth=auth, thresholds=thresholds)


def _endpoint(checker: _Checker, value: object, path: str) -> str | None:
    if value == "public":
        return PUBLIC_ENDPOINT
    if value == "private":
        return PRIVATE_ENDPOINT
    if isinstance(value, str) and "://" not in value:
        checker.problem(path, f"must be public, private or an http(s) URL, got {_show(value)}")
        return None
    url = checker.url(value, path)
    if url is None:
        return None
    # The client joins "<Service>/<method>" onto the endpoint, so it must end with "/".
    return url if url.endswith("/") else url + "/"


def _auth(checker: _Checker, value: object, path: str) -> AuthConfig | None:
    if value is None:
        checker.problem(path, "required: method and api_key_env or api_key_file")
        return None
    if isinstance(value, dict):
        for key in _INLINE_SECRET_KEYS & set(value):
            checker.problem(
                _join(path, key),
                "inline secrets are not allowed; use api_key_env or api_key_file",
            )
        value = {k: v for k, v in value.items() if k not in _INLINE_SECRET_KEYS}
    raw = checker.mapping(value, path, _AUTH_KEYS)
    if raw is None:
        return None
    ok = True
    method_raw = raw.get("method", "classic")
    try:
        method = AuthMethod(method_raw)
    except ValueError:
        checker.problem(
            _join(path, "method"), f"must be classic, apikey or iam, got {_show(method_raw)}"
        )
        method = AuthMethod.CLASSIC
        ok = False
    username = raw.get("username")
    if method is AuthMethod.CLASSIC and ok:
        if username is None:
            checker.problem(_join(path, "username"), "required for method classic")
            ok = False
        elif not isinstance(username, str) or not username.strip():
            checker.problem(_join(path, "username"), "must be a non-empty string")
            ok = False
    else:
        username = None  # documented as ignored for apikey and iam
    iam_token_url = DEFAULT_IAM_TOKEN_URL
    if "iam_token_url" in raw:
        url = checker.url(raw["iam_token_url"], _join(path, "iam_token_url"))
        ok = ok and url is not None
        iam_token_url = url or DEFAULT_IAM_TOKEN_URL
    secret = _secret(checker, raw, path)
    if secret is None or not ok:
        return None
    return AuthConfig(method=method, api_key=secret, username=username, iam_token_url=iam_token_url)


def _secret(checker: _Checker, raw: Mapping[str, Any], path: str) -> Secret | None:
    has_env, has_file = "api_key_env" in raw, "api_key_file" in raw
    if has_env == has_file:
        checker.problem(
            path,
            "exactly one of api_key_env or api_key_file is required"
            + (", not both" if has_env else ""),
        )
        return None
    if has_env:
        return _secret_from_env(checker, raw["api_key_env"], _join(path, "api_key_env"))
    return _secret_from_file(checker, raw["api_key_file"], _join(path, "api_key_file"))


def _secret_from_env(checker: _Checker, name: object, where: str) -> Secret | None:
    if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
        checker.problem(where, "must be an environment variable name like SOFTLAYER_API_KEY")
        return None
    if not checker.resolve_secrets:
        return Secret("")
    value = checker.environ.get(name, "")
    if not value.strip():
        checker.problem(where, f"environment variable {name} is not set or empty")
        return None
    return Secret(value.strip())


def _secret_from_file(checker: _Checker, file_name: object, where: str) -> Secret | None:
    if not isinstance(file_name, str) or not file_name:
        checker.problem(where, f"must be a file path, got {_type_name(file_name)}")
        return None
    if not checker.resolve_secrets:
        return Secret("")
    file_path = checker.base_dir / file_name
    problem: str | None = None
    content = ""
    try:
        content = file_path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        problem = f"file not found: {file_path}"
    except IsADirectoryError:
        problem = f"is a directory, not a file: {file_path}"
    except (OSError, UnicodeDecodeError) as err:
        # Only the class name: a decode error would quote bytes of the file.
        problem = f"cannot read {file_path}: {err.__class__.__name__}"
    if problem is None and not content:
        problem = f"file is empty: {file_path}"
    if problem is not None:
        checker.problem(where, problem)
        return None
    return Secret(content)


def _thresholds(checker: _Checker, value: object, path: str) -> Thresholds:
    raw = checker.mapping({} if value is None else value, path, _THRESHOLD_KEYS)
    if raw is None:
        return Thresholds()
    defaults = Thresholds()
    usd: dict[str, Decimal | None] = {}
    for key in _THRESHOLD_USD_KEYS:
        usd[key] = _usd(checker, raw, key, path)
    ratios: dict[str, float | None] = {}
    for key in _THRESHOLD_RATIO_KEYS:
        if raw.get(key, getattr(defaults, key)) is None:
            ratios[key] = None
        else:
            ratios[key] = checker.number(
                raw,
                key,
                path,
                default=getattr(defaults, key),
                minimum=0.0,
                exclusive_minimum=True,
            )
    max_age: float | None = None
    if raw.get("pending_invoice_max_age", "") is not None:
        max_age = checker.duration(
            raw,
            "pending_invoice_max_age",
            path,
            default=defaults.pending_invoice_max_age_seconds or 0.0,
            minimum=1.0,
        )
    grace: float | None = None
    if raw.get("open_invoice_grace", "") is not None:
        grace = checker.duration(
            raw,
            "open_invoice_grace",
            path,
            default=defaults.open_invoice_grace_seconds or 0.0,
            minimum=1.0,
        )
    return Thresholds(
        open_invoice_balance_usd=usd["open_invoice_balance_usd"],
        account_balance_usd=usd["account_balance_usd"],
        monthly_budget_usd=usd["monthly_budget_usd"],
        pending_invoice_max_age_seconds=max_age,
        open_invoice_grace_seconds=grace,
        forecast_surge_ratio=ratios["forecast_surge_ratio"],
        category_surge_ratio=ratios["category_surge_ratio"],
    )


def _usd(checker: _Checker, raw: Mapping[str, Any], key: str, path: str) -> Decimal | None:
    value = raw.get(key)
    if value is None:
        return None
    where = _join(path, key)
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        checker.problem(where, f"must be an amount in USD, got {_type_name(value)}")
        return None
    try:
        # str() first: a YAML float 0.1 must become Decimal("0.1"), not its binary expansion.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        checker.problem(where, f"must be an amount in USD, got {_show(value)}")
        return None
    if not amount.is_finite() or amount < 0:
        checker.problem(where, f"must be a finite amount >= 0, got {_show(value)}")
        return None
    return amount
