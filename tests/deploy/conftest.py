"""Fixtures of the chart tests: the helm binary (env HELM, default tools/helm/bin/helm) and cached renderings."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import pytest

from tests.deploy import chart_check
from tests.deploy.chart_check import Obj

Render = Callable[..., list[Obj]]


@pytest.fixture(scope="session")
def helm_bin() -> str:
    """The helm binary; the chart tests skip where `make chart-check` has not installed it (make test-fast)."""
    if not chart_check.HELM.exists():
        pytest.skip(f"no helm at {chart_check.HELM} (make chart-check installs it; HELM overrides the path)")
    return str(chart_check.HELM)


@pytest.fixture(scope="session")
def render(helm_bin: str) -> Render:
    """Render a profile (at the newest checked Kubernetes version unless given), cached per arguments."""

    @cache
    def rendered(profile: str, *extra: str, kube_version: str = chart_check.KUBE_VERSIONS[-1]) -> tuple[Obj, ...]:
        return tuple(chart_check.render(profile, kube_version, *extra))

    def call(profile: str, *extra: str, kube_version: str = chart_check.KUBE_VERSIONS[-1]) -> list[Obj]:
        return list(rendered(profile, *extra, kube_version=kube_version))

    return call
