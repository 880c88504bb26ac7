"""Async SoftLayer REST client: authentication, paging, rate limiting, retries, typed errors.

One :class:`SoftLayerClient` serves one configured account over a shared
:class:`aiohttp.ClientSession`. It knows the API's quirks (error bodies in ``tests/samples/``):

- errors arrive as ``{"error": ..., "code": ...}`` with HTTP 500 (rate limit: softlayer-python
  #884, softlayer-go #75; expired IAM token: softlayer-go ``session.go`` ``NeedsRefresh``;
  backend failure), 401, 404, and sometimes with HTTP **200** (softlayer-go #164); every body
  is checked;
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
import itertools
import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

import aiohttp

from exporter import __version__
from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthMethod, Config
from exporter.errors import RETRYABLE_REASONS, ErrorReason
from exporter.fieldlog import ClientLog, auth_hint
from exporter.netdiag import describe, proxy_for
from exporter.ratelimit import AdaptiveRate, RateLimiter

__all__ = [
    "IAM_METHOD",
    "RETRYABLE_REASONS",
    "ErrorReason",
    "Listing",
    "Page",
    "SoftLayerClient",
    "SoftLayerError",
    "Tail",
]


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
#: Pages one walk may take: bounds a server that ignores the offset or whose total lies.
_MAX_PAGES: Final = 10_000
#: Clean walks after which a page size halved by a too-big-page error doubles again.
_GROW_AFTER_CLEAN_WALKS: Final = 5
_MAX_MESSAGE_CHARS: Final = 200
#: Halve a page at most this many times (100 -> 12): a method that fails even then is down,
#: and shrinking further would multiply the calls of every later cycle.
_MAX_HALVINGS: Final = 3
#: SoftLayer's rate-limit window: a request rejected for the rate is retried after it at least.
_RATE_LIMIT_WINDOW_SECONDS: Final = 1.0
#: Backoff doublings past which max_backoff has long been reached (2**62 x 1 ms > 100 years).
_MAX_DOUBLINGS: Final = 62


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
        hint: str | None = None,
    ) -> None:
        super().__init__(f"{method}: {message}")
        self.reason = reason
        self.method = method
        self.detail = message  # what went wrong, without where
        self.status = status
        self.code = code
        self.hint = hint  # what an operator should check, for the field log

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

    @property
    def page_too_big(self) -> bool:
        """True for answers that a smaller page may avoid: ``Internal Error`` or a timeout.

        "usually the `Internal Error` messages from the API are because you are trying to
        retrieve a lot of data with only one request" (softlayer-python#1124); SLDN's samples
        page by 100 "to avoid limitSize or timeout errors".
        """
        return self.internal_error or self.reason is ErrorReason.TIMEOUT


@dataclass(frozen=True, slots=True)
class _Query:
    """What to ask for, minus the page: service, method, mask and filter."""

    service: str
    method: str
    mask: str | None
    object_filter: Mapping[str, Any] | None
    init_id: int | None = None  # the object a method runs on (an invoice's id), if any

    @property
    def path(self) -> str:
        """``Service[/id]/method``, as the REST URL names it."""
        on = "" if self.init_id is None else f"/{self.init_id}"
        return f"{self.service}{on}/{self.method}"

    @property
    def key(self) -> str:
        """``Service::method``, as SoftLayer names methods in its docs and errors."""
        return f"{self.service}::{self.method}"


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded response: the body and ``SoftLayer-Total-Items`` if sent."""

    body: Any
    total_items: int | None


@dataclass(frozen=True, slots=True)
class Listing:
    """What a complete walk saw: how many distinct rows, and the highest id among them."""

    rows: int
    last_id: int | None


