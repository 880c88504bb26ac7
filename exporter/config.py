"""Configuration of the exporter: the records, each key declared once, and their loader.

Each setting is one record field declared with :func:`~exporter.configspec.setting`: its YAML
key, default, kind and the range a file may give it live in that declaration and nowhere
else. The loader walks the declarations, so ``config.example.yaml`` (every key with its
default) is the only other place a key is written down, and a test compares the two.

The records are frozen and check themselves when built, wherever that happens (the loader,
``--demo``, tests, benchmarks): code that reads a record never needs to clamp or re-check a
value (see :mod:`exporter.configspec` for what each kind guarantees). Secrets are wrapped in
:class:`Secret` so that no ``repr``, log line or error message can show them by accident.

Why not pydantic v2: a cold import of an equivalent pydantic model took 243 ms (fastest of 21
interleaved runs; this module with PyYAML: 79 ms, the loader it replaced: 86 ms), it would be
a new compiled dependency, its messages would need rewording into our path-qualified ones
anyway, and its errors echo input values unless told otherwise at every model.
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from exporter.configspec import (
    DAY,
    HOUR,
    MINUTE,
    SECOND,
    YEAR,
    ConfigError,
    Kind,
    RecordError,
    check_settings,
    describe,
    may_be_secret,
    parse_duration,
    parse_setting,
    section,
    section_key,
    setting,
    setting_of,
    show,
    type_name,
)
from exporter.snapshot import Source
from exporter.yamlsafe import MAX_YAML_BYTES, InputError, load_yaml, read_bounded

__all__ = [
    "ALL_SOURCES",
    "DEFAULT_IAM_TOKEN_URL",
    "PRIVATE_ENDPOINT",
    "PRIVATE_IAM_TOKEN_URL",
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
#: The IAM endpoint reachable from the SoftLayer private network; a host that can only reach
#: api.service.softlayer.com needs it (softlayer-api.md section 8 item 8, from IBM Cloud's
#: private-endpoint documentation).
PRIVATE_IAM_TOKEN_URL: Final = "https://private.iam.cloud.ibm.com/identity/token"  # noqa: S105
#: SoftLayer answers HTTP 500 RateLimitExceeded above 50 requests/second.
SOFTLAYER_RATE_LIMIT: Final = 50.0
#: Every source is polled unless an account's ``sources:`` switches it off.
ALL_SOURCES: Final = frozenset(Source)
#: API keys are 44 (IBM Cloud) or 64 (classic) characters; anything near this is no key.
MAX_KEY_FILE_BYTES: Final = 4096
#: Threshold amounts past a trillion dollars are typos, and lose cents as float gauges.
MAX_USD: Final = 1e12

_ACCOUNT_NAME: Final = re.compile(r"[a-zA-Z0-9_.-]+")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys that would hold a credential inline: refused with a pointer to the allowed forms.
_INLINE_SECRET_KEYS: Final = frozenset({"api_key", "apikey", "password", "token", "key"})
#: The range of poll_interval, globally and per account.
_POLL_INTERVAL_LOW: Final = SECOND
_POLL_INTERVAL_HIGH: Final = DAY


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


def _raise_if(record: object, problems: list[tuple[str, str]]) -> None:
    if problems:
        raise RecordError(type(record).__name__, problems)


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """Credentials of one account. A classic account always has a username."""

    method: AuthMethod
    api_key: Secret
    username: str | None = None  # classic only
    iam_token_url: str = DEFAULT_IAM_TOKEN_URL

    def __post_init__(self) -> None:
        # Types are mypy's job; these are the checks a type cannot express.
        problems: list[tuple[str, str]] = []
        if self.method is AuthMethod.CLASSIC and not (
            isinstance(self.username, str) and self.username.strip()
        ):
            problems.append(("username", "required for method classic"))
        if (problem := _url_problem(self.iam_token_url)) is not None:
            problems.append(("iam_token_url", problem))
        _raise_if(self, problems)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Per-account alert thresholds, exported as gauges; ``None`` disables the alert."""

    open_invoice_balance_usd: Decimal | None = setting(
        "open_invoice_balance_usd", Kind.USD, None, low=0, high=MAX_USD, nullable=True
    )
    account_balance_usd: Decimal | None = setting(
        "account_balance_usd", Kind.USD, None, low=0, high=MAX_USD, nullable=True
    )
    monthly_budget_usd: Decimal | None = setting(
        "monthly_budget_usd", Kind.USD, None, low=0, high=MAX_USD, nullable=True
    )
    pending_invoice_max_age_seconds: float | None = setting(
        "pending_invoice_max_age",
        Kind.DURATION,
        35 * DAY,
        low=SECOND,
        high=366 * DAY,
        nullable=True,
    )
    #: How long an invoice may stay open before an unpaid balance over the threshold is
    #: money at risk (every invoice is created OPEN and closes when paid: softlayer-api.md
    #: section 8 item 4).
    open_invoice_grace_seconds: float | None = setting(
        "open_invoice_grace", Kind.DURATION, 30 * DAY, low=0, high=366 * DAY, nullable=True
    )
    forecast_surge_ratio: float | None = setting(
        "forecast_surge_ratio",
        Kind.RATIO,
        1.25,
        low=0,
        high=1000,
        low_exclusive=True,
        nullable=True,
    )
    category_surge_ratio: float | None = setting(
        "category_surge_ratio", Kind.RATIO, 1.5, low=0, high=1000, low_exclusive=True, nullable=True
    )

    def __post_init__(self) -> None:
        _raise_if(self, check_settings(self))


