"""Reliability proofs: process-level faults, load, soak and secrets (docs/reliability.md)."""
