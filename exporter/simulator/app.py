"""The SoftLayer REST protocol: routing, parameters, masks, filters, paging, errors, faults.

``GET|POST /rest/v3.1/<Service>[/<id>][/<method>][.json]`` (and ``/rest/v3/``). The method
defaults by verb (GET = getObject). Besides the explicit methods below, any ``get<Property>``
of a known property works the way SoftLayer's relational getters do
(``SoftLayer_Billing_Invoice/<id>/getInvoiceTotalAmount``, ``SoftLayer_Account/getInvoices``).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import itertools
import json
import math
import socket
import struct
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from aiohttp import web

from exporter.simulator.admin import add_admin_routes
from exporter.simulator.auth import APIKEY_GRANT, AuthFailure
from exporter.simulator.faults import FaultKind, FaultRule
from exporter.simulator.filters import compile_filter
from exporter.simulator.masks import MaskError, is_filtered_mask, parse_mask, project, validate
from exporter.simulator.model import (
    ACCOUNT,
    BILLING_ITEM,
    INVOICE,
    MISSING,
    TYPES,
    AccountRef,
    BillingItemRef,
    InvoiceRef,
    TypeDef,
)
from exporter.simulator.scenario import SimAccount
from exporter.simulator.state import SimulatorState

#: Headers the real API sends with every answer (SLDN rest.md capture).
BASE_HEADERS: Final = {
    "Server": "Apache",
    "X-Frame-Options": "SAMEORIGIN",
    "Vary": "Accept-Encoding",
    "Strict-Transport-Security": "max-age=31536000",
}
TOTAL_ITEMS_HEADER: Final = "SoftLayer-Total-Items"

INTERNAL_ERROR: Final = ("Internal Error", "SoftLayer_Exception_Public")
RATE_LIMITED: Final = "SoftLayer_Exception_WebService_RateLimitExceeded"
TOKEN_VALIDATION: Final = "SoftLayer_Exception_Account_Authentication_AccessTokenValidation"  # noqa: S105  a class name
INVALID_TOKEN: Final = ("Invalid API token.", "SoftLayer_Exception_InvalidLegacyToken")
ACCESS_DENIED: Final = ("Access Denied. ", "SoftLayer_Exception_Public")


#: Request defects, each worded as SoftLayer words it (softlayer-python#1088, #345; SLDN).
_DEFECTS: Final = {
    FaultKind.MASK_ERROR: (
        "Property 'powerState' not valid for 'SoftLayer_Hardware_Server'.",
        "SoftLayer_Exception_WebService_ObjectMask",
    ),
    FaultKind.PARSE_ERROR: (
        "Error on line 1 at column 254: Expected PROPERTY, got '''",
        "SoftLayer_Exception_Common_Parser",
    ),
    FaultKind.INVALID_VALUE: (
        "Invalid value provided for 'id'.",
        "SoftLayer_Exception_InvalidValue",
    ),
    FaultKind.PERMISSION_DENIED: (
        "You do not have permission to view account summary.",
        "SoftLayer_Exception_PermissionDenied",
    ),
}


class ApiError(Exception):
    """An answer in SoftLayer's ``{"error", "code"}`` shape."""

    def __init__(self, status: int, message: str, code: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Call:
    """One parsed REST request."""

    service: str
    init_id: int | None
    method: str
    parameters: list[Any]
    mask: str | None
    filter: str | None
    offset: int
    limit: int | None

    @property
    def key(self) -> str:
        """``Service::method`` as counted in stats and matched by faults."""
        return f"{self.service}::{self.method}"


@dataclass(frozen=True, slots=True)
class Result:
    """What a method returned, before masking and encoding."""

    kind: str  # "object" | "list" | "scalar"
    value: Any
    typedef: TypeDef | None = None
    root_property: str | None = None


_DEFAULT_METHODS: Final = {
    "GET": "getObject",
    "POST": "createObject",
    "PUT": "editObject",
    "DELETE": "deleteObject",
}
_SERVICES: Final = {
    "SoftLayer_Account": ACCOUNT,
    "SoftLayer_Billing_Invoice": INVOICE,
    "SoftLayer_Billing_Item": BILLING_ITEM,
}


def _error_body(message: str, code: str) -> bytes:
    return json.dumps({"error": message, "code": code}, separators=(",", ":")).encode()


def _parse_result_limit(raw: str | None) -> tuple[int, int | None]:
    if raw is None or raw.strip() == "":
        return 0, None
    parts = [p.strip() for p in raw.split(",")]
    try:
        numbers = [int(p) for p in parts]
    except ValueError:
        numbers = []
    if len(numbers) == 1 and numbers[0] >= 0:
        return 0, numbers[0]
    if len(numbers) == 2 and numbers[0] >= 0 and numbers[1] >= 0:
        return numbers[0], numbers[1]
    raise ApiError(500, f"Invalid resultLimit '{raw}'", "SoftLayer_Exception_WebService_BadRequest")


async def parse_call(request: web.Request) -> Call:
    """Split the URL and query into a :class:`Call`."""
    tail = request.match_info["tail"]
    for extension in (".json", ".xml", ".txt"):
        if tail.endswith(extension):
            if extension != ".json":
                raise ApiError(
                    400,
                    f"Unsupported format '{extension[1:]}' (the simulator speaks JSON)",
                    "SoftLayer_Exception_WebService_BadRequest",
                )
            tail = tail[: -len(extension)]
            break
    segments = [s for s in tail.split("/") if s]
    if not segments:
        raise ApiError(404, "Service does not exist", "SoftLayer_Exception_Public")
    service = segments.pop(0)
    init_id: int | None = None
    if segments and segments[0].lstrip("-").isdigit():
        init_id = int(segments.pop(0))
    method = segments.pop(0) if segments else _DEFAULT_METHODS.get(request.method, "getObject")
    parameters: list[Any] = list(segments)  # simple parameters may ride in the path
    if request.method in ("POST", "PUT") and request.can_read_body:
        raw = await request.read()
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                raise ApiError(
                    400, "Bad request", "SoftLayer_Exception_WebService_BadRequest"
                ) from None
            if isinstance(body, dict) and isinstance(body.get("parameters"), list):
                parameters = body["parameters"]
    offset, limit = _parse_result_limit(request.query.get("resultLimit"))
    return Call(
        service=service,
        init_id=init_id,
        method=method,
        parameters=parameters,
        mask=request.query.get("objectMask"),
        filter=request.query.get("objectFilter"),
        offset=offset,
        limit=limit,
    )


def _not_found(identifier: int | None) -> ApiError:
    return ApiError(
        404,
        f"Unable to find object with id of '{identifier}'.",
        "SoftLayer_Exception_ObjectNotFound",
    )


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


_PDF: Final = (
    b"%PDF-1.4\n% SoftLayer API simulator invoice\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
)


def dispatch(call: Call, acct: SimAccount, now: int) -> Result:  # noqa: PLR0911, PLR0912  one branch per API method family
    """Run one API method for the authenticated account."""
    typedef = _SERVICES.get(call.service)
    if typedef is None:
        raise ApiError(404, "Service does not exist", "SoftLayer_Exception_Public")
    obj: Any
    if typedef is ACCOUNT:
        if call.init_id is not None and call.init_id != acct.id:
            raise _not_found(call.init_id)
        obj = AccountRef(acct, now)
    elif call.init_id is None:
        raise ApiError(
            404,
            f"Object does not exist to execute method on. ({call.key})",
            "SoftLayer_Exception_ObjectNotFound",
        )
    elif typedef is INVOICE:
        invoice = next((i for i in acct.invoices if i.id == call.init_id), None)
        if invoice is None:
            raise _not_found(call.init_id)
        obj = InvoiceRef(acct, invoice)
    else:
        located = acct.locate_item(call.init_id)
        if located is None:
            raise _not_found(call.init_id)
        obj = BillingItemRef(acct, located[0], located[1])
    method = call.method
    if method == "getObject":
        return Result("object", obj, typedef)
    if typedef is INVOICE and method in ("getPdf", "getPdfDetailed", "getPreliminaryPdf"):
        return Result("scalar", base64.b64encode(_PDF + str(call.init_id).encode()).decode())
    if typedef is INVOICE and method == "getPdfFilename":
        return Result("scalar", f"{acct.id}-{call.init_id}.pdf")
    if typedef is ACCOUNT and method == "getBalance":
        return Result("scalar", typedef.scalar_relational["balance"](obj))
    if method.startswith("get") and len(method) > 3:
        prop = _lower_first(method[3:])
        scalar = typedef.scalar_relational.get(prop) or (
            typedef.local.get(prop) if call.service != "SoftLayer_Account" else None
        )
        if scalar is not None:
            value = scalar(obj)
            return Result("scalar", None if value is MISSING else value)
        rel = typedef.relational.get(prop)
        if rel is not None:
            target = TYPES[rel.target]
            value = rel.get(obj)
            if rel.many:
                return Result("list", value, target, prop)
            return Result("object", None if value is MISSING else value, target)
    raise ApiError(
        500,
        f'Function ("{method}") is not a valid method for this service.',
        "SoftLayer_Exception_Public",
    )


class RowCache:
    """Recently filtered/sorted row lists.

    Paging a filtered 200,000-item list then does not re-filter on every page; keys include
    the account's mutation version, so a mutation invalidates them.
    """

    def __init__(self, size: int = 8) -> None:
        self._size = size
        self._entries: collections.OrderedDict[Hashable, Sequence[Any]] = collections.OrderedDict()

    def get(self, key: Hashable, compute: Callable[[], Sequence[Any]]) -> Sequence[Any]:
        """Return the cached rows for ``key``, computing and remembering them if absent."""
        rows = self._entries.get(key)
        if rows is None:
            rows = compute()
            self._entries[key] = rows
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        else:
            self._entries.move_to_end(key)
        return rows


def render(
    call: Call,
    result: Result,
    now: int,
    cache: RowCache | None = None,
    scope: Hashable = None,
) -> tuple[Any, int | None]:
    """Apply mask, filter and resultLimit; returns (JSON value, total items or None)."""
    if result.kind == "scalar" or result.typedef is None:
        return result.value, None
    mask = parse_mask(call.mask)
    validate(result.typedef, mask)
    if result.kind == "object":
        if result.value is None:
            return None, None
        relation_filters = {}
        if is_filtered_mask(call.mask):
            for name, rel in result.typedef.relational.items():
                if rel.many and name in mask:
                    compiled_rel = compile_filter(call.filter, name, TYPES[rel.target], now)
                    if compiled_rel is not None:
                        relation_filters[name] = compiled_rel.apply
        return project(result.typedef, result.value, mask, relation_filters), None
    rows: Sequence[Any] = result.value
    compiled = compile_filter(call.filter, result.root_property, result.typedef, now)
    if compiled is not None:
        filtered = compiled
        source = rows
        if cache is None:
            rows = filtered.apply(source)
        else:
            key = (scope, call.service, call.init_id, call.method, call.filter, now // 60)
            rows = cache.get(key, lambda: filtered.apply(source))
    total = len(rows)
    end = total if call.limit is None else call.offset + call.limit
    page = rows[call.offset : end]
    return [project(result.typedef, row, mask) for row in page], total


def encode(value: Any) -> bytes:
    """Compact JSON, with ``/`` escaped as SoftLayer does."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/").encode()


def _swap_types(value: Any) -> Any:  # noqa: PLR0911  one case per JSON type
    """Numbers become strings and numeric strings become numbers (WRONG_TYPES)."""
    if isinstance(value, dict):
        return {k: _swap_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap_types(v) for v in value]
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return value
        return int(number) if number.is_integer() else number
    return value


#: SoftLayer-Total-Items of the ABSURD_TOTAL_ITEMS fault.
ABSURD_TOTAL: Final = 1_000_000_000


def _float_noise(value: Any, counter: Iterator[int]) -> Any:
    """Move every non-integral JSON number one ulp, alternately up and down (FLOAT_NOISE).

    ``math.nextafter(19.08, inf)`` is ``19.080000000000002``, the double that ``.024 * 318``
    yields: what a JSON number computed in binary floating point can carry.
    """
    if isinstance(value, dict):
        return {k: _float_noise(v, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_noise(v, counter) for v in value]
    if isinstance(value, float):
        return math.nextafter(value, math.inf if next(counter) % 2 == 0 else -math.inf)
    return value


def _reset_connection(request: web.Request) -> None:
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        # Linger 0 turns close() into a TCP RST, which is what "connection reset" means.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class RestHandler:
    """The aiohttp handler for ``/rest/v3[.1]/...``."""

    def __init__(self, state: SimulatorState) -> None:
        self.state = state
        self.rows = RowCache()

    def _respond(
        self, status: int, body: bytes, total: int | None = None, content_type: str = "json"
    ) -> web.Response:
        headers = dict(BASE_HEADERS)
        if total is not None:
            headers[TOTAL_ITEMS_HEADER] = str(total)
        self.state.stats.bytes_sent += len(body)
        return web.Response(
            status=status,
            body=body,
            headers=headers,
            content_type="application/json" if content_type == "json" else "text/html",
        )

    def _error(self, status: int, message: str, code: str) -> web.Response:
        return self._respond(status, _error_body(message, code))

    async def handle(self, request: web.Request) -> web.StreamResponse:  # noqa: PLR0911  one answer per protocol failure
        """Answer one REST call: parse, count, delay, authenticate, rate-limit, fault, run."""
        state = self.state
        try:
            call = await parse_call(request)
        except ApiError as exc:
            return self._error(exc.status, exc.message, exc.code)
        state.stats.record(call.key, state.clock())
        if state.latency_seconds > 0:
            await asyncio.sleep(state.latency_seconds)
        who = state.auth.authenticate(request.headers.get("Authorization"))
        if isinstance(who, AuthFailure):
            if who is AuthFailure.TOKEN_EXPIRED:
                return self._error(500, "Expired Token", TOKEN_VALIDATION)
            if who is AuthFailure.TOKEN_INVALID:
                return self._error(500, "Invalid Token", TOKEN_VALIDATION)
            if who is AuthFailure.MISSING:
                return self._error(401, *ACCESS_DENIED)
            return self._error(401, *INVALID_TOKEN)
        acct = who
        if state.over_rate_limit(acct.id, state.clock()):
            limit = state.rate_limit_per_second
            return self._error(
                500,
                f"Rate limit of {limit} requests for every 1 second(s) exceeded.",
                RATE_LIMITED,
            )
        rule = state.faults.take(call.key, acct.id, call.limit)
        if rule is not None and rule.kind is FaultKind.LATENCY:
            await asyncio.sleep(rule.latency_seconds)
            rule = state.faults.take(call.key, acct.id, call.limit, skip_latency=True)
        if rule is not None:
            early = await self._early_fault(request, rule, call)
            if early is not None:
                return early
        return self._answer(call, acct, rule)

    def _answer(self, call: Call, acct: SimAccount, rule: FaultRule | None) -> web.Response:
        """Run the method at the scenario's time, apply the page cap, hooks and late faults."""
        state = self.state
        now = state.scenario.current_time()
        try:
            result = dispatch(call, acct, now)
            cap = state.page_cap if result.kind == "list" else None
            if cap is not None:
                call = replace(call, limit=cap if call.limit is None else min(call.limit, cap))
            value, total = render(call, result, now, self.rows, (acct.id, acct.version))
        except MaskError as exc:
            return self._error(500, exc.message, exc.code)
        except ApiError as exc:
            return self._error(exc.status, exc.message, exc.code)
        if cap is not None and not state.page_cap_total_header:
            total = None
        if result.kind == "list":
            # After rendering: this page shows the account before a hook's change.
            state.run_page_hooks(call.key, acct.id)
        return self._late_fault(rule, value, total)

    async def _early_fault(  # noqa: PLR0911  one answer per fault kind
        self, request: web.Request, rule: FaultRule, call: Call
    ) -> web.StreamResponse | None:
        kind = rule.kind
        if kind is FaultKind.RATE_LIMIT:
            return self._error(
                500, "Rate limit of 50 requests for every 1 second(s) exceeded.", RATE_LIMITED
            )
        if kind in (FaultKind.INTERNAL_ERROR, FaultKind.LARGE_PAGE_ERROR):
            return self._error(500, *INTERNAL_ERROR)
        if kind is FaultKind.INTERNAL_ERROR_HTTP200:
            return self._error(200, *INTERNAL_ERROR)
        if kind is FaultKind.UNAUTHORIZED:
            return self._error(401, *INVALID_TOKEN)
        if kind is FaultKind.TOKEN_EXPIRED:
            return self._error(500, "Expired Token", TOKEN_VALIDATION)
        defect = _DEFECTS.get(kind)
        if defect is not None:
            return self._error(500, *defect)
        if kind is FaultKind.NOT_FOUND:
            raise_id = call.init_id if call.init_id is not None else 0
            err = _not_found(raise_id)
            return self._error(err.status, err.message, err.code)
        if kind is FaultKind.HANG:
            self.state.hang_started.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.state.closing.wait(), timeout=3600)
            _reset_connection(request)
            return web.Response(status=503)
        if kind is FaultKind.CONNECTION_RESET:
            _reset_connection(request)
            return web.Response(status=503)
        return None

    def _late_fault(self, rule: FaultRule | None, value: Any, total: int | None) -> web.Response:
        kind = rule.kind if rule is not None else None
        if kind is FaultKind.WRONG_TYPES:
            value = _swap_types(value)
        elif kind is FaultKind.FLOAT_NOISE:
            value = _float_noise(value, itertools.count())
        elif kind is FaultKind.ABSURD_TOTAL_ITEMS and total is not None:
            total = ABSURD_TOTAL
        elif kind is FaultKind.BARE_OBJECT and isinstance(value, list) and len(value) == 1:
            value = value[0]
        body = encode(value)
        if kind is FaultKind.MISSING_TOTAL_ITEMS:
            total = None
        elif kind is FaultKind.EMPTY_BODY:
            body = b""
        elif kind is FaultKind.TRUNCATED_JSON:
            body = body[: max(len(body) // 2, 1)]
        elif kind is FaultKind.MALFORMED_JSON:
            body = b"<html><body><h1>502 Proxy Error</h1></body></html>" + body[:16]
        return self._respond(200, body, total)


async def identity_token(request: web.Request) -> web.Response:
    """``POST /identity/token``: IBM Cloud IAM's API-key grant."""
    state: SimulatorState = request.app[STATE_KEY]
    state.stats.token_requests += 1
    form = await request.post()
    grant = form.get("grant_type")
    api_key = form.get("apikey")

    def iam_error(status: int, code: str, message: str) -> web.Response:
        body = {"errorCode": code, "errorMessage": message, "context": {"requestId": "sim"}}
        return web.json_response(body, status=status)

    if grant != APIKEY_GRANT:
        return iam_error(400, "BXNIM0109E", f"Property grant_type must be '{APIKEY_GRANT}'.")
    if not isinstance(api_key, str) or not api_key:
        return iam_error(400, "BXNIM0109E", "Property missing or empty. Property: apikey")
    issued = state.auth.issue_token(api_key)
    if issued is None:
        return iam_error(400, "BXNIM0415E", "Provided API key could not be found.")
    value, token = issued
    ttl = state.auth.token_ttl_seconds
    return web.json_response(
        {
            "access_token": value,
            "refresh_token": "not_supported",
            "ims_user_id": state.scenario.account(token.account_id).users[0].id,
            "token_type": "Bearer",
            "expires_in": int(ttl),
            "expiration": int(token.expires_at),
            "scope": "ibm openid",
        }
    )


STATE_KEY: Final = web.AppKey("simulator_state", SimulatorState)


def build_app(state: SimulatorState) -> web.Application:
    """Build the aiohttp application serving the API, the IAM endpoint and the admin API."""
    app = web.Application()
    app[STATE_KEY] = state
    rest = RestHandler(state)
    app.router.add_route("*", "/rest/v3.1/{tail:.*}", rest.handle)
    app.router.add_route("*", "/rest/v3/{tail:.*}", rest.handle)
    app.router.add_post("/identity/token", identity_token)
    add_admin_routes(app, state)
    return app
