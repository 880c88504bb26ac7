"""Logging setup: structlog, JSON off a terminal, console on one, secrets redacted.

Everything goes to stderr (stdout carries the exposition of ``--once``). Standard-library
loggers (aiohttp's) are routed through the same processors, so their lines are JSON too and
pass the same redaction. Redaction is the last line of defence: the code never logs a
:class:`~exporter.config.Secret`'s value on purpose, but a library error message might quote
a header or a URL, so every string value is scrubbed before it is rendered.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, Final, TextIO, cast

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure_logging", "redact", "register_secret"]

LOG_LEVELS: Final = ("debug", "info", "warning", "error")
LOG_FORMATS: Final = ("auto", "json", "console")
REDACTED: Final = "**********"

# Keys whose values are credentials whatever they look like.
_SECRET_KEY: Final = re.compile(
    r"(api_?key|apikey|password|passwd|secret|token|authorization|credential)s?$", re.IGNORECASE
)
# Secret-looking substrings: HTTP auth schemes, URL userinfo, query parameters, and the shapes
# of SoftLayer classic keys (64 hex) and IBM Cloud API keys (44 url-safe base64 characters).
_SECRET_PATTERNS: Final = (
    re.compile(r"(?i)\b((?:basic|bearer)\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)"),
    re.compile(r"(?i)((?:api_?key|access_token|refresh_token|password)=)[^&\s\"']+"),
    re.compile(r"\b[0-9a-fA-F]{64}\b"),
    re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{44}(?![A-Za-z0-9_-])"),
)
# Exact values of the loaded credentials (registered by the CLI after loading the config).
_known_secrets: set[str] = set()
_MIN_KNOWN_SECRET: Final = 4  # shorter values would redact ordinary words


def register_secret(value: str) -> None:
    """Redact every later occurrence of ``value`` in any log line."""
    if len(value) >= _MIN_KNOWN_SECRET:
        _known_secrets.add(value)


def redact(text: str) -> str:
    """Replace known credentials and secret-looking substrings of ``text``."""
    for secret in sorted(_known_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern in _SECRET_PATTERNS:
        if pattern.groups:
            text = pattern.sub(lambda m: (m.group(1) or "") + REDACTED, text)
        else:
            text = pattern.sub(REDACTED, text)
    return text


def _scrub(value: object, key: str | None = None) -> object:
    if key is not None and _SECRET_KEY.search(key) and value is not None:
        return REDACTED
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _scrub(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(v) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    # Anything else (exceptions, objects) is rendered via str() by the renderers: scrub that.
    return redact(str(value))


def _redact_processor(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: scrub every value of the event, including rendered tracebacks."""
    scrubbed: MutableMapping[str, Any] = {}
    for key, value in event_dict.items():
        scrubbed[key] = _scrub(value, key if key != "event" else None)
    return dict(scrubbed)


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time of writing.

    Binding the object found at configuration time would keep writing to a replaced (and
    perhaps closed) stream, e.g. after a test harness swaps stderr.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _use_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    return not (hasattr(stream, "isatty") and stream.isatty())


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog and the standard library's logging once, at startup.

    Args:
        level: one of :data:`LOG_LEVELS`; lower events are dropped before any processing.
        fmt: ``json``, ``console`` or ``auto`` (JSON unless ``stream`` is a terminal).
        stream: where lines go, default stderr.

    """
    if level not in LOG_LEVELS:
        msg = f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}"
        raise ValueError(msg)
    if fmt not in LOG_FORMATS:
        msg = f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}"
        raise ValueError(msg)
    out: TextIO = cast("TextIO", _Stderr()) if stream is None else stream
    numeric = logging.getLevelNamesMapping()[level.upper()]
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor
    tail: Iterable[Processor]
    if _use_json(fmt, out):
        # No locals in tracebacks: a frame's locals may hold a revealed credential.
        tail = (
            structlog.processors.ExceptionRenderer(
                structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
            ),
            _redact_processor,
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        tail = (structlog.processors.format_exc_info, _redact_processor)
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # aiohttp and asyncio log through the standard library: same format, same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                *tail,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(max(numeric, logging.INFO))
    # The access log is off (one line per scrape is noise); keep aiohttp's errors.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
