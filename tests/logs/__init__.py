"""Tests of logging: JSON lines, level filter, redaction of secrets."""
