"""Paging that proves completeness: one walk over a SoftLayer list, and page sizes per method.

A list method is read with ``resultLimit=offset,limit`` pages ordered by ``id``. Pages overlap
(each re-reads :func:`overlap_of` rows of the one before), so a row removed before a page's
offset while the list is walked shifts the page without losing a row, and a gap shows as a
page starting past the previous page's last id. A :class:`Walk` proves the list complete or
raises :class:`~exporter.errors.SoftLayerError` with reason ``incomplete`` (docs/reliability.md,
"Paging"). :class:`PageSizes` remembers, per method, a page halved after SoftLayer answered
``Internal Error`` or timed out on a big page (softlayer-python#1124), grown back after clean
walks, and the most rows a server was seen to serve per page.

The HTTP side (auth, retries, the rate limit) is :mod:`exporter.softlayer`'s: a walk asks it
for each page through a :data:`RequestPage` callable.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final

from exporter.errors import ErrorReason, SoftLayerError

__all__ = [
    "Listing",
    "Page",
    "PageSizes",
    "Query",
    "RequestPage",
    "Walk",
    "as_list",
    "overlap_of",
    "row_ids",
]

#: Pages one walk may take: bounds a server that ignores the offset or whose total lies.
_MAX_PAGES: Final = 10_000
#: Clean walks after which a page size halved by a too-big-page error doubles again.
_GROW_AFTER_CLEAN_WALKS: Final = 5
#: Halve a page at most this many times (100 -> 12): a method that fails even then is down,
#: and shrinking further would multiply the calls of every later cycle.
_MAX_HALVINGS: Final = 3


@dataclass(frozen=True, slots=True)
class Query:
    """What to ask for, minus the page: service, method, mask and filter."""

    service: str
    method: str
    mask: str | None
    object_filter: Mapping[str, Any] | None
    init_id: int | None = None  # the object a method runs on (an invoice's id), if any

    @property
    def path(self) -> str:
        """``Service[/id]/method``, as the REST URL names it."""
        on = "" if self.init_id is None else f"/{self.init_id}"
        return f"{self.service}{on}/{self.method}"

    @property
    def key(self) -> str:
        """``Service::method``, as SoftLayer names methods in its docs and errors."""
        return f"{self.service}::{self.method}"


@dataclass(frozen=True, slots=True)
class Page:
    """One decoded response: the body and ``SoftLayer-Total-Items`` if sent."""

    body: Any
    total_items: int | None


@dataclass(frozen=True, slots=True)
class Listing:
    """What a complete walk saw: how many distinct rows, and the highest id among them."""

    rows: int
    last_id: int | None


#: Fetch one page of a query: ``(query, (offset, limit), splittable) -> Page``, with the
#: client's retries; ``splittable`` says a too-big-page error should not be retried, since
#: the walk will ask for smaller pages instead.
RequestPage = Callable[[Query, tuple[int, int], bool], Awaitable[Page]]


def as_list(body: Any) -> list[Any]:
    """Return a list method's rows (a bare object is one row)."""
    # Some list methods send a bare object instead of a one-element array; anything else
    # is left for the parser to reject with a path-qualified DecodeError.
    if isinstance(body, list):
        return body
    return [body]


