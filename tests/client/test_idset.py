"""IdSet, the aggregators' compact id deduplication: same answers as a set, bounded memory.

The property tests compare IdSet with a plain ``set`` over random page sequences (sorted
pages as under ``orderBy id``, shifted pages, repeated pages, duplicates inside a page,
arbitrary unsorted ids). The memory tests use tracemalloc, which counts bytes allocated,
so they are deterministic and independent of machine speed.
"""

from __future__ import annotations

import random
import tracemalloc
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.wire import CategoryAggregator, IdSet, InvoiceWindowAggregator

PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
ids = st.integers(min_value=-(2**63), max_value=2**63 - 1)
small_ids = st.integers(min_value=0, max_value=300)


def check_against_set(pages: list[list[int]]) -> None:
    idset = IdSet()
    oracle: set[int] = set()
    for page in pages:
        expected = []
        for item_id in page:
            expected.append(item_id not in oracle)
            oracle.add(item_id)
        assert idset.add_new(page) == expected
        assert len(idset) == len(oracle)
    for item_id in oracle:
        assert item_id in idset
    runs = [item_id for run in idset._runs for item_id in run]
    assert runs == sorted(oracle), "runs must stay sorted and disjoint"


@PROPERTY_SETTINGS
@given(st.lists(st.lists(small_ids, max_size=30), max_size=40))
def test_unsorted_pages_with_dense_collisions_match_a_set(pages: list[list[int]]) -> None:
    """Arbitrary pages over a small id range (many repeats and overlaps) dedupe like a set."""
    check_against_set(pages)


@PROPERTY_SETTINGS
@given(st.lists(st.lists(ids, max_size=20), max_size=20))
def test_arbitrary_64_bit_ids_match_a_set(pages: list[list[int]]) -> None:
    """Ids anywhere in the signed 64-bit range dedupe like a set."""
    check_against_set(pages)


@PROPERTY_SETTINGS
@given(
    st.lists(st.integers(min_value=1, max_value=5), min_size=1, max_size=400),
    st.integers(min_value=1, max_value=50),
    st.randoms(use_true_random=False),
    st.integers(min_value=0, max_value=5),
)
def test_id_ordered_pages_shifted_repeated_and_shuffled_match_a_set(
    gaps: list[int], size: int, rnd: random.Random, shift: int
) -> None:
    """Sorted pages of sparse ids, fetched out of order, some repeated, some shifted by a
    few items (adds/removes between page fetches) give exactly a set's answers."""
    all_ids = []
    current = 10**9
    for gap in gaps:
        current += gap
        all_ids.append(current)
    offsets = list(range(0, len(all_ids), size))
    pages = [all_ids[o : o + size] for o in offsets]
    pages += [
        all_ids[max(0, o - shift) : o - shift + size]
        for o in rnd.sample(offsets, k=len(offsets) // 3)
    ]
    pages += rnd.choices(pages, k=2)
    rnd.shuffle(pages)
    check_against_set(pages)


def test_membership_of_non_ints_and_empty_set() -> None:
    """An empty IdSet holds nothing; non-int values are never members; empty pages add nothing."""
    idset = IdSet()
    assert 5 not in idset
    assert idset.add_new([]) == []
    assert idset.add_new([5, 5]) == [True, False]
    assert "5" not in idset
    assert 5 in idset
    assert len(idset) == 1


def item(item_id: int) -> dict[str, Any]:
    return {
        "id": item_id,
        "categoryCode": f"cat{item_id % 40}",
        "nextInvoiceTotalRecurringAmount": "1.25",
        "hourlyFlag": item_id % 2 == 0,
        "hoursUsed": "5",
        "category": {"name": "Category"},
    }


def test_aggregating_200k_items_retains_under_4_mib() -> None:
    """200,000 sparse-id items in pages of 100, fetched out of order, leave the category
    aggregator holding under 4 MiB (a set of ids alone held ~14 MiB), with every item
    counted once."""
    ids_ = [50_000_000 + 13 * i for i in range(200_000)]
    offsets = list(range(0, len(ids_), 100))
    random.Random(7).shuffle(offsets)

    def feed() -> CategoryAggregator:
        agg = CategoryAggregator()
        for offset in offsets:
            agg.add_page([item(i) for i in ids_[offset : offset + 100]])
        agg.add_page([item(i) for i in ids_[500:600]])  # a repeated page counts nothing
        return agg

    tracemalloc.start()
    agg = feed()
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert agg.item_count == 200_000
    assert retained < 4 * 2**20, f"retained {retained / 2**20:.1f} MiB"


def test_invoice_window_retains_under_1_mib_for_50k_invoices() -> None:
    """The invoice window's deduplication is compact too: 50,000 invoices retain < 1 MiB
    (a set of their ids alone would hold ~3.5 MiB)."""
    now = datetime(2026, 11, 1, tzinfo=UTC)
    created = (now + timedelta(days=1)).isoformat()

    def invoice(invoice_id: int) -> dict[str, Any]:
        return {
            "id": invoice_id,
            "typeCode": "RECURRING",
            "statusCode": "OPEN",
            "createDate": created,
            "invoiceTotalAmount": "2.5",
        }

    tracemalloc.start()
    window = InvoiceWindowAggregator(since=now)
    for offset in range(0, 50_000, 100):
        window.add_page([invoice(7 * i) for i in range(offset, offset + 100)])
    retained = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert window.result().counts[("RECURRING", "OPEN")] == 50_000
    assert retained < 2**20, f"retained {retained / 2**20:.1f} MiB"
