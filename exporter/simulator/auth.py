"""Who is calling: classic Basic, ``apikey`` Basic and IAM bearer tokens.

Classic Basic is ``username:apikey``; ``apikey:<IBM Cloud key>`` uses the literal user name
``apikey``; bearer tokens come from the simulator's own ``/identity/token`` endpoint.

Expired tokens fail the way SoftLayer fails them — HTTP 500 with
``SoftLayer_Exception_Account_Authentication_AccessTokenValidation`` — not with a 401.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from dataclasses import dataclass
from enum import Enum

from exporter.simulator.scenario import Scenario, SimAccount

APIKEY_GRANT = "urn:ibm:params:oauth:grant-type:apikey"


class AuthFailure(Enum):
    """Why a request was refused."""

    MISSING = "missing"
    INVALID = "invalid"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105  an enum value, not a secret
    TOKEN_INVALID = "token_invalid"  # noqa: S105  an enum value, not a secret


@dataclass(slots=True)
class Token:
    """An issued IAM access token."""

    account_id: int
    expires_at: float  # wall-clock epoch seconds


class Authenticator:
    """Checks credentials against a scenario and issues/validates IAM tokens."""

    def __init__(self, scenario: Scenario, token_ttl_seconds: float) -> None:
        if token_ttl_seconds < 0:
            raise ValueError("token_ttl_seconds must be >= 0")
        self.scenario = scenario
        self.token_ttl_seconds = token_ttl_seconds
        self._tokens: dict[str, Token] = {}

    def _by_iam_key(self, key: str) -> SimAccount | None:
        for acct in self.scenario.accounts:
            # The classic key is accepted too, so clients that only know ``api_key`` can
            # exercise the apikey/IAM paths.
            if secrets.compare_digest(key, acct.iam_api_key) or secrets.compare_digest(
                key, acct.api_key
            ):
                return acct
        return None

    def issue_token(self, api_key: str) -> tuple[str, Token] | None:
        """Exchange an API key for a bearer token; None if the key is unknown."""
        acct = self._by_iam_key(api_key)
        if acct is None:
            return None
        token = Token(acct.id, time.time() + self.token_ttl_seconds)
        value = "sim." + secrets.token_urlsafe(24)
        self._tokens[value] = token
        return value, token

    def expire_tokens(self) -> int:
        """Make every issued token expired now; returns how many there were."""
        now = time.time()
        for token in self._tokens.values():
            token.expires_at = min(token.expires_at, now - 1)
        return len(self._tokens)

    def authenticate(self, header: str | None) -> SimAccount | AuthFailure:  # noqa: PLR0911  one outcome per scheme
        """Return the calling account, or why not."""
        if not header:
            return AuthFailure.MISSING
        scheme, _, value = header.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme == "bearer":
            token = self._tokens.get(value)
            if token is None:
                return AuthFailure.TOKEN_INVALID
            if time.time() >= token.expires_at:
                return AuthFailure.TOKEN_EXPIRED
            return self.scenario.account(token.account_id)
        if scheme != "basic":
            return AuthFailure.INVALID
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return AuthFailure.INVALID
        username, sep, key = decoded.partition(":")
        if not sep:
            return AuthFailure.INVALID
        if username == "apikey":
            return self._by_iam_key(key) or AuthFailure.INVALID
        for acct in self.scenario.accounts:
            if acct.username == username and secrets.compare_digest(key, acct.api_key):
                return acct
        return AuthFailure.INVALID
