"""The ``/__admin/`` HTTP API: the in-process controls, for the CLI, the demo and scripts.

Every answer is JSON; bad input answers HTTP 400 ``{"error": ...}``. Admin calls are not
counted in the API statistics. Besides faults, latency, rate limit and account mutations:

- ``GET|POST /__admin/clock``: the billing clock; POST ``{"speed": 3600}`` (simulated seconds
  per real second), ``{"advance": "36h"}`` (or seconds) and/or ``{"to": "<ISO-8601>"}``;
  every billing event on the way runs before the answer;
- ``POST /__admin/page-cap``: ``{"max_items": 50, "total_header": false}`` (null: no cap);
- ``POST /__admin/page-hooks``: mutate an account right after the k-th list page, e.g.
  ``{"after_pages": 2, "account_id": 300121,
  "method": "SoftLayer_Account::getNextInvoiceTopLevelBillingItems",
  "action": {"cancel_item": 100000040}}``; actions: ``cancel_item``, ``add_item``
  (``{"category_code", "recurring_fee", "hourly"}``), ``pay_pending_invoice``,
  ``open_pending_invoice`` (``{"amount"}``), ``advance`` (a duration). ``GET`` lists the
  hooks, ``DELETE`` removes them all.
"""

from __future__ import annotations

import collections
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from aiohttp import web

from exporter.simulator.clock import parse_duration
from exporter.simulator.faults import FaultRule
from exporter.simulator.scenario import (
    AccountTruth,
    BillingTruth,
    ExchangeRate,
    InvoiceTruth,
    Scenario,
)
from exporter.simulator.state import PageHook, SimulatorState, Stats
from exporter.simulator.wireformat import aware


def _seconds(raw: object, what: str) -> float:
    """Read a duration given as seconds or as text (``36h``)."""
    if isinstance(raw, bool):
        raise ValueError(f"{what} must be seconds or a duration such as 36h")
    if isinstance(raw, int | float):
        if raw < 0:
            raise ValueError(f"{what} must be >= 0")
        return float(raw)
    if isinstance(raw, str):
        return parse_duration(raw)
    raise ValueError(f"{what} must be seconds or a duration such as 36h")


def _decimal(raw: object, what: str) -> Decimal:
    try:
        return Decimal(str(raw))
    except InvalidOperation:
        raise ValueError(f"{what} must be a decimal, got {raw!r}") from None


def page_hook_from_json(data: Any) -> PageHook:
    """Build a :class:`PageHook` from the admin API's JSON; ValueError on bad input."""
    if not isinstance(data, dict):
        raise ValueError("page hook must be a JSON object")
    unknown = set(data) - {"after_pages", "method", "account_id", "action"}
    if unknown:
        raise ValueError(f"unknown page hook fields: {', '.join(sorted(unknown))}")
    after = data.get("after_pages")
    account_id = data.get("account_id")
    method = data.get("method")
    if isinstance(after, bool) or not isinstance(after, int):
        raise ValueError("after_pages must be an integer >= 1")
    if account_id is not None and (isinstance(account_id, bool) or not isinstance(account_id, int)):
        raise ValueError("account_id must be an integer or null")
    if method is not None and (not isinstance(method, str) or "::" not in method):
        raise ValueError("method must look like 'SoftLayer_Account::getInvoices' or be null")
    action = data.get("action")
    if not isinstance(action, dict) or len(action) != 1:
        raise ValueError("action must be an object with exactly one action")
    ((name, arg),) = action.items()
    mutation = _mutation(name, arg, account_id)
    return PageHook(after, mutation, method, account_id, json.dumps(action, sort_keys=True))


def _mutation(name: str, arg: Any, account_id: int | None) -> Any:
    if name == "advance":
        seconds = _seconds(arg, "advance")
        return lambda sc: sc.advance(seconds)
    if account_id is None:
        raise ValueError(f"action {name} needs an account_id")
    if name == "cancel_item":
        if isinstance(arg, bool) or not isinstance(arg, int):
            raise ValueError("cancel_item takes a billing item id")
        return lambda sc: sc.cancel_billing_item(account_id, arg)
    if name == "add_item":
        if not isinstance(arg, dict) or "category_code" not in arg or "recurring_fee" not in arg:
            raise ValueError('add_item takes {"category_code", "recurring_fee", "hourly"?}')
        fee = _decimal(arg["recurring_fee"], "recurring_fee")
        code, hourly = str(arg["category_code"]), bool(arg.get("hourly", False))
        return lambda sc: sc.add_billing_item(account_id, code, fee, hourly)
    if name == "pay_pending_invoice":
        return lambda sc: sc.pay_pending_invoice(account_id)
    if name == "open_pending_invoice":
        amount = _decimal(
            (arg or {}).get("amount", "5000") if isinstance(arg, dict) else arg, "amount"
        )
        return lambda sc: sc.open_pending_invoice(account_id, amount)
    raise ValueError(
        f"unknown action {name!r}; known: advance, cancel_item, add_item, "
        "pay_pending_invoice, open_pending_invoice"
    )


