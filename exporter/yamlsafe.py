"""Bounded reading of operator-supplied files: YAML documents and small secret files.

Everything an operator hands the exporter at start-up goes through here, so that no input,
however odd, ends in a traceback, a hang or a message that quotes a value:

- files are read up to a size bound (``/dev/zero`` or a mistyped log file is refused, not
  read for ever);
- YAML is parsed with PyYAML's safe loader, nesting bounded (20,000 nested lists would
  otherwise end in a ``RecursionError``), duplicate keys refused (PyYAML silently keeps the
  last one; Go's yaml.v2 ``UnmarshalStrict``, used by Prometheus, refuses them);
- a scalar that its tag cannot construct (``!!float abc``, ``!!int 12x``, ``!!timestamp
  2024-13-45``, an integer beyond Python's 4,300-digit limit) never raises a bare
  ``ValueError`` that would quote it: it becomes an :class:`InvalidScalar`, which carries
  where it was and which tag, not the text, so the caller can report it under its key path.

The configuration loader uses this module; the web configuration may reuse it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

__all__ = [
    "MAX_DEPTH",
    "MAX_INT_BITS",
    "MAX_YAML_BYTES",
    "InputError",
    "InvalidScalar",
    "load_yaml",
    "read_bounded",
]

#: Larger than any sensible configuration by two orders of magnitude.
MAX_YAML_BYTES: Final = 1024 * 1024
#: The configuration nests six levels deep; no valid input needs more than a few.
MAX_DEPTH: Final = 32
#: Integers past 2**64 are never a meaningful setting, and past Python's 4,300-digit limit
#: (reachable with hexadecimal YAML integers) they cannot even be printed.
MAX_INT_BITS: Final = 64


class InputError(ValueError):
    """A file could not be read or parsed; the message names no value from the file."""


class InvalidScalar:
    """A scalar its YAML tag could not construct; the text itself is deliberately not kept."""

    __slots__ = ("column", "line", "problem", "tag")

    def __init__(self, tag: str, line: int, column: int, problem: str = "invalid") -> None:
        self.tag = tag
        self.line = line
        self.column = column
        self.problem = problem

    def describe(self) -> str:
        """Say what it is and where, without the value: ``an invalid !!float value (line 3)``."""
        article = "an" if self.problem[0] in "aeiou" else "a"
        where = f"line {self.line}, column {self.column}"
        return f"{article} {self.problem} {_short_tag(self.tag)} value ({where})"

    def __repr__(self) -> str:
        return f"<{self.describe()}>"


def _short_tag(tag: str) -> str:
    prefix = "tag:yaml.org,2002:"
    return "!!" + tag[len(prefix) :] if tag.startswith(prefix) else tag


def read_bounded(path: str | os.PathLike[str], limit: int) -> bytes:
    """Read at most ``limit`` bytes of a file; a longer file raises :class:`InputError`.

    Reading ``limit + 1`` bytes is what tells a file of exactly ``limit`` bytes from a longer
    one without trusting ``st_size`` (0 for ``/dev/zero``, ``/proc`` files and pipes).

    Raises:
        FileNotFoundError, IsADirectoryError, PermissionError, OSError: as ``open`` raises them.
        InputError: the file is longer than ``limit`` bytes.

    """
    with Path(path).open("rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        msg = f"larger than {_size(limit)}"
        raise InputError(msg)
    return data


def _size(limit: int) -> str:
    return f"{limit // 1024} KiB" if limit % 1024 == 0 else f"{limit} bytes"


def load_yaml(text: str, *, max_depth: int = MAX_DEPTH) -> object:
    """Parse one YAML document with the safe loader, nesting and constructors bounded.

    Raises:
        InputError: the text is not YAML, nests deeper than ``max_depth``, has a duplicate
            mapping key, or holds several documents. The message gives line and column.

    """
    try:
        # The reader checks the whole text for unprintable characters right here.
        loader = _BoundedLoader(text, max_depth)
    except yaml.YAMLError as err:
        raise InputError(_yaml_message(err)) from None
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        raise InputError(_yaml_message(err)) from None
    finally:
        loader.dispose()


def _yaml_message(err: yaml.YAMLError) -> str:
    if isinstance(err, yaml.reader.ReaderError):
        # Its text would quote the character; the code point and offset are enough.
        code = err.character if isinstance(err.character, int) else -1
        return f"invalid YAML: unacceptable character #x{code:04x} at offset {err.position}"
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    problem = getattr(err, "problem", None) or "syntax error"
    return f"{where}invalid YAML: {problem}"


class _BoundedLoader(yaml.SafeLoader):
    """PyYAML's safe loader with nesting bounded, duplicate keys refused, bad scalars kept."""

    def __init__(self, stream: str, max_depth: int) -> None:
        super().__init__(stream)
        self._max_depth = max_depth
        self._depth = 0

    def compose_node(self, parent: Node | None, index: int) -> Node | None:
        # The composer recurses once per nesting level: bound it before Python's stack does.
        self._depth += 1
        try:
            if self._depth > self._max_depth:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise ConstructorError(
                    None, None, f"nesting deeper than {self._max_depth} levels", event.start_mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        if not isinstance(node, ScalarNode):
            return super().construct_object(node, deep=deep)
        try:
            value = super().construct_object(node, deep=deep)
        except ConstructorError:
            # Unknown tags (!!python/object ...) stay errors: they are not data at all.
            if node.tag in _DATA_SCALAR_TAGS:
                return self._invalid(node)
            raise
        except (ValueError, TypeError, AttributeError, KeyError, IndexError, OverflowError):
            # float("abc"), int("1" * 5000), a timestamp regex that did not match, a
            # !!bool that is no boolean: the message would quote the text, so drop it.
            return self._invalid(node)
        if isinstance(value, int) and value.bit_length() > MAX_INT_BITS:
            return self._invalid(node, "out-of-range")
        return value

    def _invalid(self, node: Node, problem: str = "invalid") -> InvalidScalar:
        # A failed construction left the node marked as "in progress"; cache the
        # replacement like any constructed value so that aliases to it agree.
        self.recursive_objects.pop(node, None)
        mark = node.start_mark
        value = InvalidScalar(node.tag, mark.line + 1, mark.column + 1, problem)
        self.constructed_objects[node] = value
        return value

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        # Checked before PyYAML flattens merge keys (<<), whose keys may be overridden.
        seen: dict[object, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node)
            if key in seen:
                first = seen[key]
                raise ConstructorError(
                    None,
                    None,
                    f"duplicate key {_quote_key(key)} (first on line {first})",
                    key_node.start_mark,
                )
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def _quote_key(key: object) -> str:
    text = repr(key) if isinstance(key, str | int | float | bool) else type(key).__name__
    return text if len(text) <= 40 else text[:37] + "..."


_DATA_SCALAR_TAGS: Final = frozenset(
    "tag:yaml.org,2002:" + name
    for name in ("null", "bool", "int", "float", "binary", "timestamp", "str")
)
