"""What /metrics serves: the exposition in a negotiated format, rendered ahead of the scrape.

The server asks :class:`Exposition` for bytes in one of a fixed set of formats
(:class:`Format` x gzip or not: four cache entries at most, whatever clients send), and
never renders anything itself. The exposition is assembled from three parts that change at
very different rates, each rendered only when its own inputs change:

- the **snapshot part** (billing, health, thresholds, build info:
  :class:`~exporter.metrics.SnapshotCollector`): changes once per published poll or
  configuration reload, and costs tens of milliseconds of CPU for a few thousand series;
- the **API part** (:class:`~exporter.api_stats.ApiStats`): changes on every SoftLayer
  request while a poll runs, rendered at most every :data:`API_REFRESH_INTERVAL`;
- the **process part** (``process_*``): changes all the time, costs a fraction of a
  millisecond, rendered on the scrape that finds it older than :data:`PROCESS_MAX_AGE`.

The first two are rendered by a background task (:meth:`Exposition.run`) in a worker thread,
so no scrape waits for them and the event loop (the poller, other scrapes) keeps running
while they render: a scrape serves the latest completed rendering. A change is picked up
within :data:`REFRESH_INTERVAL`, plus the render time; :meth:`Exposition.refreshed` waits for
it (tests, and /readyz for the first poll).

gzip without re-compressing: each part is compressed once, on its own, as raw deflate ended
by a sync flush (byte-aligned, not final). A gzip body is a fixed header, the parts'
segments one after the other, a constant final block and the trailer (CRC-32 continued over
the parts, total length), so appending a fresh process part costs compressing one kilobyte.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import enum
import re
import struct
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from prometheus_client import ProcessCollector
from prometheus_client.core import Metric
from prometheus_client.exposition import generate_latest as generate_text
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.api_stats import ApiStats
from exporter.config import Config
from exporter.metrics import SnapshotCollector, track_accounts
from exporter.snapshot import ExporterState

__all__ = [
    "API_REFRESH_INTERVAL",
    "PROCESS_MAX_AGE",
    "REFRESH_INTERVAL",
    "Exposition",
    "Format",
    "negotiate",
]

#: How often the background task looks for a published poll or moved API counters.
REFRESH_INTERVAL: Final = 0.25
#: How often, at most, moving API counters are rendered again (they move with every
#: request of a poll; a scrape is served counters at most this much older).
API_REFRESH_INTERVAL: Final = 1.0
#: How old the ``process_*`` metrics in a served body may get.
PROCESS_MAX_AGE: Final = 1.0
#: zlib's default level: a third of level 9's CPU for 4 % more bytes on this exposition.
GZIP_LEVEL: Final = 6
#: Media ranges looked at per Accept header; a real client sends a handful.
MAX_MEDIA_RANGES: Final = 32

_OPENMETRICS_EOF: Final = b"# EOF\n"
_QVALUE: Final = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")


class Format(enum.Enum):
    """The exposition formats served; the value is the exact Content-Type sent."""

    TEXT = "text/plain; version=0.0.4; charset=utf-8"
    OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"

    @property
    def content_type(self) -> str:
        """The Content-Type header of a response in this format."""
        return self.value


# Which (type/subtype, version parameter) pairs each format satisfies. Only versions we
# really produce: a request for OpenMetrics version 999 does not get 1.0.0 labelled as 999,
# it falls through to the next acceptable range (in the end, the text format).
_ACCEPTED_VERSIONS: Final = {
    "application/openmetrics-text": (Format.OPENMETRICS, frozenset({"", "1.0.0"})),
    "text/plain": (Format.TEXT, frozenset({"", "0.0.4"})),
}


def negotiate(accept: str, accept_encoding: str) -> tuple[Format, bool]:
    """Pick the format and whether to gzip, from the request's headers; never raises.

    The highest-``q`` media range we can serve wins (the first one on a tie, which is
    Prometheus' order of preference); ``q=0`` means "not this one". Anything unusable,
    malformed or absent falls back to the text format, as Go's ``expfmt.Negotiate`` does.
    """
    best, best_q = Format.TEXT, 0.0
    for media_range in accept.split(",", MAX_MEDIA_RANGES)[:MAX_MEDIA_RANGES]:
        kind, _, params = media_range.partition(";")
        accepted = _ACCEPTED_VERSIONS.get(kind.strip().lower())
        if accepted is None:
            continue  # ranges we cannot serve are not even parsed further
        version, q = _parameters(params)
        if q is not None and q > best_q and version in accepted[1]:
            best, best_q = accepted[0], q
            if q == 1.0:
                break  # nothing later can beat it: Prometheus' first range decides
    return best, _gzip_accepted(accept_encoding)


def _parameters(text: str) -> tuple[str, float | None]:
    """Return a media range's ``version`` ("" when absent) and ``q`` weight (see _quality)."""
    version, q = "", "1"
    for parameter in text.split(";") if text else ():
        name, _, value = parameter.partition("=")
        name = name.strip().lower()
        if name == "version":
            version = value.strip().strip('"')
        elif name == "q":
            q = value.strip()
    return version, _quality(q)


def _quality(text: str) -> float | None:
    """Return the ``q`` weight in 0..1, or None when the text is not a valid one."""
    # RFC 9110 qvalue: "0" or "1" with up to three decimals; nothing else is a weight.
    return float(text) if _QVALUE.fullmatch(text) else None


def _gzip_accepted(accept_encoding: str) -> bool:
    """Tell whether gzip is acceptable: listed with q > 0, or covered by ``*`` with q > 0."""
    wildcard = 0.0
    for coding in accept_encoding.split(",", MAX_MEDIA_RANGES)[:MAX_MEDIA_RANGES]:
        name, _, params = coding.partition(";")
        name = name.strip().lower()
        if name in ("gzip", "x-gzip", "*"):
            q = _parameters(params)[1] or 0.0
            if name != "*":
                return q > 0.0  # an explicit entry decides, "*" only covers what is unlisted
            wildcard = q
    return wildcard > 0.0


@dataclass(frozen=True, slots=True)
class _Part:
    """One part of the exposition in one format, plain and as a raw deflate segment."""

    text: bytes
    crc: int  # CRC-32 of text, the start of the body's running CRC when this part leads
    deflated: bytes  # raw deflate of text ending in a sync flush: byte-aligned, not final

    @classmethod
    def of(cls, text: bytes) -> _Part:
        compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
        deflated = compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return cls(text, zlib.crc32(text), deflated)


def _final_block(text: bytes) -> bytes:
    compressor = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(text) + compressor.flush(zlib.Z_FINISH)


#: gzip member header (RFC 1952): deflate, no flags, no mtime, OS unknown.
_GZIP_HEADER: Final = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
_END: Final = {Format.TEXT: b"", Format.OPENMETRICS: _OPENMETRICS_EOF}
_FINAL_BLOCK: Final = {fmt: _final_block(end) for fmt, end in _END.items()}


def _assemble(fmt: Format, zipped: bool, parts: Sequence[_Part]) -> bytes:
    end = _END[fmt]
    if not zipped:
        return b"".join([*(part.text for part in parts), end])
    crc = parts[0].crc if parts else 0
    for part in parts[1:]:
        crc = zlib.crc32(part.text, crc)
    crc = zlib.crc32(end, crc)
    size = sum(len(part.text) for part in parts) + len(end)
    trailer = struct.pack("<II", crc, size & 0xFFFFFFFF)
    return b"".join([_GZIP_HEADER, *(part.deflated for part in parts), _FINAL_BLOCK[fmt], trailer])


class _Families(Collector):
    """Already collected families, for prometheus-client's encoders."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _encode(fmt: Format, families: Iterable[Metric]) -> bytes:
    source = _Families(families)
    if fmt is Format.TEXT:
        return generate_text(source)
    body: bytes = generate_openmetrics(source)  # type: ignore[no-untyped-call]
    # Each part is a fragment; the assembled body ends with the one "# EOF".
    return body.removesuffix(_OPENMETRICS_EOF)


def _render(collector: Collector) -> dict[Format, _Part]:
    families = list(collector.collect())  # collected once, encoded once per format
    return {fmt: _Part.of(_encode(fmt, families)) for fmt in Format}


@dataclass(frozen=True, slots=True)
class _Rendered:
    """A part rendered in every format, what it was rendered from, and when."""

    inputs: tuple[object, ...]
    parts: Mapping[Format, _Part]
    at: float

    def serves(self, inputs: tuple[object, ...]) -> bool:
        # Identity first: a published snapshot mapping is a new object, so `is` settles it
        # without comparing every snapshot field.
        return all(a is b or a == b for a, b in zip(inputs, self.inputs, strict=True))


class Exposition:
    """The /metrics bytes of one exporter: rendered ahead, cached per format, never stale long.

    Run :meth:`run` as a background task for as long as it serves (the server does, for
    the application's lifetime); :meth:`body` answers a scrape.
    """

    def __init__(
        self,
        state: ExporterState,
        api_stats: ApiStats,
        config: Config,
        *,
        process_metrics: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._state = state
        self._api_stats = api_stats
        self._clock = clock
        self._collector = self._snapshot_collector(config)
        self._process = ProcessCollector(registry=None) if process_metrics else None
        self._snapshot: _Rendered | None = None
        self._api: _Rendered | None = None
        self._process_parts: dict[Format, tuple[float, _Part]] = {}
        self._bodies: dict[tuple[Format, bool], tuple[tuple[_Part, ...], bytes]] = {}
        self._ready_after_first_cycle = False
        #: Renders made so far, by part: "snapshot", "api" (every format at once), "process".
        self.renders: collections.Counter[str] = collections.Counter()
        self._render_lock = asyncio.Lock()
        self._kick = asyncio.Event()

    def _snapshot_collector(self, config: Config) -> SnapshotCollector:
        track_accounts(self._api_stats, config)
        # The API families are the API part's, not rendered again with the snapshots.
        return SnapshotCollector(self._state, None, config)

    def reconfigure(self, config: Config) -> None:
        """Serve the thresholds and accounts of a reloaded configuration from now on."""
        self._collector = self._snapshot_collector(config)
        self._kick.set()

    @property
    def ready(self) -> bool:
        """True once a rendering made after the first poll cycle is being served."""
        return self._ready_after_first_cycle

    async def _refresh(self, *, force: bool) -> None:
        """Render the stale slow parts in a worker thread and install them.

        The API part is re-rendered at most every API_REFRESH_INTERVAL unless ``force``:
        during a long poll its counters move with every request.
        """
        async with self._render_lock:
            # Inputs are read before rendering: a publish during the render makes the
            # result look stale at once, so it is rendered again, never lost.
            snapshot_inputs = (self._state.accounts, self._collector, self._state.first_cycle_done)
            api_inputs = (self._api_stats.version,)
            now = self._clock()
            snapshot = self._snapshot is None or not self._snapshot.serves(snapshot_inputs)
            api = self._api is None or (
                not self._api.serves(api_inputs)
                and (force or now - self._api.at >= API_REFRESH_INTERVAL)
            )
            if not snapshot and not api:
                return
            collector, api_stats = self._collector, self._api_stats
            parts = await asyncio.to_thread(
                lambda: (
                    _render(collector) if snapshot else None,
                    _render(api_stats) if api else None,
                )
            )
            if parts[0] is not None:
                self._snapshot = _Rendered(snapshot_inputs, parts[0], now)
                self.renders["snapshot"] += 1
                if snapshot_inputs[-1] is True:
                    self._ready_after_first_cycle = True
            if parts[1] is not None:
                self._api = _Rendered(api_inputs, parts[1], now)
                self.renders["api"] += 1

    async def run(self) -> None:
        """Keep every format rendered; runs until cancelled."""
        while True:
            self._kick.clear()
            await self._refresh(force=False)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), REFRESH_INTERVAL)

    async def refreshed(self) -> None:
        """Return once what is published and counted now is what scrapes are served."""
        await self._refresh(force=True)

    async def body(self, fmt: Format, zipped: bool) -> bytes:
        """Return the exposition in ``fmt``, gzip-compressed if ``zipped``.

        Serves the latest rendering without waiting for a newer one; only a request that
        comes before the very first rendering waits for it.
        """
        if self._snapshot is None or self._api is None:
            await self._refresh(force=True)
        assert self._snapshot is not None  # noqa: S101  rendered just above
        assert self._api is not None  # noqa: S101
        parts = (self._snapshot.parts[fmt], self._api.parts[fmt], *self._process_part(fmt))
        cached = self._bodies.get((fmt, zipped))
        if cached is not None and _same(cached[0], parts):
            return cached[1]
        body = _assemble(fmt, zipped, parts)
        self._bodies[(fmt, zipped)] = (parts, body)
        return body

    def _process_part(self, fmt: Format) -> tuple[_Part, ...]:
        if self._process is None:
            return ()
        now = self._clock()
        cached = self._process_parts.get(fmt)
        if cached is None or now - cached[0] >= PROCESS_MAX_AGE:
            part = _Part.of(_encode(fmt, self._process.collect()))
            cached = self._process_parts[fmt] = (now, part)
            self.renders["process"] += 1
        return (cached[1],)


def _same(a: tuple[_Part, ...], b: tuple[_Part, ...]) -> bool:
    return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