def clock_json(scenario: Scenario) -> dict[str, Any]:
    """Describe the billing clock as JSON (after running what fell due)."""
    moment = scenario.sync()
    return {"now": aware(moment).isoformat(), "epoch": moment, "speed": scenario.clock.speed}


def _bad(message: str) -> web.Response:
    return web.json_response({"error": message}, status=400)


async def _json_body(request: web.Request) -> Any:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"request body is not JSON: {exc}") from None


def _invoice_json(inv: InvoiceTruth | None) -> dict[str, Any] | None:
    if inv is None:
        return None
    return {
        "id": inv.id,
        "type_code": inv.type_code,
        "status_code": inv.status_code,
        "created": inv.created.isoformat(),
        "closed": inv.closed.isoformat() if inv.closed else None,
        "total": str(inv.total),
        "pre_tax": str(inv.pre_tax),
        "recurring": str(inv.recurring),
        "one_time": str(inv.one_time),
        "tax": str(inv.tax),
        "payments": str(inv.payments),
        "item_count": inv.item_count,
        "top_level_item_count": inv.top_level_item_count,
        "exchange_rate": _rate_json(inv.exchange_rate),
    }


def _rate_json(rate: ExchangeRate | None) -> dict[str, Any] | None:
    if rate is None:
        return None
    return {"local_currency": rate.local, "rate": str(rate.rate)}


def _billing_json(billing: BillingTruth | None) -> dict[str, Any] | None:
    if billing is None:
        return None
    return {
        "currency": billing.currency,
        "currency_name": billing.currency_name,
        "exchange_rate": _rate_json(billing.exchange_rate),
        "payment_terms": billing.payment_terms,
        "recurring_discount_percent": billing.recurring_discount_percent,
        "one_time_discount_percent": billing.one_time_discount_percent,
        "account_status_id": billing.account_status_id,
        "account_status": billing.account_status,
        "next_invoice_recurring_before_discount": str(
            billing.next_invoice_recurring_before_discount
        ),
        "next_invoice_platform_services": str(billing.next_invoice_platform_services),
    }


def truth_json(truth: AccountTruth) -> dict[str, Any]:
    """Render the truth as JSON (money as decimal strings)."""
    return {
        "account_id": truth.account_id,
        "company_name": truth.company_name,
        "balance": str(truth.balance),
        "next_invoice_pre_tax": str(truth.next_invoice_pre_tax),
        "next_invoice_recurring": str(truth.next_invoice_recurring),
        "next_invoice_one_time": str(truth.next_invoice_one_time),
        "next_invoice_tax": str(truth.next_invoice_tax),
        "next_invoice_item_count": truth.next_invoice_item_count,
        "categories": {
            code: {
                "name": c.name,
                "amount": str(c.amount),
                "hourly_items": c.hourly_items,
                "monthly_items": c.monthly_items,
                "hourly_amount": str(c.hourly_amount),
                "hourly_rate": str(c.hourly_rate),
                "known_hourly_rate": str(c.known_hourly_rate),
            }
            for code, c in truth.categories.items()
        },
        "cycle_start": truth.cycle_start.isoformat(),
        "cycle_end": truth.cycle_end.isoformat(),
        "anniversary_day": truth.anniversary_day,
        "billing": _billing_json(truth.billing),
        "latest_recurring_invoice": _invoice_json(truth.latest_recurring_invoice),
        "pending_invoice": _invoice_json(truth.pending_invoice),
        "invoices": [_invoice_json(i) for i in truth.invoices],
    }


