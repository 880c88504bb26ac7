"""Tests of the configuration: the loader, its declared settings, bounded YAML, --demo's config."""
