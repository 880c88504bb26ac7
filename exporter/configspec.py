"""Declaring a configuration setting once: its key, default, bounds and kind.

A record field of :mod:`exporter.config` is declared with :func:`setting`, which stores a
:class:`Setting` in the field's metadata. Everything else reads that one declaration:

- the YAML loader takes the key, parses the value by its :class:`Kind` and holds it to the
  declared range (``low``..``high``: what a configuration file may set);
- building a record anywhere (the loader, ``--demo``, tests, benchmarks) checks the kind's
  invariant, the part code relies on: durations finite, non-negative and at most 100 years
  (positive where zero makes no sense), rates and ratios positive and finite, counts at
  least one, fractions within 0..1, amounts finite and non-negative. Tests may poll a
  simulator faster than a file may poll SoftLayer, so the invariant is wider than the file
  range, never narrower; consumers need not clamp anything the invariant covers.

Messages name the key and quote an offending value only through :func:`show`, which
shortens it and withholds anything that might be a credential.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import Enum
from typing import Any, Final

from exporter.yamlsafe import InvalidScalar

__all__ = [
    "DAY",
    "HOUR",
    "MAX_DURATION_SECONDS",
    "MINUTE",
    "SECOND",
    "YEAR",
    "ConfigError",
    "Kind",
    "RecordError",
    "Setting",
    "check_settings",
    "describe",
    "format_seconds",
    "may_be_secret",
    "parse_duration",
    "parse_setting",
    "section",
    "section_key",
    "setting",
    "setting_of",
    "show",
    "type_name",
]

SECOND: Final = 1.0
MINUTE: Final = 60.0
HOUR: Final = 3600.0
DAY: Final = 86400.0
YEAR: Final = 365 * DAY
#: No duration anywhere may exceed this: past it, ``time.time() + interval`` and
#: ``datetime - timedelta`` stop being meaningful (and soon overflow).
MAX_DURATION_SECONDS: Final = 100 * YEAR

_UNIT_MS: Final = {
    "ms": 1,
    "s": 1000,
    "m": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
    "w": 7 * 86_400_000,
    "y": 365 * 86_400_000,
}
_DURATION_PART: Final = re.compile(r"(\d+)(ms|s|m|h|d|w|y)")
_DURATION: Final = re.compile(r"(?:\d+(?:ms|s|m|h|d|w|y))+")
#: More digits than any duration up to 100 years needs, even in milliseconds.
_MAX_DURATION_DIGITS: Final = 13
_MAX_SHOWN: Final = 60  # characters of an offending value quoted back in a message
_SETTING: Final = "exporter.setting"
_SECTION: Final = "exporter.section"


class ConfigError(ValueError):
    """The configuration is invalid; ``problems`` lists every problem, path-qualified.

    Messages name the offending key and may quote a non-secret offending value (shortened);
    they never contain a credential.
    """

    def __init__(self, problems: list[str], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        header = f"invalid config file {source}:" if source else "invalid config:"
        super().__init__("\n".join([header, *(f"  - {p}" for p in self.problems)]))


class RecordError(ConfigError):
    """A record was built with values its invariants refuse; ``items`` are (attribute, problem).

    The loader re-reports each item under the attribute's configuration key path.
    """

    def __init__(self, record: str, items: list[tuple[str, str]]) -> None:
        self.record = record
        self.items = list(items)
        super().__init__([f"{record}.{attr}: {problem}" for attr, problem in items])


class Kind(Enum):
    """What a setting holds; decides how a file writes it and what code may rely on."""

    DURATION = "duration"  # a duration string in files, float seconds in records
    FRACTION = "fraction"  # a number within 0..1
    RATE = "rate"  # a positive number (per second)
    RATIO = "ratio"  # a positive number
    COUNT = "count"  # an integer >= 1
    USD = "usd"  # an amount: number or decimal string in files, Decimal in records


@dataclass(frozen=True, slots=True)
class Setting:
    """One configuration key: where it is written and which values a file may give it.

    ``nullable``: ``null`` in the file (``None`` in the record) is allowed and means what the
    field's documentation says (an alert disabled, the global value inherited).
    """

    key: str
    kind: Kind
    low: float
    high: float
    low_exclusive: bool = False
    nullable: bool = False

    def file_range(self) -> str:
        """Describe the file range in words, e.g. ``> 0 and <= 50``."""
        low = f"> {self.low:g}" if self.low_exclusive else f">= {self.low:g}"
        return f"{low} and <= {self.high:g}"


def setting(
    key: str,
    kind: Kind,
    default: Any,
    *,
    low: float,
    high: float,
    low_exclusive: bool = False,
    nullable: bool = False,
) -> Any:
    """Declare a record field as the configuration key ``key`` (the field's only declaration)."""
    spec = Setting(key, kind, low, high, low_exclusive, nullable)
    return dataclasses.field(default=default, metadata={_SETTING: spec})


def section(key: str, factory: Callable[[], Any]) -> Any:
    """Declare a record field holding a nested record, written as the mapping ``key``."""
    return dataclasses.field(default_factory=factory, metadata={_SECTION: key})


def setting_of(field: dataclasses.Field[Any]) -> Setting | None:
    """Return the declaration of a field made with :func:`setting`, else None."""
    spec = field.metadata.get(_SETTING)
    return spec if isinstance(spec, Setting) else None


def section_key(field: dataclasses.Field[Any]) -> str | None:
    """Return the key of a field made with :func:`section`, else None."""
    key = field.metadata.get(_SECTION)
    return key if isinstance(key, str) else None


# --------------------------------------------------------------------------------------------
# Records: the kind's invariant, checked whenever a record is built.
# --------------------------------------------------------------------------------------------


def check_settings(record: Any) -> list[tuple[str, str]]:
    """Check and normalise every declared field of a record being built (in ``__post_init__``).

    Integers given for float settings become floats. Returns (attribute, problem) pairs.
    """
    problems: list[tuple[str, str]] = []
    for field in dataclasses.fields(record):
        spec = setting_of(field)
        if spec is None:
            continue
        value = getattr(record, field.name)
        if value is None and spec.nullable:
            continue
        normal, problem = _invariant(spec, value)
        if problem is not None:
            problems.append((field.name, problem))
        elif normal is not value:
            object.__setattr__(record, field.name, normal)
    return problems


def _invariant(spec: Setting, value: object) -> tuple[object, str | None]:
    if spec.kind is Kind.COUNT:
        if isinstance(value, bool) or not isinstance(value, int):
            return value, f"must be an integer, got {type_name(value)}"
        return value, None if value >= 1 else f"must be >= 1, got {show(value)}"
    if spec.kind is Kind.USD:
        if not isinstance(value, Decimal):
            return value, f"must be a Decimal, got {type_name(value)}"
        ok = value.is_finite() and value >= 0
        return value, None if ok else f"must be a finite amount >= 0, got {show(value)}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return value, f"must be a number, got {type_name(value)}"
    number = float(value)
    if spec.kind is Kind.DURATION:
        low_ok = number > 0 if spec.low > 0 else number >= 0
        ok = low_ok and number <= MAX_DURATION_SECONDS
        bound = "> 0" if spec.low > 0 else ">= 0"
        problem = f"must be {bound} and <= {MAX_DURATION_SECONDS:g} seconds (100y)"
    elif spec.kind is Kind.FRACTION:
        ok, problem = 0 <= number <= 1, "must be >= 0 and <= 1"
    else:  # RATE, RATIO
        ok, problem = 0 < number < math.inf, "must be > 0 and finite"
    return number, None if ok else f"{problem}, got {show(value)}"


# --------------------------------------------------------------------------------------------
# Files: parse a raw YAML value by kind and hold it to the declared range.
# --------------------------------------------------------------------------------------------


def parse_setting(spec: Setting, value: object) -> tuple[Any, str | None]:
    """Turn a raw YAML value into the record's value; return (value, problem or None)."""
    if value is None:
        if spec.nullable:
            return None, None
        return None, f"must not be null ({_expected(spec)})"
    if spec.kind is Kind.DURATION:
        return _file_duration(spec, value)
    if spec.kind is Kind.COUNT:
        return _file_count(spec, value)
    if spec.kind is Kind.USD:
        return _file_usd(spec, value)
    return _file_number(spec, value)


def _expected(spec: Setting) -> str:
    return {
        Kind.DURATION: "a duration like 30s, 15m, 90d",
        Kind.COUNT: "an integer",
        Kind.USD: "an amount in USD",
    }.get(spec.kind, "a number")


def _file_duration(spec: Setting, value: object) -> tuple[float | None, str | None]:
    if not isinstance(value, str):
        return None, f"must be a duration like 30s, 15m, 90d, got {describe(value)}"
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        return None, str(err)
    if seconds < spec.low or (spec.low_exclusive and seconds == spec.low):
        return None, f"must be at least {format_seconds(spec.low)}, got {_clip(value)}"
    if seconds > spec.high:
        return None, f"must be at most {format_seconds(spec.high)}, got {_clip(value)}"
    return seconds, None


def _file_count(spec: Setting, value: object) -> tuple[int | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int):
        return None, f"must be an integer, got {describe(value)}"
    if not spec.low <= value <= spec.high:
        return None, f"must be between {spec.low:g} and {spec.high:g}, got {show(value)}"
    return value, None


def _file_number(spec: Setting, value: object) -> tuple[float | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"must be a number, got {describe(value)}"
    low_ok = value > spec.low if spec.low_exclusive else value >= spec.low
    # NaN fails both comparisons, so it is refused with the range.
    if not (low_ok and value <= spec.high):
        return None, f"must be {spec.file_range()}, got {show(value)}"
    return float(value), None


def _file_usd(spec: Setting, value: object) -> tuple[Decimal | None, str | None]:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, f"must be an amount in USD, got {describe(value)}"
    try:
        # str() first: a YAML float 0.1 must become Decimal("0.1"), not its binary expansion.
        amount = Decimal(str(value).strip())
    except InvalidOperation:
        return None, f"must be an amount in USD, got {show(value)}"
    if not (amount.is_finite() and spec.low <= amount <= Decimal(str(spec.high))):
        return None, f"must be a finite amount >= 0 and <= {spec.high:.0f}, got {show(value)}"
    return amount, None


# --------------------------------------------------------------------------------------------
# Durations and messages.
# --------------------------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """Parse a Prometheus-style duration (``30s``, ``15m``, ``1h30m``, ``90d``) into seconds.

    Durations beyond 100 years are refused (and so are numbers too long to be one), so the
    result is always a finite, exact-enough float.

    Raises:
        ValueError: the text is not such a duration, or is longer than 100 years.

    """
    if not _DURATION.fullmatch(text):
        msg = f"invalid duration {show(text)} (use a number with a unit: 30s, 15m, 2h, 90d)"
        raise ValueError(msg)
    too_long = f"invalid duration {show(text)}: longer than 100y"
    total_ms = 0
    for digits, unit in _DURATION_PART.findall(text):
        # Checked before int(): a 400-digit number would not even fit a float.
        if len(digits.lstrip("0")) > _MAX_DURATION_DIGITS:
            raise ValueError(too_long)
        total_ms += int(digits) * _UNIT_MS[unit]
        if total_ms > MAX_DURATION_SECONDS * 1000:
            raise ValueError(too_long)
    return total_ms / 1000


def format_seconds(seconds: float) -> str:
    """Write seconds in the largest whole unit: ``86400`` -> ``1d``, ``0.001`` -> ``1ms``."""
    for unit in ("y", "d", "h", "m", "s"):
        size = _UNIT_MS[unit] / 1000
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    if seconds * 1000 == int(seconds * 1000):
        return f"{int(seconds * 1000)}ms"
    return f"{seconds:g}s"


#: What a classic API key (64 hex digits) or an IBM Cloud API key (44 characters of
#: letters, digits, ``-`` and ``_``) looks like: long, no spaces or slashes, several digits
#: and lower-case letters mixed. A path, a variable name, a word or a number does not.
_SECRET_LIKE: Final = re.compile(r"(?=(?:.*[0-9]){3})(?=(?:.*[a-z]){3})[^\s/]{20,}")


def may_be_secret(text: str) -> bool:
    """Tell whether a string might be a pasted credential, so that it must not be echoed."""
    return _SECRET_LIKE.fullmatch(text) is not None


def show(value: object) -> str:
    """Quote a (non-secret) offending value for an error message, shortened.

    Strings that look like a credential are withheld (a key pasted under the wrong key
    must not end up in a log); containers are described, never printed (an alias bomb
    would print for ever); huge integers are described by size.
    """
    if isinstance(value, InvalidScalar):
        text = value.describe()
    elif isinstance(value, str):
        secret = may_be_secret(value)
        hidden = f"(a string of {len(value)} characters, not shown: it may be a credential)"
        text = hidden if secret else _clip(repr(value))
    elif isinstance(value, bool):
        text = "true" if value else "false"
    elif value is None:
        text = "null"
    elif isinstance(value, int):
        huge = value.bit_length() > 64
        text = f"(an integer of {value.bit_length()} bits)" if huge else str(value)
    elif isinstance(value, float | Decimal):
        text = _clip(str(value))
    else:
        text = f"({type_name(value)})"
    return text


def _clip(text: str) -> str:
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def describe(value: object) -> str:
    """Describe an offending value for "got ...": its type and, for a scalar, :func:`show`."""
    if isinstance(value, InvalidScalar):
        return value.describe()
    if value is None or not isinstance(value, str | int | float | Decimal):
        return type_name(value)
    return f"{type_name(value)} {show(value)}"


def type_name(value: object) -> str:
    """Name a YAML value's type the way the YAML file's author thinks of it."""
    if value is None:
        return "null"
    if isinstance(value, InvalidScalar):
        return "invalid value"
    return {
        bool: "boolean",
        int: "integer",
        float: "number",
        str: "string",
        list: "list",
        dict: "mapping",
    }.get(type(value), type(value).__name__)
