"""Where the money goes, what changed, a year of history: the exporter's FinOps depth.

- :mod:`~exporter.finops.records`: the typed records these sources publish in a snapshot;
- :mod:`~exporter.finops.items`: datacenter totals and the top-N items, folded from the
  next invoice's item walk (no request of their own);
- :mod:`~exporter.finops.billing`: billing information from the account object the poller
  already fetches (currency, exchange rate, terms, discounts, status, platform services);
- :mod:`~exporter.finops.history`: the last recurring invoices' totals and the latest one's
  categories, fetched once per invoice;
- :mod:`~exporter.finops.backfill`: timestamped OpenMetrics of past months for
  ``promtool tsdb create-blocks-from openmetrics``.
"""
