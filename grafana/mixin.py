"""The settings shared by the alert rules, the Alertmanager config and the dashboards.

Monitoring mixins keep a small ``_config`` at the top (job selector, runbook URL pattern,
Grafana URL) and build everything else from it; this module is that config for plain Python.
``generate_alerts.py`` and ``generate_dashboards.py`` render the committed files with
:data:`DEFAULTS`. The Helm chart renders the same files with its own values by replacing the
default strings, which ``mixin-defaults.json`` (written from :data:`DEFAULTS`, copied into the
chart by ``scripts/sync-chart-files``) names; so each default must appear in the rendered files
only where it stands for its setting (a test checks that).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

GRAFANA = Path(__file__).resolve().parent
DEFAULTS_FILE = GRAFANA / "mixin-defaults.json"

#: Dashboard uids; alerts link to them and the dashboards link to each other.
OVERVIEW_UID = "softlayer-billing-overview"
HEALTH_UID = "softlayer-exporter-health"


@dataclass(frozen=True)
class MixinConfig:
    """Deployment-specific settings of the rules, the routing and the dashboards."""

    #: PromQL matchers selecting the exporter's series (the scrape job). Every selector in
    #: the rules carries it; SoftLayerExporterAbsent fires when it matches nothing.
    job_selector: str = 'job="softlayer"'
    #: Where the runbooks live; an alert's runbook_url is this plus ``#<alertname lowercase>``.
    runbook_url: str = (
        "https://github.com/softlayer-billing-exporter/softlayer-billing-exporter/blob/main/"
        "docs/runbooks.md"
    )
    #: Base URL of the Grafana that has the dashboards; alerts link to ``<grafana_url>/d/<uid>``.
    grafana_url: str = "http://localhost:3000"

    def runbook(self, alert: str) -> str:
        """Return the runbook link of one alert (GitHub's anchor of its section heading)."""
        return f"{self.runbook_url}#{alert.lower()}"

    def dashboard(self, uid: str, query: str = "") -> str:
        """Return the link to one dashboard, with an optional query string."""
        return f"{self.grafana_url}/d/{uid}" + (f"?{query}" if query else "")

    def selector(self, metric: str, *matchers: str) -> str:
        """Return ``metric{<job selector>, matchers...}``."""
        return f"{metric}{{{', '.join((self.job_selector, *matchers))}}}"


DEFAULTS = MixinConfig()


def render_defaults(config: MixinConfig = DEFAULTS) -> str:
    """Serialise the config the way the chart reads it (``fromJson``; stable key order)."""
    return json.dumps(asdict(config), indent=2, sort_keys=True) + "\n"
