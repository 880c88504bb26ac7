"""Configuration records of the exporter.

The records are frozen: the loaded configuration is shared by the poller, the client and
the collector and must never change under them. Secrets are wrapped in :class:`Secret`
so that no ``repr``, log line or error message can show them by accident.

The YAML loader (``load_config``) lives further down in this module; every key it accepts
is shown in ``config.example.yaml`` with its default.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Final

__all__ = [
    "PRIVATE_ENDPOINT",
    "PUBLIC_ENDPOINT",
    "AccountConfig",
    "AuthConfig",
    "AuthMethod",
    "Config",
    "RetryConfig",
    "Secret",
    "Thresholds",
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