@dataclass(frozen=True, slots=True)
class RetryConfig:
    """Retries of one request, for failures a retry can help."""

    attempts: int = setting("attempts", Kind.COUNT, 3, low=1, high=10)
    initial_backoff_seconds: float = setting(
        "initial_backoff", Kind.DURATION, 1.0, low=0.001, high=10 * MINUTE
    )
    max_backoff_seconds: float = setting(
        "max_backoff", Kind.DURATION, 30.0, low=0.001, high=60 * MINUTE
    )

    def __post_init__(self) -> None:
        problems = check_settings(self)
        if not problems and self.max_backoff_seconds < self.initial_backoff_seconds:
            problems.append(("max_backoff_seconds", "must not be shorter than initial_backoff"))
        _raise_if(self, problems)


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """One SoftLayer account to poll.

    ``sources``: the sources polled (all unless the file's ``sources:`` switches some off).
    ``poll_interval_seconds``: this account's interval, or ``None`` for the global one; use
    :meth:`Config.poll_interval_of` to read the effective value.
    """

    name: str
    endpoint: str
    auth: AuthConfig
    thresholds: Thresholds = section("thresholds", Thresholds)
    sources: frozenset[Source] = ALL_SOURCES
    poll_interval_seconds: float | None = setting(
        "poll_interval",
        Kind.DURATION,
        None,
        low=_POLL_INTERVAL_LOW,
        high=_POLL_INTERVAL_HIGH,
        nullable=True,
    )

    def __post_init__(self) -> None:
        problems = check_settings(self)
        if not isinstance(self.name, str) or not _ACCOUNT_NAME.fullmatch(self.name):
            problems.append(("name", f"must match [a-zA-Z0-9_.-]+, got {show(self.name)}"))
        if (problem := _url_problem(self.endpoint)) is not None:
            problems.append(("endpoint", problem))
        if not self.sources <= ALL_SOURCES:
            problems.append(("sources", "must be a subset of the Source members"))
        elif not self.sources:
            problems.append(("sources", "must leave at least one source switched on"))
        _raise_if(self, problems)