def add_admin_routes(app: web.Application, state: SimulatorState) -> None:  # noqa: PLR0915  one closure per endpoint
    """Register the admin endpoints on ``app``."""
    scenario = state.scenario

    def account_id(request: web.Request) -> int:
        raw = request.match_info["account_id"]
        if not raw.isdigit():
            raise ValueError(f"account id must be an integer, got {raw!r}")
        acct_id = int(raw)
        scenario.account(acct_id)  # KeyError if unknown
        return acct_id

    def guarded(handler: Any) -> Any:
        async def wrapper(request: web.Request) -> web.StreamResponse:
            try:
                response: web.StreamResponse = await handler(request)
            except KeyError as exc:
                return web.json_response({"error": str(exc.args[0])}, status=404)
            except (ValueError, TypeError) as exc:
                return _bad(str(exc))
            return response

        return wrapper

    async def index(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "accounts": [a.credentials() for a in scenario.accounts],
                "stats": state.stats.to_json(),
                "faults": [{"id": fid, **rule.to_json()} for fid, rule in state.faults.items()],
                "latency_seconds": state.latency_seconds,
                "rate_limit_per_second": state.rate_limit_per_second,
                "clock": clock_json(scenario),
                "page_cap": {
                    "max_items": state.page_cap,
                    "total_header": state.page_cap_total_header,
                },
                "page_hooks": [hook.to_json() for hook in state.page_hooks],
            }
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(state.stats.to_json())

    async def reset_stats(request: web.Request) -> web.Response:
        state.stats = Stats(requests=collections.Counter())
        return web.json_response({"ok": True})

    async def list_faults(request: web.Request) -> web.Response:
        return web.json_response(
            [{"id": fid, **rule.to_json()} for fid, rule in state.faults.items()]
        )

    async def add_fault(request: web.Request) -> web.Response:
        rule = FaultRule.from_json(await _json_body(request))
        return web.json_response({"id": state.faults.add(rule)}, status=201)

    async def remove_fault(request: web.Request) -> web.Response:
        raw = request.match_info["fault_id"]
        if not raw.isdigit():
            raise ValueError(f"fault id must be an integer, got {raw!r}")
        state.faults.remove(int(raw))
        return web.json_response({"ok": True})

    async def clear_faults(request: web.Request) -> web.Response:
        state.faults.clear()
        return web.json_response({"ok": True})

    async def latency(request: web.Request) -> web.Response:
        body = await _json_body(request)
        seconds = body.get("seconds") if isinstance(body, dict) else None
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or seconds < 0:
            raise ValueError('body must be {"seconds": <number >= 0>}')
        state.latency_seconds = float(seconds)
        return web.json_response({"latency_seconds": state.latency_seconds})

    async def rate_limit(request: web.Request) -> web.Response:
        body = await _json_body(request)
        per_second = body.get("per_second", "?") if isinstance(body, dict) else "?"
        if per_second is not None and (
            isinstance(per_second, bool) or not isinstance(per_second, int) or per_second < 0
        ):
            raise ValueError('body must be {"per_second": <integer >= 0 or null>}')
        state.rate_limit_per_second = per_second
        return web.json_response({"rate_limit_per_second": per_second})

    async def expire_tokens(request: web.Request) -> web.Response:
        return web.json_response({"expired": state.auth.expire_tokens()})

    async def truth(request: web.Request) -> web.Response:
        return web.json_response(truth_json(scenario.truth(account_id(request))))

    async def pay(request: web.Request) -> web.Response:
        return web.json_response({"invoice_id": scenario.pay_pending_invoice(account_id(request))})

    async def open_invoice(request: web.Request) -> web.Response:
        acct_id = account_id(request)
        body = await _json_body(request)
        raw = body.get("amount", "5000") if isinstance(body, dict) else None
        try:
            amount = Decimal(str(raw))
        except InvalidOperation:
            raise ValueError(f"amount must be a decimal, got {raw!r}") from None
        return web.json_response(
            {"invoice_id": scenario.open_pending_invoice(acct_id, amount)}, status=201
        )

    async def add_item(request: web.Request) -> web.Response:
        acct_id = account_id(request)
        body = await _json_body(request)
        if not isinstance(body, dict) or "category_code" not in body or "recurring_fee" not in body:
            raise ValueError('body must be {"category_code", "recurring_fee", "hourly"?}')
        try:
            fee = Decimal(str(body["recurring_fee"]))
        except InvalidOperation:
            raise ValueError(
                f"recurring_fee must be a decimal: {body['recurring_fee']!r}"
            ) from None
        item_id = scenario.add_billing_item(
            acct_id, str(body["category_code"]), fee, bool(body.get("hourly", False))
        )
        return web.json_response({"id": item_id}, status=201)

    async def get_clock(request: web.Request) -> web.Response:
        return web.json_response(clock_json(scenario))

    async def set_clock(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or not body or set(body) - {"speed", "advance", "to"}:
            raise ValueError('body must hold "speed", "advance" and/or "to"')
        if "advance" in body:
            scenario.advance(_seconds(body["advance"], "advance"))
        if "to" in body:
            try:
                moment = datetime.fromisoformat(str(body["to"]))
            except ValueError:
                raise ValueError(f"to must be an ISO-8601 timestamp, got {body['to']!r}") from None
            if moment.tzinfo is None:
                raise ValueError("to needs a UTC offset")
            if moment.timestamp() < scenario.clock.now():
                raise ValueError("the clock only moves forward")
            scenario.advance_to(moment)
        if "speed" in body:
            speed = body["speed"]
            if isinstance(speed, bool) or not isinstance(speed, int | float) or speed < 0:
                raise ValueError("speed must be a number >= 0")
            scenario.set_speed(float(speed))
        return web.json_response(clock_json(scenario))

    async def page_cap(request: web.Request) -> web.Response:
        body = await _json_body(request)
        if not isinstance(body, dict) or "max_items" not in body:
            raise ValueError('body must be {"max_items": <int >= 1 or null>, "total_header"?}')
        cap = body["max_items"]
        if cap is not None and (isinstance(cap, bool) or not isinstance(cap, int) or cap < 1):
            raise ValueError("max_items must be an integer >= 1 or null")
        header = body.get("total_header", True)
        if not isinstance(header, bool):
            raise ValueError("total_header must be true or false")
        state.page_cap, state.page_cap_total_header = cap, header
        return web.json_response({"max_items": cap, "total_header": header})

    async def list_hooks(request: web.Request) -> web.Response:
        return web.json_response([hook.to_json() for hook in state.page_hooks])

    async def add_hook(request: web.Request) -> web.Response:
        hook = page_hook_from_json(await _json_body(request))
        if hook.account_id is not None:
            scenario.account(hook.account_id)  # KeyError (404) if unknown
        state.page_hooks.append(hook)
        return web.json_response(hook.to_json(), status=201)

    async def clear_hooks(request: web.Request) -> web.Response:
        state.page_hooks.clear()
        return web.json_response({"ok": True})

    async def cancel_item(request: web.Request) -> web.Response:
        acct_id = account_id(request)
        raw = request.match_info["item_id"]
        if not raw.isdigit():
            raise ValueError(f"item id must be an integer, got {raw!r}")
        scenario.cancel_billing_item(acct_id, int(raw))
        return web.json_response({"ok": True})

    routes = [
        ("GET", "/__admin/", index),
        ("GET", "/__admin/stats", stats),
        ("POST", "/__admin/stats/reset", reset_stats),
        ("GET", "/__admin/faults", list_faults),
        ("POST", "/__admin/faults", add_fault),
        ("DELETE", "/__admin/faults", clear_faults),
        ("DELETE", "/__admin/faults/{fault_id}", remove_fault),
        ("POST", "/__admin/latency", latency),
        ("POST", "/__admin/rate-limit", rate_limit),
        ("POST", "/__admin/tokens/expire", expire_tokens),
        ("GET", "/__admin/clock", get_clock),
        ("POST", "/__admin/clock", set_clock),
        ("POST", "/__admin/page-cap", page_cap),
        ("GET", "/__admin/page-hooks", list_hooks),
        ("POST", "/__admin/page-hooks", add_hook),
        ("DELETE", "/__admin/page-hooks", clear_hooks),
        ("GET", "/__admin/accounts/{account_id}/truth", truth),
        ("POST", "/__admin/accounts/{account_id}/pay-pending-invoice", pay),
        ("POST", "/__admin/accounts/{account_id}/open-pending-invoice", open_invoice),
        ("POST", "/__admin/accounts/{account_id}/billing-items", add_item),
        ("DELETE", "/__admin/accounts/{account_id}/billing-items/{item_id}", cancel_item),
    ]
    for method, path, handler in routes:
        app.router.add_route(method, path, guarded(handler))
