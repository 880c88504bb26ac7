"""Fault injection: rules that make the next matching API calls misbehave like SoftLayer does.

A :class:`FaultRule` matches on method (``"SoftLayer_Account::getInvoices"``) and account and
fires for the next ``times`` matching requests (``None``: until removed). The first matching
rule wins; LATENCY rules only delay the call, then the next rule (or the real answer) applies.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any


class FaultKind(StrEnum):
    """What a fault does to a response."""

    LATENCY = "latency"  # delay by latency_seconds, then answer normally
    RATE_LIMIT = "rate_limit"  # HTTP 500 SoftLayer_Exception_WebService_RateLimitExceeded
    INTERNAL_ERROR = "internal_error"  # HTTP 500 {"error":"Internal Error",...}
    INTERNAL_ERROR_HTTP200 = "internal_error_http200"  # the same body with HTTP 200
    MALFORMED_JSON = "malformed_json"  # HTTP 200, body is not JSON
    TRUNCATED_JSON = "truncated_json"  # HTTP 200, the real body cut in half
    EMPTY_BODY = "empty_body"  # HTTP 200, zero bytes
    CONNECTION_RESET = "connection_reset"  # TCP reset instead of a response
    HANG = "hang"  # never answers (until the client gives up or the server stops)
    MISSING_TOTAL_ITEMS = "missing_total_items"  # real answer without SoftLayer-Total-Items
    UNAUTHORIZED = "unauthorized"  # HTTP 401 as for a bad API key
    NOT_FOUND = "not_found"  # HTTP 404 SoftLayer_Exception_ObjectNotFound
    WRONG_TYPES = "wrong_types"  # real answer with numbers and strings swapped
    LARGE_PAGE_ERROR = "large_page_error"  # HTTP 500 when resultLimit > max_page_size
    # A one-element list page sent as the bare object, as some SoftLayer list methods do.
    BARE_OBJECT = "bare_object"
    TOKEN_EXPIRED = "token_expired"  # noqa: S105  not a secret; HTTP 500 ...AccessTokenValidation
    # Request defects SoftLayer reports with HTTP 500 (softlayer-api.md section 2.2): a mask
    # naming an unknown property, a mask it cannot parse, a rejected value, a permission.
    MASK_ERROR = "mask_error"  # SoftLayer_Exception_WebService_ObjectMask
    PARSE_ERROR = "parse_error"  # SoftLayer_Exception_Common_Parser
    INVALID_VALUE = "invalid_value"  # SoftLayer_Exception_InvalidValue
    PERMISSION_DENIED = "permission_denied"  # SoftLayer_Exception_PermissionDenied
    # Real answer whose JSON number fields (nextInvoiceTotal*, balance...) carry the noise of a
    # binary double, one ulp off: 19.080000000000002 for 19.08 (what .024 * 318 is as a double).
    FLOAT_NOISE = "float_noise"
    # Real answer whose SoftLayer-Total-Items says 1,000,000,000.
    ABSURD_TOTAL_ITEMS = "absurd_total_items"


@dataclass(frozen=True, slots=True)
class FaultRule:
    """One fault rule.

    ``method`` None matches every API method, ``account_id`` None every account; ``times``
    None fires until removed.
    """

    kind: FaultKind
    method: str | None = None
    account_id: int | None = None
    times: int | None = None
    latency_seconds: float = 1.0
    max_page_size: int = 100

    def __post_init__(self) -> None:
        if self.times is not None and self.times < 1:
            raise ValueError(f"FaultRule.times must be >= 1 or None, got {self.times}")
        if self.latency_seconds < 0:
            raise ValueError("FaultRule.latency_seconds must be >= 0")
        if self.max_page_size < 1:
            raise ValueError("FaultRule.max_page_size must be >= 1")
        if self.method is not None and "::" not in self.method:
            raise ValueError(
                f"FaultRule.method must look like 'SoftLayer_Account::getInvoices', "
                f"got {self.method!r}"
            )

    def to_json(self) -> dict[str, Any]:
        """Describe the rule as JSON (admin API)."""
        return {
            "kind": self.kind.value,
            "method": self.method,
            "account_id": self.account_id,
            "times": self.times,
            "latency_seconds": self.latency_seconds,
            "max_page_size": self.max_page_size,
        }

    @classmethod
    def from_json(cls, data: Any) -> FaultRule:
        """Build from the admin API's JSON; ValueError with a clear message on bad input."""
        if not isinstance(data, dict):
            raise ValueError("fault must be a JSON object")
        unknown = set(data) - {
            "kind",
            "method",
            "account_id",
            "times",
            "latency_seconds",
            "max_page_size",
        }
        if unknown:
            raise ValueError(f"unknown fault fields: {', '.join(sorted(unknown))}")
        try:
            kind = FaultKind(str(data.get("kind")))
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault kind {data.get('kind')!r}; known: {known}") from None
        return cls(
            kind=kind,
            method=data.get("method"),
            account_id=_opt_int(data, "account_id"),
            times=_opt_int(data, "times"),
            latency_seconds=float(data.get("latency_seconds", 1.0)),
            max_page_size=int(data.get("max_page_size", 100)),
        )


