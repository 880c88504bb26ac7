"""Helpers shared by several test folders (see tests/README.md)."""
