"""objectFilter: SoftLayer's JSON result filter, including its habit of failing open.

The filter is rooted at the datatype property the method returns (``{"invoices": {...}}`` for
``getInvoices``). Leaves are ``{"operation": ..., "options": [...]}``; nested objects walk
relational properties. Anything SoftLayer would not understand — bad JSON, another root, an
unknown property, an option value that is not a list — makes the whole filter be ignored, as
the real API does, so callers get unfiltered results rather than an error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from exporter.simulator.model import MISSING, TYPES, TypeDef
from exporter.simulator.wireformat import CENTRAL

_PREFIX_OPS = re.compile(r"^\s*(!\^=|!\$=|!\*=|!=|>=|<=|\^=|\$=|\*=|_=|!~|~|>|<)\s*(.*)$", re.S)
_RELATIVE = re.compile(r"^\s*(sysdate|currentdate)\s*(?:([-+])\s*(\d+))?\s*$", re.I)
_DATE_VALUE = re.compile(r"^\d{4}-\d{2}-\d{2}T")


class _IgnoredError(Exception):
    """Raised while compiling: SoftLayer would silently ignore this filter."""


@dataclass(frozen=True, slots=True)
class Operand:
    """One comparison value, pre-parsed every way it might be compared."""

    text: str
    number: Decimal | None
    date: datetime | None


def _operand(raw: Any, now: int) -> Operand:
    text = str(raw).strip()
    number: Decimal | None
    try:
        number = Decimal(text)
    except (InvalidOperation, ValueError):
        number = None
    return Operand(text, number, _parse_date(text, now))


def _parse_date(text: str, now: int) -> datetime | None:
    relative = _RELATIVE.match(text)
    if relative:
        days = int(relative.group(3) or 0) * (-1 if relative.group(2) == "-" else 1)
        return datetime.fromtimestamp(now, CENTRAL) + timedelta(days=days)
    for fmt in ("%m/%d/%Y %H:%M:%S", "%m/%d/%Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=CENTRAL)
        except ValueError:
            pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=CENTRAL)


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, str):
        try:
            return Decimal(value)
        except (InvalidOperation, ValueError):
            return None
    return None


def _as_date(value: Any) -> datetime | None:
    if isinstance(value, str) and _DATE_VALUE.match(value):
        try:
            return datetime.fromisoformat(value)
        except ValueError:
            return None
    return None


def _compare(value: Any, operand: Operand) -> int | None:
    """-1/0/1 comparing a property value with an operand; None if incomparable."""
    if value is None:
        return None
    moment = _as_date(value)
    if moment is not None and operand.date is not None:
        return (moment > operand.date) - (moment < operand.date)
    number = _as_number(value)
    if number is not None and operand.number is not None:
        return (number > operand.number) - (number < operand.number)
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return (text > operand.text) - (text < operand.text)


Test = Callable[[Any], bool]


def _options(spec: dict[str, Any]) -> dict[str, list[Any]]:
    raw = spec.get("options", [])
    if not isinstance(raw, list):
        raise _IgnoredError
    out: dict[str, list[Any]] = {}
    for option in raw:
        if not isinstance(option, dict) or not isinstance(option.get("name"), str):
            raise _IgnoredError
        value = option.get("value")
        if not isinstance(value, list):  # PY docs: values outside [] make the filter fail
            raise _IgnoredError
        out[option["name"]] = value
    return out


def _date_option(options: dict[str, list[Any]], name: str, now: int) -> datetime:
    values = options.get(name)
    if not values:
        raise _IgnoredError
    moment = _parse_date(str(values[0]), now)
    if moment is None:
        raise _IgnoredError
    return moment


def _string_test(op: str, operand: Operand) -> Test:  # noqa: PLR0911  one branch per operator
    target = operand.text
    lowered = target.lower()
    if op == "!=":
        return lambda v: v is not None and _compare(v, operand) != 0
    if op in (">", ">=", "<", "<="):
        wanted = {">": (1,), ">=": (0, 1), "<": (-1,), "<=": (-1, 0)}[op]
        return lambda v: _compare(v, operand) in wanted
    if op == "^=":
        return lambda v: v is not None and str(v).lower().startswith(lowered)
    if op == "!^=":
        return lambda v: v is not None and not str(v).lower().startswith(lowered)
    if op == "$=":
        return lambda v: v is not None and str(v).lower().endswith(lowered)
    if op == "!$=":
        return lambda v: v is not None and not str(v).lower().endswith(lowered)
    if op == "*=":
        return lambda v: v is not None and lowered in str(v).lower()
    if op == "!*=":
        return lambda v: v is not None and lowered not in str(v).lower()
    if op == "_=":
        return lambda v: v is not None and str(v).lower() == lowered
    try:
        pattern = re.compile(target)
    except re.error:
        raise _IgnoredError from None
    if op == "~":
        return lambda v: v is not None and pattern.search(str(v)) is not None
    return lambda v: v is not None and pattern.search(str(v)) is None  # "!~"


def _leaf(spec: dict[str, Any], now: int) -> tuple[Test | None, tuple[bool, int] | None]:  # noqa: PLR0911, PLR0912  one branch per operator family
    """Compile one leaf into (test, order) where order is (descending, priority)."""
    operation = spec["operation"]
    if isinstance(operation, bool) or not isinstance(operation, str | int | float):
        raise _IgnoredError
    if not isinstance(operation, str):
        operand = _operand(operation, now)
        return (lambda v: _compare(v, operand) == 0), None
    options = _options(spec)
    name = operation.strip()
    keyword = name.lower()
    if keyword == "orderby":
        sort = str((options.get("sort") or ["ASC"])[0]).upper()
        if sort not in ("ASC", "DESC"):
            raise _IgnoredError
        try:
            priority = int((options.get("sortOrder") or [0])[0])
        except (TypeError, ValueError):
            raise _IgnoredError from None
        return None, (sort == "DESC", priority)
    if keyword == "is null":
        return (lambda v: v is None), None
    if keyword == "not null":
        return (lambda v: v is not None), None
    if keyword == "in":
        data = options.get("data")
        if data is None:
            raise _IgnoredError
        operands = [_operand(d, now) for d in data]
        return (lambda v: any(_compare(v, o) == 0 for o in operands)), None
    if keyword in ("or", "and"):
        # Each data value is itself an operation ("> 5", "*= abc", "OPEN").
        data = options.get("data")
        if not data:
            raise _IgnoredError
        parts = [_leaf({"operation": value}, now)[0] for value in data]
        tests = [t for t in parts if t is not None]
        if len(tests) != len(parts):
            raise _IgnoredError
        if keyword == "or":
            return (lambda v: any(t(v) for t in tests)), None
        return (lambda v: all(t(v) for t in tests)), None
    if keyword in ("betweendate", "greaterthandate", "lessthandate", "isdate"):
        return _date_test(keyword, options, now), None
    prefixed = _PREFIX_OPS.match(name)
    if prefixed:
        return _string_test(prefixed.group(1), _operand(prefixed.group(2), now)), None
    operand = _operand(name, now)
    return (lambda v: _compare(v, operand) == 0), None


def _date_test(keyword: str, options: dict[str, list[Any]], now: int) -> Test:
    if keyword == "betweendate":
        start = _date_option(options, "startDate", now)
        end = _date_option(options, "endDate", now)
        return lambda v: (d := _as_date(v)) is not None and start <= d <= end
    moment = _date_option(options, "date", now)
    if keyword == "greaterthandate":
        return lambda v: (d := _as_date(v)) is not None and d > moment
    if keyword == "lessthandate":
        return lambda v: (d := _as_date(v)) is not None and d < moment
    day = moment.date()
    return lambda v: (d := _as_date(v)) is not None and d.astimezone(CENTRAL).date() == day


Path = tuple[str, ...]


def _resolve(typedef: TypeDef, path: Path, obj: Any) -> Any:
    """Follow ``path`` (relations first, a local/scalar property last) to its value."""
    current = obj
    current_type = typedef
    for name in path[:-1]:
        rel = current_type.relational[name]
        current = rel.get(current)
        if current is MISSING or current is None:
            return None
        current_type = TYPES[rel.target]
    last = path[-1]
    getter = current_type.local.get(last) or current_type.scalar_relational[last]
    value = getter(current)
    return None if value is MISSING else value


@dataclass(frozen=True, slots=True)
class CompiledFilter:
    """A filter that SoftLayer would apply: tests plus sort keys."""

    typedef: TypeDef
    tests: tuple[tuple[Path, Test], ...]
    orders: tuple[tuple[Path, bool, int], ...]

    def _sort_key_for(self, path: Path) -> Callable[[Any], tuple[int, Any]]:
        typedef = self.typedef
        return lambda row: _sort_key(_resolve(typedef, path, row))

    def apply(self, rows: Sequence[Any]) -> Sequence[Any]:
        """Filter and sort ``rows`` (returns ``rows`` itself when there is nothing to do)."""
        if not self.tests and not self.orders:
            return rows
        selected: Sequence[Any] = rows
        if self.tests:
            typedef, tests = self.typedef, self.tests
            selected = [
                row
                for row in rows
                if all(test(_resolve(typedef, path, row)) for path, test in tests)
            ]
        # Every simulated list is already in ascending id order, so a lone "id ASC" (what
        # softlayer-python's iter_call adds) needs no sort.
        if self.orders and not (len(self.orders) == 1 and self.orders[0][:2] == (("id",), False)):
            selected = list(selected)
            for path, descending, _ in sorted(self.orders, key=lambda o: -o[2]):
                selected.sort(key=self._sort_key_for(path), reverse=descending)
        return selected


def _sort_key(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, 0)
    moment = _as_date(value)
    if moment is not None:
        return (1, moment.timestamp())
    number = _as_number(value)
    if number is not None:
        return (1, number)
    return (2, str(value))


def compile_filter(
    raw: str | None, root_property: str | None, typedef: TypeDef, now: int
) -> CompiledFilter | None:
    """Compile an ``objectFilter`` query value; None when SoftLayer would ignore it."""
    if not raw or root_property is None:
        return None
    try:
        document = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(document, dict) or not isinstance(document.get(root_property), dict):
        return None
    tests: list[tuple[Path, Test]] = []
    orders: list[tuple[Path, bool, int]] = []
    try:
        _walk(typedef, node=document[root_property], prefix=(), tests=tests, orders=orders, now=now)
    except _IgnoredError:
        return None
    return CompiledFilter(typedef, tuple(tests), tuple(orders))


def _walk(
    typedef: TypeDef,
    *,
    node: dict[str, Any],
    prefix: Path,
    tests: list[tuple[Path, Test]],
    orders: list[tuple[Path, bool, int]],
    now: int,
) -> None:
    for name, spec in node.items():
        if not isinstance(spec, dict):
            raise _IgnoredError
        path = (*prefix, name)
        if "operation" in spec:
            if name not in typedef.local and name not in typedef.scalar_relational:
                raise _IgnoredError
            test, order = _leaf(spec, now)
            if test is not None:
                tests.append((path, test))
            if order is not None:
                orders.append((path, order[0], order[1]))
            continue
        rel = typedef.relational.get(name)
        if rel is None or rel.many:
            raise _IgnoredError
        _walk(TYPES[rel.target], node=spec, prefix=path, tests=tests, orders=orders, now=now)
