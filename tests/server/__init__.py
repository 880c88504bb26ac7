"""Tests of the HTTP side: server, /metrics exposition, web config, connections, shutdown."""
