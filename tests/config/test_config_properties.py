"""Property: any YAML-shaped input or YAML text gives a Config or a ConfigError, never another
exception, and no message quotes a secret."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, config_from_dict, load_config
from tests.helpers.builders import PLANTED_KEY

# YAML scalars and containers, as yaml.safe_load can produce them.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["15m", "90d", "public", "private", "classic", "iam", "SL_KEY", "http://h/"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
KEYS = [
    "poll_interval",
    "poll_jitter",
    "request_timeout",
    "max_requests_per_second",
    "max_concurrent_requests",
    "page_size",
    "retry",
    "invoice_lookback",
    "top_categories",
]
ACCOUNT_KEYS = ["name", "endpoint", "auth", "thresholds", "sources", "poll_interval"]
AUTH_KEYS = ["method", "username", "api_key_env", "api_key_file", "iam_token_url", "api_key"]
THRESHOLD_KEYS = [
    "open_invoice_balance_usd",
    "account_balance_usd",
    "monthly_budget_usd",
    "pending_invoice_max_age",
    "forecast_surge_ratio",
    "category_surge_ratio",
]


def valid() -> dict[str, object]:
    return {
        "poll_interval": "15m",
        "accounts": [
            {
                "name": "a",
                "endpoint": "public",
                "auth": {"method": "classic", "username": "u", "api_key_env": "SL_KEY"},
                "thresholds": {"monthly_budget_usd": 10},
            },
        ],
    }


@st.composite
def mutated(draw: st.DrawFn) -> object:
    raw = valid()
    account = raw["accounts"][0]  # type: ignore[index]
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        where = draw(st.sampled_from(["top", "account", "auth", "thresholds", "whole"]))
        if where == "top":
            raw[draw(st.sampled_from(KEYS))] = draw(values)
        elif where == "account":
            account[draw(st.sampled_from(ACCOUNT_KEYS))] = draw(values)
        elif where == "auth" and isinstance(account.get("auth"), dict):
            account["auth"][draw(st.sampled_from(AUTH_KEYS))] = draw(values)
        elif where == "thresholds" and isinstance(account.get("thresholds"), dict):
            key = draw(
                st.sampled_from([*THRESHOLD_KEYS, "open_invoice_grace"]) | st.text(max_size=30)
            )
            account["thresholds"][key] = draw(values)
        elif where == "whole":
            return draw(values)
    return raw


@settings(max_examples=300, deadline=None)
@given(mutated())
def test_config_or_path_qualified_error(raw):
    """Mutated configs load or raise ConfigError whose every problem names a key path."""
    problems: list[str] = []
    try:
        config = config_from_dict(raw, environ={"SL_KEY": PLANTED_KEY})
    except ConfigError as err:
        problems = err.problems
    else:
        assert isinstance(config, Config)
        assert config.accounts
        return
    assert problems
    roots = {"top level", "accounts", *KEYS, *(raw if isinstance(raw, dict) else ())}
    for problem in problems:
        assert any(problem.startswith(f"{root}{sep}") for root in roots for sep in ".[:"), problem
        assert PLANTED_KEY not in problem


# ------------------------------------------------------------------------------------------
# YAML text: tags on bad values, deep nesting, huge numbers, secrets in odd places.
# ------------------------------------------------------------------------------------------

odd_scalars = st.one_of(
    st.sampled_from(
        ["!!float", "!!int", "!!timestamp", "!!bool", "!!binary", "!!str", "!!null"]
    ).flatmap(
        lambda tag: st.sampled_from(["abc", "12x", "''", "2024-13-45", PLANTED_KEY, "1e999"]).map(
            lambda text: f"{tag} {text}"
        )
    ),
    st.integers(min_value=1, max_value=500).map(lambda n: "9" * n + "d"),
    st.integers(min_value=1, max_value=3000).map(lambda n: "0x" + "f" * n),
    st.integers(min_value=1, max_value=5000).map(lambda n: "1" * n),
    st.sampled_from([".inf", "-.inf", ".nan", "1e308", "-1e308", "0.0001", "999999999999d"]),
    st.integers(min_value=1, max_value=3000).map(lambda n: "[" * n + "]" * n),
    st.integers(min_value=1, max_value=3000).map(lambda n: "{a: " * n + "1" + "}" * n),
    st.just(PLANTED_KEY),
    st.just("/dev/zero"),
)
TEXT_KEYS = [
    *(("top", k) for k in KEYS),
    *(("account", k) for k in ACCOUNT_KEYS),
    *(("auth", k) for k in AUTH_KEYS),
    *(("thresholds", k) for k in [*THRESHOLD_KEYS, "open_invoice_grace"]),
    ("sources", "invoices"),
]


@st.composite
def yaml_texts(draw: st.DrawFn) -> str:
    chosen = dict(
        draw(st.lists(st.tuples(st.sampled_from(TEXT_KEYS), odd_scalars), min_size=1, max_size=4))
    )
    top = {k: v for (where, k), v in chosen.items() if where == "top"}
    account = {k: v for (where, k), v in chosen.items() if where == "account"}
    auth = {"method": "classic", "username": "u", "api_key_env": "SL_KEY"}
    auth.update({k: v for (where, k), v in chosen.items() if where == "auth"})
    lines = [f"{k}: {v}" for k, v in top.items()]
    lines += ["accounts:", "  - name: a"]
    lines += [f"    {k}: {v}" for k, v in account.items() if k not in {"name", "auth"}]
    lines += ["    auth:", *(f"      {k}: {v}" for k, v in auth.items())]
    for section in ("thresholds", "sources"):
        entries = {k: v for (where, k), v in chosen.items() if where == section}
        if entries and section not in account:
            lines += [f"    {section}:", *(f"      {k}: {v}" for k, v in entries.items())]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module", name="config_dir")
def _config_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=yaml_texts())
def test_yaml_text_gives_config_or_path_qualified_error(config_dir: Path, text: str) -> None:
    """Odd YAML text loads or raises ConfigError naming a key path or a position, no secret."""
    path = config_dir / "config.yaml"
    path.write_text(text)
    message = ""
    problems: list[str] = []
    try:
        config = load_config(path, environ={"SL_KEY": PLANTED_KEY})
    except ConfigError as err:
        message, problems = str(err), err.problems
    else:
        assert isinstance(config, Config)
        return
    assert problems
    for problem in problems:
        assert re.match(r"(line \d+, column \d+: |top level: |[a-z_]+[.\[:])", problem), problem
    assert PLANTED_KEY not in message
