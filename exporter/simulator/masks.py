"""objectMask parsing and projection, following SoftLayer's rules.

Accepted forms (all whitespace- and newline-tolerant): ``mask[a,b[c]]``, ``mask(Type)[...]``,
``filteredMask[...]``, a bare ``[a,b]``, per-property casts ``resource(Type)[...]``, dotted
paths (``mask.a.b``, ``mask[a.b]``) and the legacy semicolon list ``a;b.c;d``.

Projection rule (SLDN rest.md): naming any local property at a level keeps only the named
local properties there; naming only relational properties keeps every local property. A
relational property appears only when it is masked. With ``filteredMask`` the request's
objectFilter also filters the masked list relations of the root object (SLDN object-masks.md).
An unknown property is an HTTP 500
``SoftLayer_Exception_WebService_ObjectMask``; a syntax error is
``SoftLayer_Exception_Common_Parser``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from exporter.simulator.model import MISSING, TYPES, TypeDef

#: A parsed mask: property name -> sub-mask (empty dict = no sub-selection), in mask order.
Mask = dict[str, "Mask"]


class MaskError(Exception):
    """A mask SoftLayer would reject; ``code`` is the exception class it names."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _is_name_char(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def error(self, expected: str) -> MaskError:
        line = self.text.count("\n", 0, self.pos) + 1
        column = self.pos - (self.text.rfind("\n", 0, self.pos) + 1) + 1
        got = self.text[self.pos] if self.pos < len(self.text) else "end of input"
        return MaskError(
            "SoftLayer_Exception_Common_Parser",
            f"Error on line {line} at column {column}: Expected {expected}, got '{got}'",
        )

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def peek(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, ch: str, what: str) -> None:
        if self.peek() != ch:
            raise self.error(what)
        self.pos += 1

    def name(self) -> str:
        self.skip_ws()
        start = self.pos
        while self.pos < len(self.text) and _is_name_char(self.text[self.pos]):
            self.pos += 1
        if start == self.pos or self.text[start].isdigit():
            self.pos = start
            raise self.error("PROPERTY")
        return self.text[start : self.pos]

    def maybe_cast(self) -> None:
        if self.peek() == "(":
            self.pos += 1
            self.name()
            self.expect(")", "')'")

    def root(self) -> Mask:
        self.skip_ws()
        result: Mask = {}
        if not self.text.strip():
            return result
        for keyword in ("filteredMask", "mask"):
            if self.text.startswith(keyword, self.pos):
                after = self.pos + len(keyword)
                if after == len(self.text) or not _is_name_char(self.text[after]):
                    self.pos = after
                    self.maybe_cast()
                    nxt = self.peek()
                    if nxt == "[":
                        self.pos += 1
                        result = self.prop_list("]")
                        self.expect("]", "']'")
                    elif nxt == ".":
                        self.pos += 1
                        result = self.prop_list("")
                    else:
                        raise self.error("'['")
                    break
        else:
            if self.peek() == "[":
                self.pos += 1
                result = self.prop_list("]")
                self.expect("]", "']'")
            else:
                result = self.prop_list("")
        if self.peek() != "":
            raise self.error("end of mask")
        return result

    def prop_list(self, closer: str) -> Mask:
        result: Mask = {}
        direct: set[str] = set()
        if self.peek() == closer and closer:
            return result
        while True:
            name, sub, dotted = self.item()
            if name in direct and not dotted:
                raise MaskError(
                    "SoftLayer_Exception_WebService_ObjectMask",
                    f"Property '{name}' has already been defined.",
                )
            if not dotted:
                direct.add(name)
            _merge(result, name, sub)
            if self.peek() in (",", ";"):
                self.pos += 1
                continue
            return result

    def item(self) -> tuple[str, Mask, bool]:
        name = self.name()
        self.maybe_cast()
        nxt = self.peek()
        if nxt == ".":
            self.pos += 1
            child, sub, _ = self.item()
            return name, {child: sub}, True
        if nxt == "[":
            self.pos += 1
            sub = self.prop_list("]")
            self.expect("]", "']'")
            return name, sub, False
        return name, {}, False


def _merge(target: Mask, name: str, sub: Mask) -> None:
    existing = target.get(name)
    if existing is None:
        target[name] = dict(sub)
        return
    for key, value in sub.items():
        _merge(existing, key, value)


def parse_mask(text: str | None) -> Mask:
    """Parse an objectMask string; an empty or missing mask is ``{}`` (no mask)."""
    if text is None:
        return {}
    return _Parser(text).root()


def validate(typedef: TypeDef, mask: Mask) -> None:
    """Raise :class:`MaskError` for any property the datatype does not have."""
    for name, sub in mask.items():
        if name in typedef.local or name in typedef.scalar_relational:
            if sub:
                first = next(iter(sub))
                raise MaskError(
                    "SoftLayer_Exception_WebService_ObjectMask",
                    f"Property '{first}' not valid for '{typedef.name}::{name}'.",
                )
            continue
        rel = typedef.relational.get(name)
        if rel is None:
            raise MaskError(
                "SoftLayer_Exception_WebService_ObjectMask",
                f"Property '{name}' not valid for '{typedef.name}'.",
            )
        if sub:
            validate(TYPES[rel.target], sub)


def is_filtered_mask(text: str | None) -> bool:
    """Whether the mask is a ``filteredMask`` (objectFilter then applies to relations)."""
    return text is not None and text.lstrip().startswith("filteredMask")


def project(  # noqa: PLR0912  the projection rule has that many cases
    typedef: TypeDef,
    obj: Any,
    mask: Mask,
    relation_filters: Mapping[str, Callable[[Sequence[Any]], Sequence[Any]]] | None = None,
) -> dict[str, Any]:
    """Render one object as SoftLayer would for this (already validated) mask.

    ``relation_filters`` (from a ``filteredMask``) filter this level's list relations.
    """
    selected = [name for name in mask if name in typedef.local]
    out: dict[str, Any] = {}
    for name in selected or typedef.local:
        value = typedef.local[name](obj)
        if value is not MISSING:
            out[name] = value
    for name in typedef.always:
        if name not in out:
            value = typedef.local[name](obj)
            if value is not MISSING:
                out[name] = value
    for name, sub in mask.items():
        scalar = typedef.scalar_relational.get(name)
        if scalar is not None:
            value = scalar(obj)
            if value is not MISSING:
                out[name] = value
            continue
        rel = typedef.relational.get(name)
        if rel is None:
            continue
        value = rel.get(obj)
        if value is MISSING:
            continue
        target = TYPES[rel.target]
        if rel.many:
            if relation_filters and name in relation_filters:
                value = relation_filters[name](value)
            out[name] = [project(target, element, sub) for element in value]
        elif value is None:
            out[name] = None
        else:
            out[name] = project(target, value, sub)
    return out