class PageSizes:
    """The page size of each method (``Service::method``): configured, halved, or capped."""

    def __init__(self, page_size: int) -> None:
        self._configured = page_size
        self._min = max(1, page_size >> _MAX_HALVINGS)
        self._sizes: dict[str, int] = {}  # halved sizes
        self._clean_walks: dict[str, int] = {}  # walks without a too-big page since halving
        self._caps: dict[str, int] = {}  # rows the server serves at most per page

    def page_size(self, key: str) -> int:
        """Return the page size of a method: configured, or halved after too-big pages."""
        return self._sizes.get(key, self._configured)

    def cap(self, key: str) -> int | None:
        """Return the most rows the server was seen to serve per page of a method, if capped."""
        return self._caps.get(key)

    def wire_limit(self, key: str) -> tuple[int, int]:
        """``(resultLimit, overlap)`` of the next walk of a method (size and learned cap)."""
        step = self.page_size(key)
        overlap = overlap_of(step)
        limit = step + overlap
        cap = self._caps.get(key)
        if cap is not None and cap < limit:
            limit = cap
            overlap = min(overlap, max(0, cap - 1))
        return limit, overlap

    def can_shrink(self, key: str) -> bool:
        """Whether a method's page may still be halved."""
        return self.page_size(key) > self._min

    def shrink(self, key: str) -> int:
        """Halve a method's page after a too-big-page error; returns the new wire limit."""
        self._sizes[key] = max(self._min, self.page_size(key) // 2)
        self._clean_walks[key] = 0
        return self.wire_limit(key)[0]

    def walk_done(self, key: str, size_errors: int) -> None:
        """Grow a shrunken page size back after enough clean walks (the outage passed)."""
        if size_errors:
            self._clean_walks[key] = 0
            return
        step = self._sizes.get(key)
        if step is None or step >= self._configured:
            return
        self._clean_walks[key] = self._clean_walks.get(key, 0) + 1
        if self._clean_walks[key] >= _GROW_AFTER_CLEAN_WALKS:
            self._clean_walks[key] = 0
            grown = min(self._configured, step * 2)
            if grown >= self._configured:
                del self._sizes[key]
            else:
                self._sizes[key] = grown

    def learn_cap(self, key: str, rows: int) -> None:
        """Remember that the server answers at most ``rows`` rows per page of a method."""
        if rows > 0:
            self._caps[key] = min(rows, self._caps.get(key, rows))


def overlap_of(step: int) -> int:
    """Return how many rows each page re-reads from the one before (5 at the default 100).

    A page then still meets the one before after up to that many - 1 rows before it were
    removed while the list was walked.
    """
    return max(2, step // 20)


def _pages_for(total: int, limit: int, step: int) -> int:
    """Pages of ``limit`` rows, ``step`` apart, that cover ``total`` rows (at least one)."""
    if total <= limit:
        return 1
    return 1 + -(-(total - limit) // step)


def row_ids(rows: list[Any], method: str) -> list[int]:
    """Return the ``id`` of every row of a page (JSON integers, as SoftLayer sends them)."""
    ids = []
    for row in rows:
        row_id = row.get("id") if isinstance(row, dict) else None
        if isinstance(row_id, str) and row_id.isdigit():
            row_id = int(row_id)  # some samples carry ids as strings; the parser accepts them
        if isinstance(row_id, Decimal) and row_id == row_id.to_integral_value():
            row_id = int(row_id)
        if not isinstance(row_id, int) or isinstance(row_id, bool):
            raise SoftLayerError(
                ErrorReason.DECODE, "a list row without an integer id", method=method
            )
        ids.append(row_id)
    return ids


@dataclass(slots=True)
class _Segment:
    """What one page answer covered: where it started, what it asked and got, which ids."""

    offset: int
    limit: int
    count: int
    first: int | None  # smallest id (rows ascend by id)
    last: int | None  # largest id
    total: int | None  # its SoftLayer-Total-Items

    @property
    def proves_end(self) -> bool:
        """Whether this page reached the end of the list as SoftLayer counted it then."""
        return self.total is not None and self.offset + self.count >= self.total


class Walk:
    """One walk over a paged list; see :meth:`exporter.softlayer.SoftLayerClient.fetch_pages`."""

    def __init__(
        self,
        sizes: PageSizes,
        request: RequestPage,
        query: Query,
        consume: Callable[[list[Any]], object],
        *,
        concurrency: int,
    ) -> None:
        self.sizes = sizes
        self.request = request
        self.concurrency = concurrency
        self.query = query
        self.key = query.key
        self.consume = consume
        self.segments: list[_Segment] = []
        self.distinct = 0  # rows consume() had not seen, summed over the pages
        self.counting = True  # consume() reports new rows
        self.size_errors = 0

    def incomplete(self, why: str) -> SoftLayerError:
        """Build the error that fails this walk (the caller retries the list once)."""
        return SoftLayerError(
            ErrorReason.INCOMPLETE, f"list not proven complete: {why}", method=self.key
        )

    async def run(self) -> None:
        """Walk the list: concurrently after a first page with a total, else one by one."""
        limit, _ = self.sizes.wire_limit(self.key)
        first, limit = await self.first_page(limit)
        limit, overlap = self.sizes.wire_limit(self.key)  # the first page's, maybe halved
        if first.total is not None and first.count < limit and not first.proves_end:
            if first.count == 0:
                raise self.incomplete(
                    f"an empty first page, but SoftLayer-Total-Items says {first.total}"
                )
            # The server answers fewer rows than asked: step through at its size, now and
            # in every later poll (the requested limit is not what it serves).
            self.sizes.learn_cap(self.key, first.count)
            limit, overlap = self.sizes.wire_limit(self.key)
        if limit - overlap < 1 or (first.count and overlap < 1):
            raise self.incomplete(f"pages of {limit} rows cannot overlap")
        if first.total is None:
            await self.sequential(first, limit, overlap)
        else:
            await self.concurrent(first, limit, limit - overlap)
            self.verify()

    async def fetch(self, offset: int, limit: int, *, splittable: bool) -> _Segment:
        """One page: request, id order check, consume, record its segment."""
        page = await self.request(self.query, (offset, limit), splittable)
        rows = as_list(page.body)
        ids = row_ids(rows, self.key)
        if any(later <= earlier for earlier, later in itertools.pairwise(ids)):
            raise self.incomplete("a page not in ascending id order")
        new = self.consume(rows)
        if isinstance(new, int) and not isinstance(new, bool):
            self.distinct += new
        else:
            self.counting = False
        segment = _Segment(
            offset, limit, len(rows), ids[0] if ids else None, ids[-1] if ids else None,
            page.total_items,
        )  # fmt: skip
        self.segments.append(segment)
        return segment

    async def first_page(self, limit: int) -> tuple[_Segment, int]:
        """Page one, halving the page while SoftLayer says it is too big (and it can)."""
        while True:
            splittable = self.sizes.can_shrink(self.key)
            try:
                return await self.fetch(0, limit, splittable=splittable), limit
            except SoftLayerError as err:
                if not (splittable and err.page_too_big):
                    raise
                self.size_errors += 1
                limit = self.sizes.shrink(self.key)

    async def page(self, offset: int, limit: int) -> list[_Segment]:
        """Fetch a later page; too big, it comes as two overlapping halves (recursively)."""
        splittable = self.sizes.can_shrink(self.key) and limit >= 4
        try:
            segment = await self.fetch(offset, limit, splittable=splittable)
        except SoftLayerError as err:
            if not (splittable and err.page_too_big):
                raise
            self.size_errors += 1
            half = limit // 2
            if self.sizes.page_size(self.key) > half:
                self.sizes.shrink(self.key)  # once per size, not once per page in flight
            overlap = min(overlap_of(half), half - 1)
            head = await self.page(offset, half + overlap)
            return head + await self.page(offset + half, limit - half)
        self.check(segment)
        return [segment]

    def check(self, segment: _Segment) -> None:
        """Fail on a short page that is not the end: a page cap, or a total that lies."""
        if segment.proves_end or segment.count >= segment.limit:
            return
        if segment.total is None:
            raise self.incomplete(
                f"a short page ({segment.count} of {segment.limit} rows) without "
                "SoftLayer-Total-Items"
            )
        self.sizes.learn_cap(self.key, segment.count)  # if a cap, page at it next time
        raise self.incomplete(
            f"{segment.count} of {segment.limit} rows at offset {segment.offset} while "
            f"SoftLayer-Total-Items says {segment.total} (a page cap or a wrong total)"
        )

    async def concurrent(self, first: _Segment, limit: int, step: int) -> None:
        """Pages ``step`` apart, fetched by a few workers, until one proves the end."""
        if first.proves_end:
            return
        assert first.total is not None  # noqa: S101  (run() only comes here with a total)
        planned = _pages_for(first.total, limit, step)
        next_index = 1
        end_index: int | None = None

        def take() -> int | None:
            nonlocal next_index
            if next_index >= planned or (end_index is not None and next_index > end_index):
                return None
            if next_index > _MAX_PAGES:
                raise self.incomplete(f"more than {_MAX_PAGES} pages")
            index, next_index = next_index, next_index + 1
            return index

        async def worker() -> None:
            nonlocal planned, end_index
            while (index := take()) is not None:
                segments = await self.page(index * step, limit)
                totals = [s.total for s in segments if s.total is not None]
                if any(s.proves_end for s in segments):
                    end_index = index if end_index is None else min(end_index, index)
                elif index == planned - 1:
                    planned += 1  # longer than announced (it grew): walk on
                if totals:
                    planned = max(planned, _pages_for(max(totals), limit, step))

        workers = min(self.concurrency, planned - 1)
        tasks = [asyncio.create_task(worker()) for _ in range(workers)]
        try:
            for next_done in asyncio.as_completed(tasks):
                await next_done
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def verify(self) -> None:
        """Check the pages chain by id up to one that proves the end, and the count adds up."""
        segments = sorted(self.segments, key=lambda s: (s.offset, -s.limit))
        end = next((i for i, s in enumerate(segments) if s.proves_end), None)
        if end is None:
            raise self.incomplete("no page reached the total SoftLayer-Total-Items announced")
        chain = segments[: end + 1]
        if len(chain) > 1 and chain[-1].count == 0 and not chain[-2].proves_end:
            # An empty last page says the list ended before its offset when it was read, but
            # rows after the page before may have moved below that offset meanwhile.
            raise self.incomplete(
                f"an empty page at offset {chain[-1].offset} after a full one (the list "
                "shrank while walked)"
            )
        for before, after in itertools.pairwise(chain):
            if before.count == 0 or before.last is None:
                raise self.incomplete(f"an empty page at offset {before.offset} before the end")
            if after.first is not None and after.first > before.last:
                raise self.incomplete(
                    f"rows may be missing between ids {before.last} and {after.first} (the "
                    "list changed more than the page overlap between two pages)"
                )
        totals = {s.total for s in self.segments}
        if self.counting and len(totals) == 1:
            (total,) = totals
            if total is not None and self.distinct != total:
                raise self.incomplete(
                    f"{self.distinct} distinct rows, but SoftLayer-Total-Items says {total}"
                )

    async def sequential(self, first: _Segment, limit: int, overlap: int) -> None:
        """Without SoftLayer-Total-Items: page on until a short page brings nothing new.

        Each page starts ``overlap`` rows (at least one, fewer than the page before had)
        before the previous page's end, so it must begin with a row already seen. New rows get
        higher ids (softlayer-api.md section 8.6): a page that re-reads seen rows, brings no
        id past the last one and comes back short is the end of the list as it was then. An
        empty page, or one starting past the last id seen, means rows moved: incomplete.
        """
        previous = first
        for _ in range(_MAX_PAGES):
            if previous.count == 0 or previous.last is None:
                return  # only the first page can be empty here: an empty list
            reread = max(1, min(overlap, previous.count - 1))
            segment = await self.fetch(
                previous.offset + previous.count - reread, limit, splittable=False
            )
            if segment.count == 0 or segment.first is None or segment.last is None:
                raise self.incomplete(
                    f"an empty page at offset {segment.offset}, where rows seen before were "
                    "expected (the list shrank while walked)"
                )
            if segment.first > previous.last:
                raise self.incomplete(
                    f"rows may be missing between ids {previous.last} and {segment.first}"
                )
            if segment.last <= previous.last and segment.count < limit:
                return
            previous = segment
        raise self.incomplete(f"more than {_MAX_PAGES} pages without an end")
