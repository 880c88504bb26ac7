"""Property: any YAML-shaped input gives a Config or a ConfigError, never another exception."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.config import Config, ConfigError, config_from_dict

from .builders import PLANTED_KEY

# YAML scalars and containers, as yaml.safe_load can produce them.
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
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
ACCOUNT_KEYS = ["name", "endpoint", "auth", "thresholds"]
AUTH_KEYS = ["method", "username", "api_key_env", "api_key_file", "iam_token_url", "api_key"]


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
            account["thresholds"][draw(st.text(max_size=30))] = draw(values)
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