@dataclass(frozen=True, slots=True)
class Config:
    """The whole validated configuration: at least one account, names unique."""

    accounts: tuple[AccountConfig, ...]
    poll_interval_seconds: float = setting(
        "poll_interval",
        Kind.DURATION,
        15 * MINUTE,
        low=_POLL_INTERVAL_LOW,
        high=_POLL_INTERVAL_HIGH,
    )
    poll_jitter: float = setting("poll_jitter", Kind.FRACTION, 0.1, low=0, high=1)
    #: How long one poll of one account may take before it is cancelled and its unfinished
    #: sources are reported down (reason ``timeout``); ``None``: see :meth:`poll_timeout_of`.
    poll_timeout_seconds: float | None = setting(
        "poll_timeout", Kind.DURATION, None, low=SECOND, high=DAY, nullable=True
    )
    request_timeout_seconds: float = setting(
        "request_timeout", Kind.DURATION, 60.0, low=SECOND, high=10 * MINUTE
    )
    # The ceiling of each account's adaptive request rate (exporter.ratelimit): most of
    # SoftLayer's 50/s, leaving room for a person's slcli session on the same account. The
    # floor keeps a 2,000-page account within a few hours per poll.
    max_requests_per_second: float = setting(
        "max_requests_per_second", Kind.RATE, 45.0, low=0.1, high=SOFTLAYER_RATE_LIMIT
    )
    # As many threads as softlayer-python's cf_call uses: enough to keep 45 requests/s in
    # flight at up to ~200 ms per request (see docs/performance.md).
    max_concurrent_requests: int = setting(
        "max_concurrent_requests", Kind.COUNT, 10, low=1, high=64
    )
    page_size: int = setting("page_size", Kind.COUNT, 100, low=1, high=1000)
    retry: RetryConfig = section("retry", RetryConfig)
    invoice_lookback_seconds: float = setting(
        "invoice_lookback", Kind.DURATION, 90 * DAY, low=DAY, high=10 * YEAR
    )
    top_categories: int = setting("top_categories", Kind.COUNT, 20, low=1, high=100)
    #: The next invoice's most expensive items, exported one series each (exporter.finops).
    top_items: int = setting("top_items", Kind.COUNT, 10, low=1, high=100)
    #: Datacenters of the next invoice kept apart; the rest are summed into "other".
    top_datacenters: int = setting("top_datacenters", Kind.COUNT, 20, low=1, high=100)
    #: Recurring invoices exported as history (13 covers a year; see exporter.finops.history).
    invoice_history_months: int = setting("invoice_history_months", Kind.COUNT, 13, low=1, high=60)
    #: A poll that finds the billing unchanged walks no list (see docs/reliability.md,
    #: "Steady state"); the items are still walked whole at least this often, which bounds
    #: how long a change no cheap check can see stays unseen. ``0`` switches the steady
    #: state off: every list is walked on every poll.
    full_walk_interval_seconds: float = setting(
        "full_walk_interval", Kind.DURATION, 6 * HOUR, low=0, high=7 * DAY
    )
    #: What the loader noticed without refusing the file (a key file others can read, a
    #: byte order mark, a second line), path-qualified and secret-free; the caller logs them.
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def __post_init__(self) -> None:
        problems = check_settings(self)
        names = [a.name for a in self.accounts]
        if not names:
            problems.append(("accounts", "must list at least one account"))
        elif len(set(names)) != len(names):
            problems.append(("accounts", "account names must be unique"))
        _raise_if(self, problems)

    def poll_interval_of(self, account: AccountConfig) -> float:
        """Return the account's own poll interval, else the global one."""
        if account.poll_interval_seconds is not None:
            return account.poll_interval_seconds
        return self.poll_interval_seconds

    def poll_timeout_of(self, account: AccountConfig) -> float:
        """Return the deadline of one poll of ``account``: ``poll_timeout`` if set.

        Otherwise the account's poll interval (a poll has until the next one is due), but
        never less than one request with all its retries may take, so that a slow API
        reports the request's own failure rather than a cut poll.
        """
        if self.poll_timeout_seconds is not None:
            return self.poll_timeout_seconds
        retry = self.retry
        one_request = self.request_timeout_seconds * retry.attempts + retry.max_backoff_seconds * (
            retry.attempts - 1
        )
        return max(self.poll_interval_of(account), one_request)


def _url_problem(value: object) -> str | None:
    if not isinstance(value, str):
        return f"must be a URL string, got {type_name(value)}"
    try:
        parts = urlsplit(value)
        host, _port = parts.hostname, parts.port
    except ValueError:  # a malformed IPv6 host, a port out of range or not a number
        return f"must be an http(s) URL, got {show(value)}"
    if parts.username or parts.password:
        # Do not echo it: the userinfo part of a URL is a credential.
        return "must not contain credentials (user:password@)"
    if parts.scheme not in {"http", "https"} or not host:
        return f"must be an http(s) URL, got {show(value)}"
    return None


# --------------------------------------------------------------------------------------------
# Loader: YAML (or an already parsed mapping) -> validated, frozen Config.
# --------------------------------------------------------------------------------------------


