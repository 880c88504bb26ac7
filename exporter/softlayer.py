"""Async SoftLayer REST client: authentication, paging, rate limiting, retries, typed errors.

One :class:`SoftLayerClient` serves one configured account over a shared
:class:`aiohttp.ClientSession`. It knows the API's quirks (``softlayer-api.md`` section 5):

- errors arrive as ``{"error": ..., "code": ...}`` with HTTP 500 (rate limit, expired IAM
  token, backend failure), 401, 404, and sometimes with HTTP **200**; every body is checked;
- JSON numbers are decoded straight into :class:`~decimal.Decimal`;
- list methods are paged with ``resultLimit=offset,limit`` and ``SoftLayer-Total-Items``; the
  remaining pages are fetched concurrently after the first; a page that answers
  ``Internal Error`` (large accounts do) is split in halves and the smaller size remembered;
- IAM bearer tokens are exchanged from the API key, re-exchanged before they expire and once
  more when the API reports them expired, and the call is then retried once.

Failures raise :class:`SoftLayerError` with a :class:`ErrorReason`. Retries (exponential
backoff, full jitter) happen only for reasons a retry can cure. No message ever contains
an API key or token.
"""

from __future__ import annotations

import asyncio
import base64
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any, Final

import aiohttp

from exporter import __version__
from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthMethod, Config
from exporter.ratelimit import RateLimiter

__all__ = [
    "IAM_METHOD",
    "RETRYABLE_REASONS",
    "ErrorReason",
    "Page",
    "SoftLayerClient",
    "SoftLayerError",
]


class ErrorReason(StrEnum):
    """Why a request failed; the ``reason`` label of ``softlayer_api_errors_total``."""

    AUTH = "auth"
    PERMISSION = "permission"  # authenticated, but the user may not see this
    RATE_LIMITED = "rate_limited"
    TIMEOUT = "timeout"
    SERVER = "server"
    CLIENT = "client"
    DECODE = "decode"
    NETWORK = "network"
    MASK = "mask"  # the objectMask names a property SoftLayer does not know
    PARSE = "parse"  # SoftLayer could not parse the mask or filter
    VALIDATION = "validation"  # SoftLayer rejected a value of the request
    INCOMPLETE = "incomplete"  # a paged list whose completeness could not be proven


#: Reasons where the same request may succeed a moment later. Auth, permission, client,
#: decode, mask, parse and validation failures repeat identically (SoftLayer sends several
#: of them with HTTP 500, softlayer-python#2088, maximilien/softlayer-go#136), so retrying
#: them only burns the rate budget; softlayer-go retries only rate limits and timeouts.
RETRYABLE_REASONS: Final = frozenset(
    {ErrorReason.RATE_LIMITED, ErrorReason.TIMEOUT, ErrorReason.SERVER, ErrorReason.NETWORK}
)
#: The ``method`` label of IAM token exchanges in :class:`ApiStats`.
IAM_METHOD: Final = "iam_token"

_RATE_LIMIT_CODE: Final = "SoftLayer_Exception_WebService_RateLimitExceeded"
_EXPIRED_BEARER_CODE: Final = "SoftLayer_Exception_Account_Authentication_AccessTokenValidation"
#: SoftLayer exception classes (the ``code`` of an error body) that name a defect of the
#: request, whatever the HTTP status: matched as prefixes, most specific first.
#: Mask: "Property 'x' not valid for 'SoftLayer_Hardware_Server'" (softlayer-python#1088).
#: Parse: "Error on line 1 at column 254: Expected PROPERTY" (softlayer-python#345).
#: Validation: SoftLayer_Exception_InvalidValue and the malformed-request
#: SoftLayer_Exception_WebService_BadRequest (SLDN exception-handling article).
#: Permission: SoftLayer_Exception_PermissionDenied (SLDN reference "Error Handling" sections,
#: e.g. SoftLayer_User_Customer::addHardwareAccess) and SoftLayer_Exception_User_Permission_*.
_CODE_REASONS: Final = (
    ("SoftLayer_Exception_WebService_ObjectMask", ErrorReason.MASK),
    ("SoftLayer_Exception_ObjectMask", ErrorReason.MASK),
    ("SoftLayer_Exception_Common_Parser", ErrorReason.PARSE),
    ("SoftLayer_Exception_WebService_ObjectFilter", ErrorReason.PARSE),
    ("SoftLayer_Exception_InvalidValue", ErrorReason.VALIDATION),
    ("SoftLayer_Exception_InvalidData", ErrorReason.VALIDATION),
    ("SoftLayer_Exception_WebService_BadRequest", ErrorReason.VALIDATION),
    ("SoftLayer_Exception_PermissionDenied", ErrorReason.PERMISSION),
    ("SoftLayer_Exception_User_Permission", ErrorReason.PERMISSION),
)
_INTERNAL_ERROR: Final = "internal error"
_IAM_GRANT: Final = "urn:ibm:params:oauth:grant-type:apikey"
#: Re-exchange an IAM token once this fraction of its lifetime has passed.
_TOKEN_REFRESH_FRACTION: Final = 0.9
#: Paging without ``SoftLayer-Total-Items`` walks page by page; this bounds a server that
#: ignores the offset and would otherwise send the same full page forever.
_MAX_SEQUENTIAL_PAGES: Final = 10_000
_MAX_MESSAGE_CHARS: Final = 200
#: Halve a page at most this many times (100 -> 12): a method that fails even then is down,
#: and shrinking further would multiply the calls of every later cycle.
_MAX_HALVINGS: Final = 3


