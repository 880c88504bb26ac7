"""Tests of the serving side: config loader, logs, collector, web config, HTTP server, CLI."""
