"""``python -m benchmarks.paging``: three ways to walk a list that may change while it is read.

Side by side in one run, against the embedded simulator over loopback (with latency):

- ``offset``: the former walk, ``resultLimit=offset,limit`` pages of P, concurrent, no proof;
- ``overlap``: the exporter's walk (``SoftLayerClient.fetch_pages``): pages of P + o rows, P
  apart, concurrent, chained by id and checked against ``SoftLayer-Total-Items``;
- ``keyset``: ``{"id": {"operation": "> last"}}`` pages of P, one after the other (each needs
  the previous page's last id).

It prints requests per unchanged walk, wall time per walk, and what each walk served when 8
consecutive items are cancelled right after its 3rd page: the truth before or after, a wrong
sum (a mix or a loss), or "incomplete" (the walk noticed and refused to serve).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import aiohttp

from exporter.api_stats import ApiStats
from exporter.config import AccountConfig, AuthConfig, AuthMethod, Config, Secret
from exporter.errors import ErrorReason
from exporter.simulator import AccountSpec, Scenario, SimulatorServer
from exporter.softlayer import SoftLayerClient, SoftLayerError

SERVICE = "SoftLayer_Account"
METHOD = "getNextInvoiceTopLevelBillingItems"
ORDER = {"operation": "orderBy", "options": [{"name": "sort", "value": ["ASC"]}]}
MASK = "mask[id]"
NOW = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

Walk = Callable[[SoftLayerClient, dict[int, Any]], Awaitable[None]]


def _consume(seen: dict[int, Any]) -> Callable[[list[Any]], int]:
    def consume(page: list[Any]) -> int:
        before = len(seen)
        seen.update((row["id"], row) for row in page)
        return len(seen) - before

    return consume


async def walk_overlap(client: SoftLayerClient, seen: dict[int, Any]) -> None:
    """The exporter's walk."""
    order = {"nextInvoiceTopLevelBillingItems": {"id": ORDER}}
    await client.fetch_pages(
        SERVICE, METHOD, mask=MASK, object_filter=order, consume=_consume(seen)
    )


async def walk_overlap_retried(client: SoftLayerClient, seen: dict[int, Any]) -> None:
    """The exporter's walk with the poller's one retry of a walk not proven complete."""
    try:
        await walk_overlap(client, seen)
    except SoftLayerError as err:
        if err.reason is not ErrorReason.INCOMPLETE:
            raise
        seen.clear()
        await walk_overlap(client, seen)


async def walk_offset(client: SoftLayerClient, seen: dict[int, Any]) -> None:
    """Offset pages of P, concurrent after the first, no overlap and no proof."""
    size = client.page_size(SERVICE, METHOD)
    first = await client.call(SERVICE, METHOD, mask=MASK, result_limit=(0, size))
    _consume(seen)(first.body)
    total = first.total_items or 0
    offsets = iter(range(size, total, size))

    async def worker() -> None:
        for offset in offsets:
            page = await client.call(SERVICE, METHOD, mask=MASK, result_limit=(offset, size))
            _consume(seen)(page.body)

    await asyncio.gather(*(worker() for _ in range(4)))


async def walk_keyset(client: SoftLayerClient, seen: dict[int, Any]) -> None:
    """Pages of P after the last id seen, one at a time."""
    size = client.page_size(SERVICE, METHOD)
    last: int | None = None
    while True:
        node: dict[str, Any] = {"id": ORDER if last is None else {"operation": f"> {last}"}}
        page = await client.call(
            SERVICE, METHOD, mask=MASK, object_filter={"nextInvoiceTopLevelBillingItems": node},
            result_limit=(0, size),
        )  # fmt: skip
        rows = page.body
        _consume(seen)(rows)
        if not rows or len(rows) >= (page.total_items or 0):
            return
        last = rows[-1]["id"]


WALKS: dict[str, Walk] = {"offset": walk_offset, "overlap": walk_overlap, "keyset": walk_keyset}


def _config(sim: SimulatorServer, scenario: Scenario) -> Config:
    acct = scenario.accounts[0]
    auth = AuthConfig(
        method=AuthMethod.CLASSIC, api_key=Secret(acct.api_key), username=acct.username
    )
    account = AccountConfig(name="bench", endpoint=sim.endpoint, auth=auth)
    return Config(
        accounts=(account,), page_size=100, max_concurrent_requests=4,
        max_requests_per_second=10_000.0, request_timeout_seconds=30.0,
    )  # fmt: skip


