"""The open-invoice grace threshold is exported as a seconds threshold, per account."""

from __future__ import annotations

from exporter.config import Thresholds
from exporter.metrics import SnapshotCollector
from tests.helpers import builders as b


def grace_samples(thresholds: Thresholds) -> dict[str, float]:
    collector = SnapshotCollector(
        b.state(b.full_snapshot()), b.api_stats(), b.config(b.account(thresholds=thresholds))
    )
    return {
        sample.labels["kind"]: sample.value
        for family in collector.collect()
        if family.name == "softlayer_alert_threshold_seconds"
        for sample in family.samples
    }


def test_grace_exported_with_its_default():
    """softlayer_alert_threshold_seconds{kind="open_invoice_grace"} carries the 30d default."""
    assert grace_samples(Thresholds())["open_invoice_grace"] == 30 * 86400


def test_grace_null_is_not_exported():
    """A null open_invoice_grace disables it: no series."""
    assert "open_invoice_grace" not in grace_samples(Thresholds(open_invoice_grace_seconds=None))