def load_config(
    path: str | os.PathLike[str],
    *,
    environ: Mapping[str, str] | None = None,
    resolve_secrets: bool = True,
) -> Config:
    """Read, validate and freeze a YAML configuration file.

    The file is read up to 1 MiB, parsed with bounded nesting, and every problem is listed.
    Warnings (a key file others can read, a byte order mark, a second line) are returned in
    :attr:`Config.warnings` for the caller to log.

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
        data = read_bounded(source, MAX_YAML_BYTES)
    except FileNotFoundError:
        raise ConfigError(["file not found"], source) from None
    except IsADirectoryError:
        raise ConfigError(["is a directory, not a file"], source) from None
    except InputError as err:
        raise ConfigError([str(err)], source) from None
    except OSError as err:
        raise ConfigError([f"cannot read: {err.strerror or type(err).__name__}"], source) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError([f"not UTF-8 text (byte {err.start})"], source) from None
    try:
        raw = load_yaml(text)
    except InputError as err:
        raise ConfigError([str(err)], source) from None
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
    loader = _Loader(os.environ if environ is None else environ, Path(base_dir), resolve_secrets)
    config = loader.config({} if raw is None else raw)
    if loader.problems or config is None:
        raise ConfigError(loader.problems, source)
    return dataclasses.replace(config, warnings=tuple(loader.warnings))


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _key_of(cls: type, attribute: str) -> str:
    """Return the configuration key of a record attribute (declared key, else its name)."""
    for item in fields(cls):
        if item.name == attribute:
            spec = setting_of(item)
            return spec.key if spec is not None else section_key(item) or attribute
    return attribute


def _declared_keys(cls: type) -> set[str]:
    keys: set[str] = set()
    for item in fields(cls):
        spec = setting_of(item)
        key = spec.key if spec is not None else section_key(item)
        if key is not None:
            keys.add(key)
    return keys


class _Loader:
    """Walks the record declarations over raw YAML, collecting every problem."""

    def __init__(self, environ: Mapping[str, str], base_dir: Path, resolve_secrets: bool) -> None:
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.environ = environ
        self.base_dir = base_dir
        self.resolve_secrets = resolve_secrets

    def problem(self, path: str, message: str) -> None:
        self.problems.append(f"{path or 'top level'}: {message}")

    def mapping(self, value: object, path: str, allowed: set[str]) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping, got {describe(value)}")
            return None
        for key in value:
            if not isinstance(key, str):
                self.problem(path, f"keys must be strings, got {describe(key)}")
            elif key not in allowed:
                # Never quote the value: an unknown key may well hold a pasted credential.
                self.problem(_join(path, key), "unknown key")
        return {k: v for k, v in value.items() if isinstance(k, str) and k in allowed}

    def settings(self, cls: type, raw: Mapping[str, Any], path: str) -> dict[str, Any]:
        """Parse every declared setting and section of ``cls`` present in ``raw``."""
        values: dict[str, Any] = {}
        for item in fields(cls):
            spec = setting_of(item)
            if spec is not None:
                if spec.key in raw:
                    value, problem = parse_setting(spec, raw[spec.key])
                    if problem is None:
                        values[item.name] = value
                    else:
                        self.problem(_join(path, spec.key), problem)
            elif (key := section_key(item)) is not None:
                nested = self.record(item.default_factory, raw.get(key), _join(path, key))  # type: ignore[arg-type]
                if nested is not None:
                    values[item.name] = nested
        return values

    def record(self, cls: type, value: object, path: str) -> Any:
        """Load a nested record made only of declared settings (retry, thresholds)."""
        raw = self.mapping({} if value is None else value, path, _declared_keys(cls))
        if raw is None:
            return None
        return self.build(cls, path, self.settings(cls, raw, path))

    def build(self, cls: type, path: str, values: dict[str, Any]) -> Any:
        """Build a record; its own checks (cross-field ones) are reported under ``path``."""
        try:
            return cls(**values)
        except RecordError as err:
            for attribute, problem in err.items:
                self.problem(_join(path, _key_of(cls, attribute)), problem)
            return None

    def config(self, raw_value: object) -> Config | None:
        top = self.mapping(raw_value, "", _declared_keys(Config) | {"accounts"})
        if top is None:
            return None
        # Fields are declared in the order of config.example.yaml: problems come in file order.
        values = self.settings(Config, top, "")
        accounts = self.accounts(top.get("accounts"))
        if self.problems:
            return None
        return self.build(Config, "", {**values, "accounts": accounts})  # type: ignore[no-any-return]

    def accounts(self, value: object) -> tuple[AccountConfig, ...]:
        if value is None:
            self.problem("accounts", "required: list at least one account")
            return ()
        if not isinstance(value, list):
            self.problem("accounts", f"must be a list, got {describe(value)}")
            return ()
        if not value:
            self.problem("accounts", "must list at least one account")
        accounts: list[AccountConfig] = []
        seen: dict[str, int] = {}
        for index, item in enumerate(value):
            path = f"accounts[{index}]"
            account = self.account(item, path)
            # Checked on the raw name, so a duplicate is reported even if the account has
            # other problems too.
            name = item.get("name") if isinstance(item, dict) else None
            if isinstance(name, str) and name in seen:
                self.problem(
                    _join(path, "name"),
                    f"duplicate account name {show(name)} (also accounts[{seen[name]}])",
                )
            elif isinstance(name, str):
                seen[name] = index
            if account is not None:
                accounts.append(account)
        return tuple(accounts)

    def account(self, value: object, path: str) -> AccountConfig | None:
        allowed = _declared_keys(AccountConfig) | {"name", "endpoint", "auth", "sources"}
        raw = self.mapping(value, path, allowed)
        if raw is None:
            return None
        name = raw.get("name")
        if name is None:
            self.problem(_join(path, "name"), "required")
        elif not isinstance(name, str) or not _ACCOUNT_NAME.fullmatch(name):
            self.problem(_join(path, "name"), f"must match [a-zA-Z0-9_.-]+, got {show(name)}")
            name = None
        endpoint = self.endpoint(raw.get("endpoint", "public"), _join(path, "endpoint"))
        # softlayer-api.md section 8 item 8: the private API pairs with the private IAM.
        iam_default = PRIVATE_IAM_TOKEN_URL if endpoint == PRIVATE_ENDPOINT else None
        auth = self.auth(raw.get("auth"), _join(path, "auth"), iam_default)
        values = self.settings(AccountConfig, raw, path)
        sources = self.sources(raw.get("sources"), _join(path, "sources"))
        if auth is None or endpoint is None or name is None or sources is None:
            return None
        values.update(name=name, endpoint=endpoint, auth=auth, sources=sources)
        return self.build(AccountConfig, path, values)  # type: ignore[no-any-return]

    def endpoint(self, value: object, path: str) -> str | None:
        if value == "public":
            return PUBLIC_ENDPOINT
        if value == "private":
            return PRIVATE_ENDPOINT
        if isinstance(value, str) and "://" not in value:
            self.problem(path, f"must be public, private or an http(s) URL, got {show(value)}")
            return None
        if (problem := _url_problem(value)) is not None:
            self.problem(path, problem)
            return None
        assert isinstance(value, str)  # noqa: S101  _url_problem refuses anything else
        # The client joins "<Service>/<method>" onto the endpoint, so it must end with "/".
        return value if value.endswith("/") else value + "/"

    def sources(self, value: object, path: str) -> frozenset[Source] | None:
        """Read ``sources: {invoices: false, ...}``: a source is polled unless set to false."""
        if value is None:
            return ALL_SOURCES
        raw = self.mapping(value, path, {s.value for s in Source})
        if raw is None:
            return None
        off: set[Source] = set()
        ok = True
        for key, switch in raw.items():
            if not isinstance(switch, bool):
                self.problem(_join(path, key), f"must be true or false, got {describe(switch)}")
                ok = False
            elif not switch:
                off.add(Source(key))
        if ok and off == ALL_SOURCES:
            self.problem(path, "must leave at least one source switched on")
            ok = False
        return ALL_SOURCES - off if ok else None

    def auth(self, value: object, path: str, iam_default: str | None) -> AuthConfig | None:
        if value is None:
            self.problem(path, "required: method and api_key_env or api_key_file")
            return None
        if isinstance(value, dict):
            for key in sorted(_INLINE_SECRET_KEYS & set(value)):
                self.problem(
                    _join(path, key),
                    "inline secrets are not allowed; use api_key_env or api_key_file",
                )
            value = {k: v for k, v in value.items() if k not in _INLINE_SECRET_KEYS}
        allowed = {"method", "username", "api_key_env", "api_key_file", "iam_token_url"}
        raw = self.mapping(value, path, allowed)
        if raw is None:
            return None
        values: dict[str, Any] = {}
        ok = True
        method_raw = raw.get("method", "classic")
        try:
            values["method"] = AuthMethod(method_raw)
        except (ValueError, TypeError):
            self.problem(
                _join(path, "method"), f"must be classic, apikey or iam, got {describe(method_raw)}"
            )
            ok = False
        # username is documented as ignored for apikey and iam.
        username = raw.get("username")
        if values.get("method") is AuthMethod.CLASSIC and username is not None:
            if isinstance(username, str) and username.strip():
                values["username"] = username
            else:
                self.problem(_join(path, "username"), "must be a non-empty string")
                ok = False
        url = raw.get("iam_token_url", iam_default)
        if url is not None:
            if (problem := _url_problem(url)) is None:
                values["iam_token_url"] = url
            else:
                self.problem(_join(path, "iam_token_url"), problem)
                ok = False
        secret = self.secret(raw, path)
        if not ok:
            return None
        # Built even without a secret, so that its own checks (username) are reported too.
        auth = self.build(AuthConfig, path, {**values, "api_key": secret or Secret("")})
        return None if secret is None else auth

    def secret(self, raw: Mapping[str, Any], path: str) -> Secret | None:
        has_env, has_file = "api_key_env" in raw, "api_key_file" in raw
        if has_env == has_file:
            self.problem(
                path,
                "exactly one of api_key_env or api_key_file is required"
                + (", not both" if has_env else ""),
            )
            return None
        if has_env:
            return self.secret_from_env(raw["api_key_env"], _join(path, "api_key_env"))
        return self.secret_from_file(raw["api_key_file"], _join(path, "api_key_file"))

    def secret_from_env(self, name: object, where: str) -> Secret | None:
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            # Not echoed: it may be a key pasted here instead of a variable name.
            self.problem(where, "must be an environment variable name like SOFTLAYER_API_KEY")
            return None
        if not self.resolve_secrets:
            return Secret("")
        value = self.environ.get(name, "").strip()
        if not value:
            # A key pasted here can be a valid variable name too: then it is not named.
            shown = "named here (name not shown: it may be a credential)"
            named = shown if may_be_secret(name) else name
            self.problem(where, f"environment variable {named} is not set or empty")
            return None
        return Secret(value)

    def secret_from_file(self, file_name: object, where: str) -> Secret | None:
        if not isinstance(file_name, str) or not file_name or "\0" in file_name:
            self.problem(where, f"must be a file path, got {type_name(file_name)}")
            return None
        if not self.resolve_secrets:
            return Secret("")
        file_path = self.base_dir / file_name
        # A key pasted here instead of a path must not be echoed back as a "path".
        shown = (
            "(path not shown: it may be a credential)" if may_be_secret(file_name) else file_path
        )
        problem: str | None = None
        try:
            data = read_bounded(file_path, MAX_KEY_FILE_BYTES)
        except FileNotFoundError:
            problem = f"file not found: {shown}"
        except IsADirectoryError:
            problem = f"is a directory, not a file: {shown}"
        except InputError as err:
            problem = f"{err}, not an API key: {shown}"
        except OSError as err:
            problem = f"cannot read {shown}: {err.strerror or type(err).__name__}"
        if problem is not None:
            self.problem(where, problem)
            return None
        key = self.key_text(data, where, shown)
        if key is not None:
            self.check_permissions(file_path, where)
        return key

    def key_text(self, data: bytes, where: str, shown: object) -> Secret | None:
        """Extract the key from a key file's bytes: one line, surrounding whitespace stripped."""
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            # No details: a decode error quotes the bytes of the file.
            self.problem(where, f"not UTF-8 text: {shown}")
            return None
        if text.startswith("\ufeff"):
            text = text[1:]
            self.warnings.append(f"{where}: starts with a byte order mark (ignored)")
        lines = text.strip().splitlines()
        if not lines:
            self.problem(where, f"file is empty: {shown}")
            return None
        key = lines[0].strip()
        if len(lines) > 1:
            self.warnings.append(f"{where}: has more than one line; only the first is used")
        if any(ord(c) < 0x20 or ord(c) == 0x7F for c in key):
            self.problem(where, f"contains control characters: {shown}")
            return None
        return Secret(key)

    def check_permissions(self, file_path: Path, where: str) -> None:
        """Warn when users other than the exporter's own can read the key file."""
        try:
            info = file_path.stat()
        except OSError:
            return
        if not stat.S_ISREG(info.st_mode):
            return
        mode = stat.S_IMODE(info.st_mode)
        if mode & stat.S_IROTH:
            self.warnings.append(
                f"{where}: is readable by every user (mode {mode:04o}); make it 0600 or 0640"
            )
        elif mode & stat.S_IRGRP and info.st_gid not in {os.getegid(), *os.getgroups()}:
            # Group-readable by our own group is how Kubernetes' fsGroup mounts work.
            self.warnings.append(
                f"{where}: is readable by group {info.st_gid} (mode {mode:04o}), not ours"
            )