async def _unchanged(items: int, latency: float) -> dict[str, tuple[int, float]]:
    scenario = Scenario.generate(seed=1, accounts=[AccountSpec(items=items)], now=NOW)
    results = {}
    async with (
        SimulatorServer(scenario, rate_limit_per_second=None, latency_seconds=latency) as sim,
        aiohttp.ClientSession() as session,
    ):
        config = _config(sim, scenario)
        truth = scenario.truth(scenario.accounts[0].id).next_invoice_item_count
        for name, walk in WALKS.items():
            client = SoftLayerClient(config.accounts[0], config, session, ApiStats())
            seen: dict[int, Any] = {}
            sim.reset_stats()
            started = time.perf_counter()
            await walk(client, seen)
            elapsed = time.perf_counter() - started
            assert len(seen) == truth, (name, len(seen), truth)
            results[name] = (sim.stats.total, elapsed)
    return results


MOVING: dict[str, Walk] = {**WALKS, "overlap + the poller's retry": walk_overlap_retried}


async def _moving(trials: int, latency: float) -> dict[str, dict[str, int]]:
    outcomes: dict[str, dict[str, int]] = {
        name: {"before": 0, "after": 0, "wrong": 0, "incomplete": 0, "requests": 0}
        for name in MOVING
    }
    for trial in range(trials):
        for name, walk in MOVING.items():
            scenario = Scenario.generate(seed=trial, accounts=[AccountSpec(items=900)], now=NOW)
            acct = scenario.accounts[0]
            before = {acct.item_id(r) for r in acct.active_rows()}

            def cancel_batch(sc: Scenario, start: int = 40 + trial, acct: Any = acct) -> None:
                for row in range(start, start + 8):
                    if row not in acct.cancelled:
                        sc.cancel_billing_item(acct.id, acct.item_id(row))

            async with (
                SimulatorServer(
                    scenario, rate_limit_per_second=None, latency_seconds=latency
                ) as sim,
                aiohttp.ClientSession() as session,
            ):
                sim.mutate_after_pages(3, cancel_batch, method=f"{SERVICE}::{METHOD}")
                config = _config(sim, scenario)
                client = SoftLayerClient(config.accounts[0], config, session, ApiStats())
                seen: dict[int, Any] = {}
                try:
                    await walk(client, seen)
                except SoftLayerError as err:
                    if err.reason is not ErrorReason.INCOMPLETE:
                        raise
                    outcomes[name]["incomplete"] += 1
                    continue
                finally:
                    outcomes[name]["requests"] += sim.stats.total
            after = {acct.item_id(r) for r in acct.active_rows()}
            got = set(seen)
            key = "before" if got == before else "after" if got == after else "wrong"
            outcomes[name][key] += 1
    return outcomes


def main(argv: list[str] | None = None) -> int:
    """Print the comparison as Markdown tables."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.paging", description=__doc__)
    parser.add_argument("--sizes", default="1000,10000", help="items per account")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per request")
    parser.add_argument("--trials", type=int, default=20, help="walks with a mid-walk change")
    args = parser.parse_args(argv)
    sizes = [int(part) for part in args.sizes.split(",")]
    print(
        f"Unchanged list, page 100, 4 requests in flight, {args.latency * 1000:.0f} ms per request"
    )
    print("\n| items | walk | requests | seconds |\n|---|---|---|---|")
    for items in sizes:
        for name, (requests, seconds) in asyncio.run(_unchanged(items, args.latency)).items():
            print(f"| {items} | {name} | {requests} | {seconds:.2f} |")
    print(f"\n8 items cancelled after page 3 of a 900-item walk, {args.trials} trials each")
    print(
        "\n| walk | truth before | truth after | wrong (mix or loss) | incomplete "
        "| requests per walk |"
    )
    print("|---|---|---|---|---|---|")
    for name, counts in asyncio.run(_moving(args.trials, 0.005)).items():
        print(
            f"| {name} | {counts['before']} | {counts['after']} | {counts['wrong']} | "
            f"{counts['incomplete']} | {counts['requests'] / args.trials:.1f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
