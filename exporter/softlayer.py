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
  ``Internal Error`` (large accounts do) is split in halves and the smaller size remembered
  (the walk and its proof of completeness: :mod:`exporter.paging`);
- IAM bearer tokens are exchanged from the API key, re-exchanged before they expire and once
  more when the API reports them expired, and the call is then retried once.

Failures raise :class:`SoftLayerError` (:mod:`exporter.errors`) with a :class:`ErrorReason`.
Retries (exponential backoff, full jitter) happen only for reasons a retry can cure. No
message ever contains an API key or token.
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
from typing import Any, Final, TypeVar

import aiohttp

from exporter import __version__
from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthMethod, Config
from exporter.errors import EXPIRED_BEARER_CODE, RETRYABLE_REASONS, ErrorReason, SoftLayerError
from exporter.fieldlog import ClientLog, auth_hint
from exporter.netdiag import describe, proxy_for
from exporter.paging import Listing, Page, PageSizes, Query, Walk, as_list, row_ids
from exporter.ratelimit import AdaptiveRate, RateLimiter

_T = TypeVar("_T")

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
_IAM_GRANT: Final = "urn:ibm:params:oauth:grant-type:apikey"
#: Re-exchange an IAM token once this fraction of its lifetime has passed.
_TOKEN_REFRESH_FRACTION: Final = 0.9
_MAX_MESSAGE_CHARS: Final = 200
#: SoftLayer's rate-limit window: a request rejected for the rate is retried after it at least.
_RATE_LIMIT_WINDOW_SECONDS: Final = 1.0
#: Walks of one list by :meth:`SoftLayerClient.walk_list`: one more when the first cannot
#: prove it saw every row.
_WALKS_PER_LIST: Final = 2
#: Backoff doublings past which max_backoff has long been reached (2**62 x 1 ms > 100 years).
_MAX_DOUBLINGS: Final = 62


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
        self._endpoint = account.endpoint.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=config.request_timeout_seconds)
        self._limiter = RateLimiter(config.max_requests_per_second)
        #: The rate this account is allowed now, adapted below ``max_requests_per_second``.
        self.rate = AdaptiveRate(self._limiter, config.max_requests_per_second)
        self._slots = asyncio.Semaphore(config.max_concurrent_requests)
        self._sizes = PageSizes(config.page_size)  # per method: halved, grown back, capped
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
        return self._sizes.page_size(f"{service}::{method}")

    def page_cap(self, service: str, method: str) -> int | None:
        """Return the most rows the server was seen to serve per page of a method, if capped."""
        return self._sizes.cap(f"{service}::{method}")

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
        return await self._request(Query(service, method, mask, object_filter), result_limit)

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
        query = Query(service, method, mask, object_filter, init_id)
        walk = Walk(
            self._sizes,
            self._page,
            query,
            consume,
            concurrency=self._config.max_concurrent_requests,
        )
        try:
            await walk.run()
        except SoftLayerError as err:
            if err.reason is ErrorReason.INCOMPLETE:
                self._stats.record_error(self.account.name, ErrorReason.INCOMPLETE)
            raise
        self._sizes.walk_done(query.key, walk.size_errors)
        last_ids = [s.last for s in walk.segments if s.last is not None]
        return Listing(rows=walk.distinct, last_id=max(last_ids, default=None))

    async def walk_list(
        self,
        service: str,
        method: str,
        fresh: Callable[[], tuple[Callable[[list[Any]], object], Callable[[], _T]]],
        *,
        mask: str | None = None,
        object_filter: Mapping[str, Any] | None = None,
        init_id: int | None = None,
        on_second_walk: Callable[[], None] | None = None,
    ) -> tuple[_T, Listing]:
        """Walk a list with :meth:`fetch_pages`; a walk not proven complete is walked once more.

        ``fresh()`` returns a new ``(consume, result)`` pair for each walk, so nothing of the
        first walk can mix into the second; ``on_second_walk`` is called before it. If the
        second walk cannot prove completeness either, the error (reason ``incomplete``)
        propagates: the caller's source keeps its last good figures, a partial sum is never
        served. Returns ``result()`` of the complete walk and its :class:`Listing`.
        """
        for attempt in range(_WALKS_PER_LIST):
            consume, result = fresh()
            try:
                listing = await self.fetch_pages(
                    service,
                    method,
                    consume=consume,
                    mask=mask,
                    object_filter=object_filter,
                    init_id=init_id,
                )
            except SoftLayerError as exc:
                if exc.reason is ErrorReason.INCOMPLETE and attempt + 1 < _WALKS_PER_LIST:
                    if on_second_walk is not None:
                        on_second_walk()
                    continue
                raise
            return result(), listing
        raise AssertionError("unreachable: the last walk returns or raises")  # pragma: no cover

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
        return Tail(tuple(row_ids(as_list(page.body), key)), page.total_items)

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
        rows = as_list(page.body)
        if page.total_items is not None:
            return rows if page.total_items == len(rows) else None
        cap = self._sizes.cap(f"{service}::{method}") or limit
        return rows if len(rows) < min(limit, cap) else None

    async def _page(self, query: Query, window: tuple[int, int], splittable: bool) -> Page:
        """One page of a walk (:data:`exporter.paging.RequestPage`)."""
        return await self._request(query, window, split_on_size=splittable)

    # -- one request, with retries --------------------------------------------------

    async def _request(
        self,
        query: Query,
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
        self, url: str, params: dict[str, str], query: Query, *, attempt: int = 1
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
    elif code == EXPIRED_BEARER_CODE or status == 401:
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
