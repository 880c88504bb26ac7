"""Tests of the metrics layer: the snapshot collector, snapshots, API statistics, thresholds."""