@dataclass(frozen=True, slots=True)
class Tail:
    """The end of an id-ordered list: the ids of its last rows and its announced length."""

    ids: tuple[int, ...]
    total: int | None


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
    (``max_concurrent_requests``) and the request rate are per account; the rate adapts
    below ``max_requests_per_second`` (:class:`~exporter.ratelimit.AdaptiveRate`, halved
    on each ``RateLimitExceeded``).
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
        #: The rate this account is allowed now, adapted below ``max_requests_per_second``.
        self.rate = AdaptiveRate(self._limiter, config.max_requests_per_second)
        self._slots = asyncio.Semaphore(config.max_concurrent_requests)
        self._page_sizes: dict[str, int] = {}  # Service::method -> page size, if halved
        self._clean_walks: dict[str, int] = {}  # walks without a too-big page since halving
        self._caps: dict[str, int] = {}  # Service::method -> rows the server serves at most
        self._token: str | None = None
        self._token_refresh_at = 0.0
        self._token_lock = asyncio.Lock()
        self._secrets = tuple(
            s for s in (account.auth.api_key.reveal(),) if s
        )  # scrubbed from every message we build
        #: SoftLayer API requests (HTTP attempts, IAM excluded) made so far.
        self.api_requests = 0
        self._field_log = ClientLog(account)
        # HTTPS_PROXY / HTTP_PROXY / NO_PROXY, resolved once (the environment does not change).
        self._api_proxy = proxy_for(self._endpoint)
        self._iam_proxy = proxy_for(account.auth.iam_token_url)

    # -- public API -----------------------------------------------------------------

    def page_size(self, service: str, method: str) -> int:
        """Return the page size of a method: configured, or halved after too-big pages."""
        return self._page_sizes.get(f"{service}::{method}", self._config.page_size)

    def page_cap(self, service: str, method: str) -> int | None:
        """Return the most rows the server was seen to serve per page of a method, if capped."""
        return self._caps.get(f"{service}::{method}")

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
        init_id: int | None = None,
    ) -> Listing:
        """Fetch every page of a list method, hand each to ``consume``, prove nothing is lost.

        ``init_id`` names the object the method runs on, as in
        ``SoftLayer_Billing_Invoice/<id>/getInvoiceTopLevelItems``.

        ``object_filter`` must order by ``id`` ascending (SoftLayer's default order is the
        database's, ``softlayer-api.md`` section 1.6); the rows must carry ``id``. Pages reach
        ``consume`` in completion order and overlap (each re-reads the last rows of the one
        before), so ``consume`` must be order-independent and deduplicate by id; if it returns
        an int, that is the number of rows it had not seen, used for the count check below.

        The walk is *proven complete* (see docs/reliability.md, "Paging") when, at the time
        each page was read: page after page overlaps by id (a row removed before a page's
        offset shifts it, the overlap absorbs that, and a gap shows as a page starting past
        the previous page's last id), the last page ends at its own ``SoftLayer-Total-Items``
        (without the header: a page brings no id past the last one seen), and, when every
        page reported the same total, the distinct ids equal it. Anything else raises
        :class:`SoftLayerError` with reason ``incomplete``: the caller retries the list once,
        then reports the source down instead of serving a partial sum. If ``consume`` or a
        page fails, the other pages are cancelled and the error propagates.

        Returns the rows ``consume`` counted as new and the highest id seen: together they
        identify the list as walked (see :meth:`tail`).
        """
        query = _Query(service, method, mask, object_filter, init_id)
        walk = _Walk(self, query, consume)
        try:
            await walk.run()
        except SoftLayerError as err:
            if err.reason is ErrorReason.INCOMPLETE:
                self._stats.record_error(self.account.name, ErrorReason.INCOMPLETE)
            raise
        self._walk_done(query, walk.size_errors)
        last_ids = [s.last for s in walk.segments if s.last is not None]
        return Listing(rows=walk.distinct, last_id=max(last_ids, default=None))

    async def tail(
        self, service: str, method: str, *, object_filter: Mapping[str, Any], rows: int
    ) -> Tail:
        """Read the end of an id-ordered list believed to hold ``rows`` rows: one request.

        Asks for the ids at offsets ``rows - 1`` and ``rows`` (``object_filter`` must order by
        ``id`` ascending, as for :meth:`fetch_pages`). New rows get higher ids than any
        existing one (softlayer-api.md section 8.6), so a list that still holds exactly the
        rows a walk saw answers with that walk's :attr:`Listing.last_id` alone: a row added
        shows as a second id or a different last id, a row removed as a missing one, and the
        total (if sent) must still be ``rows``.
        """
        limit = (max(0, rows - 1), 2) if rows else (0, 1)
        page = await self.call(
            service, method, mask="mask[id]", object_filter=object_filter, result_limit=limit
        )
        key = f"{service}::{method}"
        return Tail(tuple(_row_ids(_as_list(page.body), key)), page.total_items)

    async def fetch_page(
        self,
        service: str,
        method: str,
        *,
        mask: str,
        object_filter: Mapping[str, Any],
        limit: int,
    ) -> list[Any] | None:
        """Fetch a list expected to be short in one request; None if it may be longer.

        The answer is the whole list when ``SoftLayer-Total-Items`` equals its rows, or,
        without the header, when it holds fewer rows than asked and than any page cap seen
        for the method. Otherwise (more rows than one page) the caller walks instead.
        """
        page = await self.call(
            service, method, mask=mask, object_filter=object_filter, result_limit=(0, limit)
        )
        rows = _as_list(page.body)
        if page.total_items is not None:
            return rows if page.total_items == len(rows) else None
        cap = self._caps.get(f"{service}::{method}", limit)
        return rows if len(rows) < min(limit, cap) else None

    # -- paging internals -----------------------------------------------------------

    def _wire_limit(self, key: str) -> tuple[int, int]:
        """``(resultLimit, overlap)`` of the next walk of a method (size and learned cap)."""
        step = self._page_sizes.get(key, self._config.page_size)
        overlap = _overlap(step)
        limit = step + overlap
        cap = self._caps.get(key)
        if cap is not None and cap < limit:
            limit = cap
            overlap = min(overlap, max(0, cap - 1))
        return limit, overlap

    def _can_shrink(self, key: str) -> bool:
        return self._page_sizes.get(key, self._config.page_size) > self._min_page_size

    def _shrink(self, key: str) -> int:
        """Halve a method's page after a too-big-page error; returns the new wire limit."""
        step = self._page_sizes.get(key, self._config.page_size)
        self._page_sizes[key] = max(self._min_page_size, step // 2)
        self._clean_walks[key] = 0
        return self._wire_limit(key)[0]

    def _walk_done(self, query: _Query, size_errors: int) -> None:
        """Grow a shrunken page size back after enough clean walks (the outage passed)."""
        key = query.key
        if size_errors:
            self._clean_walks[key] = 0
            return
        step = self._page_sizes.get(key)
        if step is None or step >= self._config.page_size:
            return
        self._clean_walks[key] = self._clean_walks.get(key, 0) + 1
        if self._clean_walks[key] >= _GROW_AFTER_CLEAN_WALKS:
            self._clean_walks[key] = 0
            grown = min(self._config.page_size, step * 2)
            if grown >= self._config.page_size:
                del self._page_sizes[key]
            else:
                self._page_sizes[key] = grown

    def _learn_cap(self, key: str, rows: int) -> None:
        """Remember that the server answers at most ``rows`` rows per page of a method."""
        if rows > 0:
            self._caps[key] = min(rows, self._caps.get(key, rows))

    # -- one request, with retries --------------------------------------------------

    async def _request(
        self,
        query: _Query,
        result_limit: tuple[int, int] | None,
        *,
        split_on_size: bool = False,
    ) -> Page:
        url = f"{self._endpoint}/{query.path}.json"
        params: dict[str, str] = {}
        if query.mask is not None:
            params["objectMask"] = query.mask
        if query.object_filter is not None:
            params["objectFilter"] = json.dumps(query.object_filter, separators=(",", ":"))
        if result_limit is not None:
            params["resultLimit"] = f"{result_limit[0]},{result_limit[1]}"
        attempts = self._config.retry.attempts
        failures = 0
        token_renewed = False
        tries = 0
        while True:
            tries += 1
            try:
                page = await self._attempt(url, params, query, attempt=tries)
                self._field_log.succeeded()
                return page
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
                if split_on_size and err.page_too_big:
                    raise  # the pager answers this with smaller pages, not the same one again
                failures += 1
                if not err.retryable or failures >= attempts:
                    self._report(err)
                    raise
                delay = self._backoff(failures)
                if err.reason is ErrorReason.RATE_LIMITED:
                    # The limit counts requests per second ("Rate limit of 50 requests for
                    # every 1 second(s)", softlayer-api.md section 2.2): a retry within the
                    # same second is rejected again. By then the adaptive rate has halved.
                    delay = max(delay, _RATE_LIMIT_WINDOW_SECONDS)
                self._field_log.retry(query.key, err.reason, str(err), tries, delay)
                await asyncio.sleep(delay)

    def _report(self, err: SoftLayerError) -> None:
        """Tell the operator, once per failure streak, what failed for good and what to check."""
        hint = err.hint
        if hint is None and err.reason is ErrorReason.AUTH:
            hint = auth_hint(self.account.auth, iam_exchange=err.method == IAM_METHOD)
        self._field_log.failed(err.reason, str(err), hint)

    def _backoff(self, failures: int) -> float:
        """Full jitter: uniform in [0, min(max, initial * 2^(failures-1))]."""
        retry = self._config.retry
        # A config built in code may allow any number of attempts; 2**1100 is no float.
        doubling = 2.0 ** min(failures - 1, _MAX_DOUBLINGS)
        ceiling = min(retry.max_backoff_seconds, retry.initial_backoff_seconds * doubling)
        return self._rng.uniform(0.0, ceiling)

    async def _attempt(
        self, url: str, params: dict[str, str], query: _Query, *, attempt: int = 1
    ) -> Page:
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
                    url,
                    params=params,
                    headers=headers,
                    timeout=self._timeout,
                    middlewares=(_Resends(self),),
                    **self._api_proxy,
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
                raise self._network_error(exc, label) from None
            finally:
                elapsed = time.monotonic() - started
                self._stats.record_request(self.account.name, query.method, code, elapsed)
                self._field_log.request(
                    query.service,
                    query.method,
                    params.get("resultLimit"),
                    status=int(code) if code.isdigit() else None,
                    seconds=elapsed,
                    attempt=attempt,
                )
        try:
            body = self._interpret(status, raw, label)
        except SoftLayerError as err:
            if err.reason is ErrorReason.RATE_LIMITED:
                self.rate.rejected()
            else:
                self.rate.accepted()  # answered, not rejected for the rate
            raise
        self.rate.accepted()
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

    def _network_error(self, exc: aiohttp.ClientError, label: str) -> SoftLayerError:
        # aiohttp messages carry host and port at most, never headers; scrub anyway.
        problem = describe(exc)
        return SoftLayerError(
            ErrorReason.NETWORK, self._scrub(problem.message), method=label, hint=problem.hint
        )

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
                self.account.auth.iam_token_url,
                data=form,
                headers=headers,
                timeout=self._timeout,
                **self._iam_proxy,
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
            raise self._network_error(exc, label) from None
        finally:
            elapsed = time.monotonic() - started
            self._stats.record_request(self.account.name, label, code, elapsed)
            self._field_log.token_exchange(int(code) if code.isdigit() else None, elapsed)
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


class _Resends:
    """aiohttp client middleware of one request attempt: a resend waits for the rate limiter.

    aiohttp sends an idempotent request once more when the send fails with the connection
    closed or reset (RFC 9112 section 9.3.1): the usual cause is a kept-alive connection
    the server or a proxy closed meanwhile, and the resend on a fresh connection is the cure
    (behind tinyproxy, every request that reused such a connection failed without it).
    ``ClientSession`` has no public switch for it anyway. Middlewares are aiohttp's public
    hook around each send: this one makes the resend wait for the account's rate limiter
    and counts it in :attr:`SoftLayerClient.api_requests`, so the budget and each poll's
    request count stay true. ``softlayer_api_requests_total`` counts the attempt once, with
    its final status.
    """

    __slots__ = ("_client", "_sends")

    def __init__(self, client: SoftLayerClient) -> None:
        self._client = client
        self._sends = 0

    async def __call__(
        self, request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
    ) -> aiohttp.ClientResponse:
        self._sends += 1
        if self._sends > 1:
            await self._client._limiter.acquire()
            self._client.api_requests += 1
        return await handler(request)


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


# -- paging that proves completeness ----------------------------------------------------------


def _overlap(step: int) -> int:
    """Return how many rows each page re-reads from the one before (5 at the default 100).

    A page then still meets the one before after up to that many - 1 rows before it were
    removed while the list was walked.
    """
    return max(2, step // 20)


def _pages_for(total: int, limit: int, step: int) -> int:
    """Pages of ``limit`` rows, ``step`` apart, that cover ``total`` rows (at least one)."""
    if total <= limit:
        return 1
    return 1 + -(-(total - limit) // step)


def _row_ids(rows: list[Any], method: str) -> list[int]:
    """Return the ``id`` of every row of a page (JSON integers, as SoftLayer sends them)."""
    ids = []
    for row in rows:
        row_id = row.get("id") if isinstance(row, dict) else None
        if isinstance(row_id, str) and row_id.isdigit():
            row_id = int(row_id)  # some samples carry ids as strings; the parser accepts them
        if isinstance(row_id, Decimal) and row_id == row_id.to_integral_value():
            row_id = int(row_id)
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise SoftLayerError(
                ErrorReason.DECODE, "a list row without an integer id", method=method
            )
        ids.append(row_id)
    return ids


@dataclass(slots=True)
class _Segment:
    """What one page answer covered: where it started, what it asked and got, which ids."""

    offset: int
    limit: int
    count: int
    first: int | None  # smallest id (rows ascend by id)
    last: int | None  # largest id
    total: int | None  # its SoftLayer-Total-Items

    @property
    def proves_end(self) -> bool:
        """Whether this page reached the end of the list as SoftLayer counted it then."""
        return self.total is not None and self.offset + self.count >= self.total


class _Walk:
    """One walk over a paged list; see :meth:`SoftLayerClient.fetch_pages`."""

    def __init__(
        self, client: SoftLayerClient, query: _Query, consume: Callable[[list[Any]], object]
    ) -> None:
        self.client = client
        self.query = query
        self.key = query.key
        self.consume = consume
        self.segments: list[_Segment] = []
        self.distinct = 0  # rows consume() had not seen, summed over the pages
        self.counting = True  # consume() reports new rows
        self.size_errors = 0

    def incomplete(self, why: str) -> SoftLayerError:
        """Build the error that fails this walk (the caller retries the list once)."""
        return SoftLayerError(
            ErrorReason.INCOMPLETE, f"list not proven complete: {why}", method=self.key
        )

    async def run(self) -> None:
        """Walk the list: concurrently after a first page with a total, else one by one."""
        limit, _ = self.client._wire_limit(self.key)
        first, limit = await self.first_page(limit)
        limit, overlap = self.client._wire_limit(self.key)  # the first page's, maybe halved
        if first.total is not None and first.count < limit and not first.proves_end:
            if first.count == 0:
                raise self.incomplete(
                    f"an empty first page, but SoftLayer-Total-Items says {first.total}"
                )
            # The server answers fewer rows than asked: step through at its size, now and
            # in every later poll (the requested limit is not what it serves).
            self.client._learn_cap(self.key, first.count)
            limit, overlap = self.client._wire_limit(self.key)
        if limit - overlap < 1 or (first.count and overlap < 1):
            raise self.incomplete(f"pages of {limit} rows cannot overlap")
        if first.total is None:
            await self.sequential(first, limit, overlap)
        else:
            await self.concurrent(first, limit, limit - overlap)
            self.verify()

    async def fetch(self, offset: int, limit: int, *, splittable: bool) -> _Segment:
        """One page: request, id order check, consume, record its segment."""
        page = await self.client._request(self.query, (offset, limit), split_on_size=splittable)
        rows = _as_list(page.body)
        ids = _row_ids(rows, self.key)
        if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
            raise self.incomplete("a page not in ascending id order")
        new = self.consume(rows)
        if isinstance(new, int) and not isinstance(new, bool):
            self.distinct += new
        else:
            self.counting = False
        segment = _Segment(
            offset, limit, len(rows), ids[0] if ids else None, ids[-1] if ids else None,
            page.total_items,
        )  # fmt: skip
        self.segments.append(segment)
        return segment

    async def first_page(self, limit: int) -> tuple[_Segment, int]:
        """Page one, halving the page while SoftLayer says it is too big (and it can)."""
        while True:
            splittable = self.client._can_shrink(self.key)
            try:
                return await self.fetch(0, limit, splittable=splittable), limit
            except SoftLayerError as err:
                if not (splittable and err.page_too_big):
                    raise
                self.size_errors += 1
                limit = self.client._shrink(self.key)

    async def page(self, offset: int, limit: int) -> list[_Segment]:
        """Fetch a later page; too big, it comes as two overlapping halves (recursively)."""
        splittable = self.client._can_shrink(self.key) and limit >= 4
        try:
            segment = await self.fetch(offset, limit, splittable=splittable)
        except SoftLayerError as err:
            if not (splittable and err.page_too_big):
                raise
            self.size_errors += 1
            half = limit // 2
            if self.client.page_size(*self.key.split("::")) > half:
                self.client._shrink(self.key)  # once per size, not once per page in flight
            overlap = min(_overlap(half), half - 1)
            head = await self.page(offset, half + overlap)
            return head + await self.page(offset + half, limit - half)
        self.check(segment)
        return [segment]

    def check(self, segment: _Segment) -> None:
        """Fail on a short page that is not the end: a page cap, or a total that lies."""
        if segment.proves_end or segment.count >= segment.limit:
            return
        if segment.total is None:
            raise self.incomplete(
                f"a short page ({segment.count} of {segment.limit} rows) without "
                "SoftLayer-Total-Items"
            )
        self.client._learn_cap(self.key, segment.count)  # if a cap, page at it next time
        raise self.incomplete(
            f"{segment.count} of {segment.limit} rows at offset {segment.offset} while "
            f"SoftLayer-Total-Items says {segment.total} (a page cap or a wrong total)"
        )

    async def concurrent(self, first: _Segment, limit: int, step: int) -> None:
        """Pages ``step`` apart, fetched by a few workers, until one proves the end."""
        if first.proves_end:
            return
        assert first.total is not None  # noqa: S101  (run() only comes here with a total)
        planned = _pages_for(first.total, limit, step)
        next_index = 1
        end_index: int | None = None

        def take() -> int | None:
            nonlocal next_index
            if next_index >= planned or (end_index is not None and next_index > end_index):
                return None
            if next_index > _MAX_PAGES:
                raise self.incomplete(f"more than {_MAX_PAGES} pages")
            index, next_index = next_index, next_index + 1
            return index

        async def worker() -> None:
            nonlocal planned, end_index
            while (index := take()) is not None:
                segments = await self.page(index * step, limit)
                totals = [s.total for s in segments if s.total is not None]
                if any(s.proves_end for s in segments):
                    end_index = index if end_index is None else min(end_index, index)
                elif index == planned - 1:
                    planned += 1  # longer than announced (it grew): walk on
                if totals:
                    planned = max(planned, _pages_for(max(totals), limit, step))

        workers = min(self.client._config.max_concurrent_requests, planned - 1)
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            for next_done in asyncio.as_completed(tasks):
                await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def verify(self) -> None:
        """Check the pages chain by id up to one that proves the end, and the count adds up."""
        segments = sorted(self.segments, key=lambda s: (s.offset, -s.limit))
        end = next((i for i, s in enumerate(segments) if s.proves_end), None)
        if end is None:
            raise self.incomplete("no page reached the total SoftLayer-Total-Items announced")
        chain = segments[: end + 1]
        if len(chain) > 1 and chain[-1].count == 0 and not chain[-2].proves_end:
            # An empty last page says the list ended before its offset when it was read, but
            # rows after the page before may have moved below that offset meanwhile.
            raise self.incomplete(
                f"an empty page at offset {chain[-1].offset} after a full one (the list "
                "shrank while walked)"
            )
        for before, after in itertools.pairwise(chain):
            if before.count == 0 or before.last is None:
                raise self.incomplete(f"an empty page at offset {before.offset} before the end")
            if after.first is not None and after.first > before.last:
                raise self.incomplete(
                    f"rows may be missing between ids {before.last} and {after.first} (the "
                    "list changed more than the page overlap between two pages)"
                )
        totals = {s.total for s in self.segments}
        if self.counting and len(totals) == 1:
            (total,) = totals
            if total is not None and self.distinct != total:
                raise self.incomplete(
                    f"{self.distinct} distinct rows, but SoftLayer-Total-Items says {total}"
                )

    async def sequential(self, first: _Segment, limit: int, overlap: int) -> None:
        """Without SoftLayer-Total-Items: page on until a short page brings nothing new.

        Each page starts ``overlap`` rows (at least one, fewer than the page before had)
        before the previous page's end, so it must begin with a row already seen. New rows get
        higher ids (softlayer-api.md section 8.6): a page that re-reads seen rows, brings no
        id past the last one and comes back short is the end of the list as it was then. An
        empty page, or one starting past the last id seen, means rows moved: incomplete.
        """
        previous = first
        for _ in range(_MAX_PAGES):
            if previous.count == 0 or previous.last is None:
                return  # only the first page can be empty here: an empty list
            reread = max(1, min(overlap, previous.count - 1))
            segment = await self.fetch(
                previous.offset + previous.count - reread, limit, splittable=False
            )
            if segment.count == 0 or segment.first is None or segment.last is None:
                raise self.incomplete(
                    f"an empty page at offset {segment.offset}, where rows seen before were "
                    "expected (the list shrank while walked)"
                )
            if segment.first > previous.last:
                raise self.incomplete(
                    f"rows may be missing between ids {previous.last} and {segment.first}"
                )
            if segment.last <= previous.last and segment.count < limit:
                return
            previous = segment
        raise self.incomplete(f"more than {_MAX_PAGES} pages without an end")