def _opt_int(data: dict[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"fault field {key} must be an integer or null")
    return value


def parse_fault_spec(spec: str) -> FaultRule:
    """Parse the CLI form ``KIND[:METHOD][:TIMES]``; ValueError on nonsense.

    Example: ``internal_error:SoftLayer_Account::getInvoices:3``.
    """
    kind_text, _, rest = spec.partition(":")
    times: int | None = None
    method: str | None = None
    if rest:
        head, sep, tail = rest.rpartition(":")
        if sep and tail.isdigit() and not head.endswith(":"):
            times = int(tail)
            rest = head
        elif rest.isdigit():
            times, rest = int(rest), ""
        method = rest or None
    try:
        kind = FaultKind(kind_text)
    except ValueError:
        known = ", ".join(k.value for k in FaultKind)
        raise ValueError(f"unknown fault kind {kind_text!r}; known: {known}") from None
    return FaultRule(kind=kind, method=method, times=times)


class FaultSet:
    """The active rules, with their remaining counts."""

    def __init__(self) -> None:
        self._ids = itertools.count(1)
        self._rules: dict[int, FaultRule] = {}

    def add(self, rule: FaultRule) -> int:
        """Install a rule; returns its id."""
        fid = next(self._ids)
        self._rules[fid] = rule
        return fid

    def remove(self, fid: int) -> None:
        """Remove a rule (KeyError if unknown)."""
        if fid not in self._rules:
            raise KeyError(f"no fault with id {fid}")
        del self._rules[fid]

    def clear(self) -> None:
        """Remove every rule."""
        self._rules.clear()

    def items(self) -> list[tuple[int, FaultRule]]:
        """List the current rules in installation order."""
        return list(self._rules.items())

    def take(
        self, method: str, account_id: int | None, limit: int | None, skip_latency: bool = False
    ) -> FaultRule | None:
        """Return the first rule that fires for this request, consuming one of its ``times``."""
        for fid, rule in list(self._rules.items()):
            if skip_latency and rule.kind is FaultKind.LATENCY:
                continue
            if rule.method is not None and rule.method != method:
                continue
            if rule.account_id is not None and rule.account_id != account_id:
                continue
            if rule.kind is FaultKind.LARGE_PAGE_ERROR and (
                not method.endswith("::getNextInvoiceTopLevelBillingItems")
                or (limit is not None and limit <= rule.max_page_size)
            ):
                continue
            if rule.times is not None:
                if rule.times <= 1:
                    del self._rules[fid]
                else:
                    self._rules[fid] = replace(rule, times=rule.times - 1)
            return rule
        return None
