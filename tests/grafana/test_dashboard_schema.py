"""The dashboards validate against Grafana's published schemas (vendored, see schemas/README.md).

The dashboard schema covers the dashboard, its variables, links and the generic panel fields;
each panel type's own schema covers its ``options`` (and ``fieldConfig.defaults.custom`` where
the type has one). Both are draft-07 JSON schemas with ``additionalProperties: false``, so a
misspelt or misplaced key fails too.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.grafana import artifacts

SCHEMAS = Path(__file__).parent / "schemas"
PANEL_TYPES = ("stat", "timeseries", "table", "bargauge", "piechart")
DASHBOARDS = {path.name: artifacts.load_dashboard(path) for path in artifacts.DASHBOARDS}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads(
        (SCHEMAS / f"{name}.jsonschema.json").read_text(encoding="utf-8")
    )
    return schema


def _definition(name: str, definition: str) -> jsonschema.Draft7Validator:
    """A validator for one definition of a schema file, its siblings resolvable."""
    schema = _schema(name)
    if name == "dashboard":
        # Grafana's CUE schema types a matcher's `options` and an override's `value` as `_`
        # (any value: overrides set units as strings, decimals as numbers); the generated
        # JSON schema renders `_` as an object. Restore "any" for exactly those two.
        definitions = schema["definitions"]
        definitions["MatcherConfig"]["properties"]["options"] = {}
        definitions["DynamicConfigValue"]["properties"]["value"] = {}
    return jsonschema.Draft7Validator({**schema, "$ref": f"#/definitions/{definition}"})


DASHBOARD = _definition("dashboard", "Dashboard")
PANEL = _definition("dashboard", "Panel")
OPTIONS = {kind: _definition(kind, "Options") for kind in PANEL_TYPES}
CUSTOM = {
    kind: _definition(kind, "FieldConfig")
    for kind in PANEL_TYPES
    if "FieldConfig" in _schema(kind)["definitions"]
}


def _errors(validator: jsonschema.Draft7Validator, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_dashboard_matches_grafanas_dashboard_schema(name: str) -> None:
    """The whole dashboard (variables, links, panels' generic fields) is schema-valid."""
    assert _errors(DASHBOARD, DASHBOARDS[name]) == []


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_panel_options_match_their_panel_schema(name: str) -> None:
    """Each panel is a valid Panel; its options and custom field config fit its type."""
    problems = []
    for panel in artifacts.query_panels(DASHBOARDS[name]):
        kind = panel["type"]
        problems += [f"{panel['title']}: {e}" for e in _errors(PANEL, panel)]
        assert kind in OPTIONS, kind
        problems += [f"{panel['title']}: {e}" for e in _errors(OPTIONS[kind], panel["options"])]
        custom = panel["fieldConfig"]["defaults"].get("custom")
        if kind in CUSTOM and custom is not None:
            problems += [f"{panel['title']}: {e}" for e in _errors(CUSTOM[kind], custom)]
    assert problems == []


def test_schema_check_catches_a_bad_dashboard() -> None:
    """The validation is not vacuous: a misspelt key and a wrong type are reported."""
    board = copy.deepcopy(next(iter(DASHBOARDS.values())))
    board["refrsh"] = "5m"
    board["graphTooltip"] = "shared"
    errors = _errors(DASHBOARD, board)
    assert any("refrsh" in error for error in errors)
    assert any(error.startswith("graphTooltip") for error in errors)
    stat = next(p for p in artifacts.query_panels(board) if p["type"] == "stat")
    assert _errors(OPTIONS["stat"], {**stat["options"], "colorMode": "rainbow"})
