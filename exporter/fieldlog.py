"""Field logs of the SoftLayer client: what an operator reads when an account misbehaves.

Events (structlog, so JSON off a terminal; see :mod:`exporter.logs`):

- ``api_request`` (debug): one per HTTP attempt: account, service, method, the page
  (``offset``, ``limit``) of a paged list, HTTP ``status`` (``null`` when no response came),
  ``duration_seconds`` and ``attempt`` (1 for the first try of a request);
- ``iam_token_exchange`` (debug): one per IAM token exchange, with status and duration;
- ``api_retry`` (debug): a failed attempt that will be tried again: reason, error, backoff;
- ``api_failing`` (warning): a request failed for good. Logged once per account and reason
  until a request of that account succeeds again, with the error and ``hint``, what to
  check. Each cycle's ``poll`` event still lists every failed source's short error; the
  remedy is said once, not once per source and cycle;
- ``api_recovered`` (info): the first success after ``api_failing``.

Nothing here receives a credential: a request is described by service, method and page
(never its headers or URL), and error messages arrive already scrubbed by the client.
"""

from __future__ import annotations

from typing import Final

import structlog

from exporter.config import AccountConfig, AuthConfig, AuthMethod

__all__ = ["ClientLog", "auth_hint"]

_log = structlog.get_logger()

_KEY_SOURCE: Final = "the key that api_key_env or api_key_file provides"


def auth_hint(auth: AuthConfig, *, iam_exchange: bool) -> str:
    """Say what to check when SoftLayer (or IAM) refuses an account's credentials."""
    if auth.method is AuthMethod.IAM and iam_exchange:
        return (
            f"IAM refused the API key (auth method iam): check that {_KEY_SOURCE} is an IBM "
            "Cloud API key (not a classic infrastructure key) that still exists, and "
            f"iam_token_url ({auth.iam_token_url})"
        )
    if auth.method is AuthMethod.IAM:
        return (
            "SoftLayer refused a fresh IAM token (auth method iam): check that the IBM Cloud "
            "API key's user has access to this classic infrastructure account"
        )
    if auth.method is AuthMethod.APIKEY:
        return (
            "SoftLayer refused user 'apikey' (auth method apikey): check that "
            f"{_KEY_SOURCE} is an IBM Cloud API key (not a classic infrastructure key) of a "
            "user with access to this account"
        )
    return (
        f"SoftLayer refused username {auth.username!r} (auth method classic): check "
        f"auth.username and that {_KEY_SOURCE} is that user's current classic "
        "infrastructure API key (regenerating a key revokes the old one)"
    )


class ClientLog:
    """The field log of one account's client; remembers which warnings it has given."""

    def __init__(self, account: AccountConfig) -> None:
        self._account = account.name
        self._endpoint = account.endpoint
        self._warned: set[str] = set()

    def request(
        self,
        service: str,
        method: str,
        result_limit: str | None,
        *,
        status: int | None,
        seconds: float,
        attempt: int,
    ) -> None:
        """Log one finished HTTP attempt; ``result_limit`` is SoftLayer's "offset,limit"."""
        page: dict[str, int] = {}
        if result_limit is not None:
            offset, _, limit = result_limit.partition(",")
            page = {"offset": int(offset), "limit": int(limit)}
        _log.debug(
            "api_request",
            account=self._account,
            service=service,
            method=method,
            **page,
            status=status,
            duration_seconds=round(seconds, 4),
            attempt=attempt,
        )

    def token_exchange(self, status: int | None, seconds: float) -> None:
        """Log one finished IAM token exchange."""
        _log.debug(
            "iam_token_exchange",
            account=self._account,
            status=status,
            duration_seconds=round(seconds, 4),
        )

    def retry(self, method: str, reason: str, error: str, attempt: int, backoff: float) -> None:
        """Log that attempt ``attempt`` failed for a reason a retry may cure."""
        _log.debug(
            "api_retry",
            account=self._account,
            method=method,
            reason=reason,
            error=error,
            attempt=attempt,
            backoff_seconds=round(backoff, 3),
        )

    def failed(self, reason: str, error: str, hint: str | None) -> None:
        """Warn that a request failed for good, once per reason until the account recovers."""
        if reason in self._warned:
            return
        self._warned.add(reason)
        fields = {"hint": hint} if hint else {}
        _log.warning(
            "api_failing",
            account=self._account,
            endpoint=self._endpoint,
            reason=reason,
            error=error,
            **fields,
        )

    def succeeded(self) -> None:
        """Note a success: log the recovery, and let the next failure warn again."""
        if self._warned:
            _log.info("api_recovered", account=self._account, reasons=sorted(self._warned))
            self._warned.clear()
