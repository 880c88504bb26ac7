"""The installed distribution and the package agree on what they are."""

from __future__ import annotations

from importlib import metadata

import exporter


class TestPackaging:
    def test_version_matches_metadata(self) -> None:
        """The package's __version__ is the version the distribution was installed with."""
        assert metadata.version("softlayer-billing-exporter") == exporter.__version__

    def test_console_scripts_are_declared(self) -> None:
        """Both console scripts point into the package."""
        scripts = {
            ep.name: ep.value
            for ep in metadata.distribution("softlayer-billing-exporter").entry_points
            if ep.group == "console_scripts"
        }
        assert scripts == {
            "softlayer-billing-exporter": "exporter.cli:main",
            "softlayer-api-simulator": "exporter.simulator.cli:main",
        }
