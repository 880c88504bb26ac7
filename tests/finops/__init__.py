"""Tests of the FinOps sources: datacenters, top items, billing information, history, backfill."""