class SoftLayerError(Exception):
    """A failed SoftLayer API (or IAM) request; ``str()`` is safe to log and export."""

    def __init__(
        self,
        reason: ErrorReason,
        message: str,
        *,
        method: str,
        status: int | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(f"{method}: {message}")
        self.reason = reason
        self.method = method
        self.status = status
        self.code = code

    @property
    def retryable(self) -> bool:
        """True when repeating the same request may succeed."""
        return self.reason in RETRYABLE_REASONS

    @property
    def token_expired(self) -> bool:
        """True when the API rejected an IAM bearer token as expired."""
        return self.code == _EXPIRED_BEARER_CODE

    @property
    def internal_error(self) -> bool:
        """True for SoftLayer's ``Internal Error``, which usually means "asked too much"."""
        return self.reason is ErrorReason.SERVER and _INTERNAL_ERROR in str(self).lower()


@dataclass(frozen=True, slots=True)
class _Query:
    """What to ask for, minus the page: service, method, mask and filter."""

    service: str
    method: str
    mask: str | None
    object_filter: Mapping[str, Any] | None

    @property
    def key(self) -> str:
        """``Service::method``, as SoftLayer names methods in its docs and errors."""
        return f"{self.service}::{self.method}"


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded response: the body and ``SoftLayer-Total-Items`` if sent."""

    body: Any
    total_items: int | None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-standard JSON constant {name}")


def _decode_json(raw: bytes) -> Any:
    # parse_float=Decimal: amounts such as 40.32 must never pass through binary floats.
    return json.loads(raw, parse_float=Decimal, parse_constant=_reject_constant)


def _as_list(body: Any) -> list[Any]:
    # Some list methods send a bare object instead of a one-element array; anything else
    # is left for the parser to reject with a path-qualified DecodeError.
    if isinstance(body, list):
        return body
    return [body]


class SoftLayerClient:
    """The SoftLayer API as seen by one account.

    ``session`` is shared by all accounts and owned by the caller. Concurrency
    (``max_concurrent_requests``) and the rate budget (``max_requests_per_second``) are
    per account.
    """

    def __init__(
        self,
        account: AccountConfig,
        config: Config,
        session: aiohttp.ClientSession,
        stats: ApiStats,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if account.auth.method is AuthMethod.CLASSIC and not account.auth.username:
            raise ValueError(f"account {account.name!r}: classic auth needs a username")
        self.account = account
        self._config = config
        self._session = session
        self._stats = stats
        self._rng = rng or random.Random()  # noqa: S311  jitter, not cryptography
        self._clock = clock  # for token expiry only
        self._min_page_size = max(1, config.page_size >> _MAX_HALVINGS)
        self._endpoint = account.endpoint.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout_seconds)
        self._limiter = RateLimiter(config.max_requests_per_second)
        self._slots = asyncio.Semaphore(max(1, config.max_concurrent_requests))
        self._page_sizes: dict[str, int] = {}
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = asyncio.Lock()
        self._secrets = tuple(
            s for s in (account.auth.api_key.reveal(),) if s
        )  # scrubbed from every message we build
        #: SoftLayer API requests (HTTP attempts, IAM excluded) made so far.
        self.api_requests = 0

    # -- public API -----------------------------------------------------------------

    def page_size(self, service: str, method: str) -> int:
        """Return the page size of a method: configured, or halved after Internal Errors."""
        return self._page_sizes.get(f"{service}::{method}", self._config.page_size)

    async def call(
        self,
        service: str,
        method: str,
        *,
        mask: str | None = None,
        object_filter: Mapping[str, Any] | None = None,
        result_limit: tuple[int, int] | None = None,
    ) -> Page:
        """Make one API call, with retries; raises :class:`SoftLayerError`."""
        return await self._request(_Query(service, method, mask, object_filter), result_limit)

    async def fetch_pages(
        self,
        service: str,
        method: str,
        *,
        consume: Callable[[list[Any]], object],
        mask: str | None = None,
        object_filter: Mapping[str, Any] | None = None,
    ) -> None:
        """Fetch every page of a list method and hand each page to ``consume``.

        Pages reach ``consume`` in completion order, not offset order, so it must be
        order-independent (a sum). ``object_filter`` should order by ``id`` so that pages
        do not overlap or skip. The first page tells the total; the rest are fetched
        concurrently. If ``consume`` or any page fails, the other pages are cancelled and
        the error propagates.
        """
        query = _Query(service, method, mask, object_filter)
        size = self.page_size(service, method)
        first: Page | None = None
        while first is None:
            splittable = size > self._min_page_size
            try:
                first = await self._request(query, (0, size), split_on_internal=splittable)
            except SoftLayerError as err:
                if not (err.internal_error and splittable):
                    raise
                size = max(self._min_page_size, size // 2)
        self._remember_size(query, size)
        page = _as_list(first.body)
        consume(page)
        total = first.total_items
        if total is None:
            await self._walk_sequentially(query, page, size, consume)
            return
        if len(page) >= total or not page:
            return
        # A server that caps pages below what we asked for is stepped through at its size.
        size = min(size, len(page))
        # A few workers pull offsets from one shared iterator (one event loop, so no lock)
        # rather than one task per page up front: 2,000 pending tasks at 200k items was the
        # other part of a refresh's memory that grew with the account.
        offsets = iter(range(size, total, size))

        async def worker() -> None:
            for offset in offsets:
                await self._fetch_range(query, offset, size, consume)

        workers = min(max(1, self._config.max_concurrent_requests), -(-(total - size) // size))
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            for next_done in asyncio.as_completed(tasks):
                await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    # -- paging internals -----------------------------------------------------------

    def _remember_size(self, query: _Query, size: int) -> None:
        if size < self._page_sizes.get(query.key, self._config.page_size):
            self._page_sizes[query.key] = size

    async def _walk_sequentially(
        self, query: _Query, page: list[Any], size: int, consume: Callable[[list[Any]], object]
    ) -> None:
        # Without SoftLayer-Total-Items the only safe end is a short page. softlayer-python
        # stops after the first page here and silently under-reports; we keep going.
        offset = len(page)
        pages = 1
        while len(page) == size:
            if pages >= _MAX_SEQUENTIAL_PAGES:
                raise SoftLayerError(ErrorReason.DECODE, "paging did not end", method=query.key)
            result = await self._request(query, (offset, size))
            page = _as_list(result.body)
            consume(page)
            offset += len(page)
            pages += 1

    async def _fetch_range(
        self,
        query: _Query,
        offset: int,
        limit: int,
        consume: Callable[[list[Any]], object],
        *,
        halved: bool = False,
    ) -> None:
        splittable = limit > self._min_page_size
        try:
            result = await self._request(query, (offset, limit), split_on_internal=splittable)
        except SoftLayerError as err:
            if not (err.internal_error and splittable):
                raise
            half = max(self._min_page_size, limit // 2)
            await self._fetch_range(query, offset, half, consume, halved=True)
            await self._fetch_range(query, offset + half, limit - half, consume, halved=True)
            return
        if halved:
            # Only a size that worked is remembered: a passing outage must not shrink pages.
            self._remember_size(query, limit)
        consume(_as_list(result.body))

    # -- one request, with retries --------------------------------------------------

    async def _request(
        self,
        query: _Query,
        result_limit: tuple[int, int] | None,
        *,
        split_on_internal: bool = False,
    ) -> Page:
        url = f"{self._endpoint}/{query.service}/{query.method}.json"
        params: dict[str, str] = {}
        if query.mask is not None:
            params["objectMask"] = query.mask
        if query.object_filter is not None:
            params["objectFilter"] = json.dumps(query.object_filter, separators=(",", ":"))
        if result_limit is not None:
            params["resultLimit"] = f"{result_limit[0]},{result_limit[1]}"
        attempts = max(1, self._config.retry.attempts)
        failures = 0
        token_renewed = False
        while True:
            try:
                return await self._attempt(url, params, query)
            except SoftLayerError as err:
                self._stats.record_error(self.account.name, err.reason)
                if (
                    err.token_expired
                    and self.account.auth.method is AuthMethod.IAM
                    and not token_renewed
                ):
                    # An expired token gets one fresh exchange and one more try.
                    token_renewed = True
                    self._token = None
                    continue
                if split_on_internal and err.internal_error:
                    raise  # the pager answers this with smaller pages, not the same one again
                failures += 1
                if not err.retryable or failures >= attempts:
                    raise
                await asyncio.sleep(self._backoff(failures))

    def _backoff(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2^(failures-1))]."""
        retry = self._config.retry
        ceiling = min(
            retry.max_backoff_seconds, retry.initial_backoff_seconds * 2 ** (failures - 1)
        )
        return self._rng.uniform(0.0, max(0.0, ceiling))

    async def _attempt(self, url: str, params: dict[str, str], query: _Query) -> Page:
        label = query.key
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        credentials = self.account.auth
        if credentials.method is AuthMethod.IAM:
            headers["Authorization"] = f"Bearer {await self._bearer_token()}"
        elif credentials.method is AuthMethod.APIKEY:
            headers["Authorization"] = _basic("apikey", credentials.api_key.reveal())
        else:
            headers["Authorization"] = _basic(
                credentials.username or "", credentials.api_key.reveal()
            )
        async with self._slots:
            await self._limiter.acquire()
            self.api_requests += 1
            started = time.monotonic()
            code = "none"
            try:
                async with self._session.get(
                    url, params=params, headers=headers, timeout=self._timeout
                ) as response:
                    code = str(response.status)
                    raw = await response.read()
                    total_header = response.headers.get("SoftLayer-Total-Items")
                    status = response.status
            except TimeoutError:
                raise SoftLayerError(
                    ErrorReason.TIMEOUT,
                    f"no response within {self._config.request_timeout_seconds:g}s",
                    method=label,
                ) from None
            except aiohttp.ClientError as exc:
                raise SoftLayerError(
                    ErrorReason.NETWORK, self._network_message(exc), method=label
                ) from None
            finally:
                self._stats.record_request(
                    self.account.name, query.method, code, time.monotonic() - started
                )
        body = self._interpret(status, raw, label)
        total: int | None = None
        if total_header is not None:
            try:
                total = int(total_header)
            except ValueError:
                raise SoftLayerError(
                    ErrorReason.DECODE, "unreadable SoftLayer-Total-Items header", method=label
                ) from None
        return Page(body=body, total_items=total)

    # -- responses and errors -------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """Cut to a bounded length and remove any credential an echoing server sent back."""
        for secret in (*self._secrets, self._token or ""):
            if secret:
                text = text.replace(secret, "***")
        return text[:_MAX_MESSAGE_CHARS]

    def _network_message(self, exc: aiohttp.ClientError) -> str:
        # aiohttp messages carry host and port at most, never headers; scrub anyway.
        detail = self._scrub(str(exc))
        return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _interpret(self, status: int, raw: bytes, label: str) -> Any:
        """Return the decoded body of a successful response, else raise the matching error."""
        body: Any = None
        decoded = False
        if raw.strip():
            try:
                body = _decode_json(raw)
                decoded = True
            except (ValueError, RecursionError):
                decoded = False
        if 200 <= status < 300:
            if not raw.strip():
                raise SoftLayerError(
                    ErrorReason.DECODE, f"HTTP {status} with an empty body", method=label
                )
            if not decoded:
                raise SoftLayerError(
                    ErrorReason.DECODE, f"HTTP {status} with a body that is not JSON", method=label
                )
            error = _error_fields(body)
            if error is None:
                return body
            # SoftLayer sometimes reports failures with HTTP 200 (softlayer-go#164).
            raise self._api_error(status, *error, label=label)
        error = _error_fields(body) if decoded else None
        if error is None:
            raise self._api_error(status, None, "", label=label)
        raise self._api_error(status, *error, label=label)

    def _api_error(
        self, status: int, code: str | None, message: str, *, label: str
    ) -> SoftLayerError:
        reason = _classify(status, code)
        parts = [f"HTTP {status}"]
        if code:
            parts.append(code)
        text = " ".join(parts)
        if message:
            text = f"{text}: {self._scrub(message)}"
        return SoftLayerError(reason, text, method=label, status=status, code=code)

    # -- IAM ------------------------------------------------------------------------

    async def _bearer_token(self) -> str:
        async with self._token_lock:
            if self._token is None or self._clock() >= self._token_refresh_at:
                self._token = None
                self._token, lifetime = await self._exchange_token()
                self._token_refresh_at = self._clock() + lifetime * _TOKEN_REFRESH_FRACTION
            return self._token

    async def _exchange_token(self) -> tuple[str, float]:
        """Exchange the IBM Cloud API key for a bearer token; returns it and its lifetime."""
        label = IAM_METHOD
        form = {"grant_type": _IAM_GRANT, "apikey": self.account.auth.api_key.reveal()}
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        started = time.monotonic()
        code = "none"
        try:
            async with self._session.post(
                self.account.auth.iam_token_url, data=form, headers=headers, timeout=self._timeout
            ) as response:
                code = str(response.status)
                raw = await response.read()
                status = response.status
        except TimeoutError:
            error = SoftLayerError(
                ErrorReason.TIMEOUT, "IAM token exchange timed out", method=label
            )
            raise error from None
        except aiohttp.ClientError as exc:
            raise SoftLayerError(
                ErrorReason.NETWORK, self._network_message(exc), method=label
            ) from None
        finally:
            self._stats.record_request(self.account.name, label, code, time.monotonic() - started)
        try:
            body = _decode_json(raw) if raw.strip() else None
        except (ValueError, RecursionError):
            body = None
        if not 200 <= status < 300:
            message = ""
            if isinstance(body, dict):
                message = str(body.get("errorMessage") or body.get("errorCode") or "")
            reason = ErrorReason.AUTH if status in (400, 401, 403) else _classify(status, None)
            text = f"IAM HTTP {status}" + (f": {self._scrub(message)}" if message else "")
            raise SoftLayerError(reason, text, method=label, status=status)
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise SoftLayerError(
                ErrorReason.DECODE, "IAM response without access_token", method=label
            )
        lifetime = _token_lifetime(body) if isinstance(body, dict) else None
        if lifetime is None:
            raise SoftLayerError(ErrorReason.DECODE, "IAM response without expiry", method=label)
        return token, lifetime


_USER_AGENT: Final = f"softlayer-billing-exporter/{__version__}"


def _basic(username: str, password: str) -> str:
    """Build an HTTP Basic ``Authorization`` value (aiohttp deprecates its BasicAuth)."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _error_fields(body: Any) -> tuple[str | None, str] | None:
    """``(code, message)`` if ``body`` is a SoftLayer error object, else ``None``."""
    if not isinstance(body, dict) or not isinstance(body.get("error"), str):
        return None
    if not set(body) <= {"error", "code"}:
        return None  # a real object that merely has an "error" property
    code = body.get("code")
    return (code if isinstance(code, str) else None), body["error"]


def _classify(status: int, code: str | None) -> ErrorReason:
    """Map an HTTP status and SoftLayer exception code to an error reason.

    SoftLayer's ``code`` decides first: it sends mask, parse, validation, permission, rate
    limit and expired-token errors all with HTTP 500 (``softlayer-api.md`` section 2.2), so
    the status alone would call every one of them a retryable server error.
    """
    by_code = next(
        (reason for prefix, reason in _CODE_REASONS if code and code.startswith(prefix)), None
    )
    if code == _RATE_LIMIT_CODE or status == 429:
        reason = ErrorReason.RATE_LIMITED
    elif code == _EXPIRED_BEARER_CODE or status == 401:
        reason = ErrorReason.AUTH
    elif by_code is not None:
        reason = by_code
    elif status == 403:
        reason = ErrorReason.PERMISSION
    elif status in (408, 504):
        reason = ErrorReason.TIMEOUT
    elif status >= 500 or 200 <= status < 300:
        reason = ErrorReason.SERVER  # includes the Internal Error sent with HTTP 200
    else:
        reason = ErrorReason.CLIENT
    return reason


def _token_lifetime(body: Mapping[str, Any]) -> float | None:
    """Seconds the token is valid, from ``expires_in`` or else the ``expiration`` epoch."""
    expires_in = body.get("expires_in")
    if (
        isinstance(expires_in, (int, Decimal))
        and not isinstance(expires_in, bool)
        and expires_in > 0
    ):
        return float(expires_in)
    expiration = body.get("expiration")
    if isinstance(expiration, (int, Decimal)) and not isinstance(expiration, bool):
        remaining = float(expiration) - time.time()
        if remaining > 0:
            return remaining
    return None
