"""Prometheus exporter for SoftLayer (IBM Cloud classic infrastructure) billing."""

__version__ = "0.1.0"
