"""Loaders for the Grafana/Prometheus artifacts and a conservative PromQL metric-name scanner.

Shared by the static tests and the integration test: where the rules, dashboards, runbooks
and metric contract live, how to read them, and which metric names a PromQL expression uses.
The scanner is deliberately simple (regular expressions, not a PromQL parser): it strips
strings, label matchers, ranges and grouping clauses, then takes every identifier that is
not a function call or keyword as a metric name. Its own tests pin what it recognises.
"""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "grafana"
RULES_FILE = GRAFANA / "alerts" / "softlayer-billing.rules.yml"
RULE_TESTS = sorted((GRAFANA / "alerts" / "tests").glob("*.yml"))
MONTH_TEST = GRAFANA / "alerts" / "tests" / "month_test.yml"
ALERTMANAGER_FILE = GRAFANA / "alertmanager" / "alertmanager.yml"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))
METRICS_DOC = ROOT / "docs" / "metrics.md"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
#: Prometheus' own series that dashboards and rules may use besides the contract.
PROMETHEUS_METRICS = frozenset({"up"})
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}

_KEYWORDS = frozenset(
    {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless"}
    | {"offset", "bool", "inf", "nan"}
)
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSET = re.compile(r"\boffset\s+-?[0-9a-z]+")
_IDENT = re.compile(r"(?<![\w$:.])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?")
_SELECTOR = re.compile(r"(?<![\w$:.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^{}]*\})?(\s*\()?")
_NUMBER = re.compile(r"(?<![\w$:.])(\d+(?:\.\d+)?(?:e[+-]?\d+)?)(?![\w.])")
_LABEL_VALUES = re.compile(r"label_values\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _strip(expr: str, *, keep_strings: bool = False) -> str:
    text = expr if keep_strings else _STRING.sub('""', expr)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    return _OFFSET.sub(" ", text)


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects."""
    text = _MATCHERS.sub(" ", _strip(expr))
    return {
        match.group(1)
        for match in _IDENT.finditer(text)
        if match.group(2) is None and match.group(1).lower() not in _KEYWORDS
    }


def selectors(expr: str) -> list[tuple[str, str]]:
    """Return ``(metric, matchers)`` for every selector; matchers is "" when bare."""
    found = []
    for match in _SELECTOR.finditer(_strip(expr, keep_strings=True)):
        name, matchers, call = match.groups()
        if call is None and name.lower() not in _KEYWORDS:
            found.append((name, matchers or ""))
    return found


def numbers(expr: str) -> list[float]:
    """Return the numeric literals of an expression (durations and label values excluded)."""
    text = _MATCHERS.sub(" ", _strip(expr))
    return [float(n) for n in _NUMBER.findall(text)]


def variable_metric_names(query: str) -> set[str]:
    """Return the metric names a ``label_values(metric{...}, label)`` variable query reads."""
    return set(_LABEL_VALUES.findall(query))


def grafana_module(name: str) -> ModuleType:
    """Import one of grafana/'s scripts (``mixin``, ``generate_alerts``, ...) by file name."""
    if str(GRAFANA) not in sys.path:
        sys.path.insert(0, str(GRAFANA))  # the scripts import mixin.py as their neighbour
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, GRAFANA / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_rules() -> list[dict[str, Any]]:
    """Return every rule of the rules file, with its group name under ``group``."""
    document = yaml.safe_load(RULES_FILE.read_text(encoding="utf-8"))
    return [
        {**rule, "group": group["name"]} for group in document["groups"] for rule in group["rules"]
    ]


def alerts() -> list[dict[str, Any]]:
    """Return the alerting rules."""
    return [rule for rule in load_rules() if "alert" in rule]


def recording_names() -> set[str]:
    """Return the names the rules file records."""
    return {rule["record"] for rule in load_rules() if "record" in rule}


def load_dashboard(path: Path) -> dict[str, Any]:
    """Parse one dashboard file."""
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def query_panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Yield every panel that runs queries (rows, including collapsed rows' panels, excluded)."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_exprs() -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Yield ``(dashboard file, panel title, target)`` for every target of every dashboard."""
    for path in DASHBOARDS:
        for panel in query_panels(load_dashboard(path)):
            for target in panel.get("targets", []):
                yield path.name, panel["title"], target


def variable_queries(dashboard: dict[str, Any]) -> list[str]:
    """Return the PromQL-backed variable queries (``query`` variables) of a dashboard."""
    result = []
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            result.append(query["query"] if isinstance(query, dict) else query)
    return result


def documented_metrics() -> dict[str, str]:
    """Return ``{name: type}`` of every metric in the tables of docs/metrics.md."""
    found: dict[str, str] = {}
    for line in METRICS_DOC.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 2:
            continue
        name = re.fullmatch(r"`([a-z_][a-z0-9_]*)`", cells[0])
        if name and name.group(1).startswith("softlayer_"):
            found[name.group(1)] = cells[1]
    return found


def family_of(name: str, families: dict[str, str]) -> str | None:
    """Map a series name to its metric family (histogram ``_bucket``/``_sum``/``_count``)."""
    if name in families:
        return name
    for suffix in ("_bucket", "_sum", "_count"):
        base = name.removesuffix(suffix)
        if base != name and families.get(base, "").startswith("histogram"):
            return base
    return None


def github_anchor(heading: str) -> str:
    """Return the anchor GitHub generates for a Markdown heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def runbook_anchors() -> set[str]:
    """Return the anchors of the second-level headings of docs/runbooks.md."""
    headings = re.findall(r"^## (.+)$", RUNBOOKS.read_text(encoding="utf-8"), re.MULTILINE)
    return {github_anchor(heading) for heading in headings}


def substitute(expr: str, variables: dict[str, str]) -> str:
    """Replace Grafana variables (``$name`` and ``${name}``), longest names first."""
    for name in sorted(variables, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", variables[name]).replace("$" + name, variables[name])
    assert "$" not in expr, f"unsubstituted variable in {expr}"
    return expr
