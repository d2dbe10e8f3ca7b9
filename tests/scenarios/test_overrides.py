"""`--set key.path=value`: parsing, applying, validation like the file, and errors that name the override."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from chainlab.cli import main
from chainlab.scenarios.experiment import apply_overrides, load_experiment, parse_override, with_overrides
from tests.sim.test_experiment import SMALL as SIM_SMALL

SMALL: dict[str, Any] = {**SIM_SMALL, "tasks": 1}  # the simulator tests' small network, one task

segments = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
paths = st.lists(segments, min_size=1, max_size=3).map(".".join)
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(exclude_categories=["Cs"]), max_size=20)
)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3), max_leaves=6)


def _yaml(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=math.inf).removesuffix("\n...\n").rstrip("\n")


@given(paths, values)
def test_parse_override_round_trips_a_path_and_a_yaml_value(path: str, value: Any) -> None:
    assert parse_override(f"{path}={_yaml(value)}") == (path, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("miners=100", ("miners", 100)),
        ("network.kind=erdos_renyi", ("network.kind", "erdos_renyi")),
        ("protocol.cfs=true", ("protocol.cfs", True)),
        ("seeds=[1,2,3]", ("seeds", [1, 2, 3])),
        ("protocol.target=2**244-1", ("protocol.target", "2**244-1")),
        ("name=a=b", ("name", "a=b")),  # only the first '=' separates the path
        (" miners =7", ("miners", 7)),
        ("description=", ("description", None)),
    ],
)
def test_parse_override_reads_the_value_as_yaml(text: str, expected: tuple[str, Any]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("miners", r"--set miners: expected key\.path=value"),
        ("=3", r"--set =3: empty key"),
        ("network.=full", r"--set network\.=full: empty key"),
        ("a..b=1", r"--set a\.\.b=1: empty key"),
        ("seeds=[1", r"--set seeds=\[1: the value is not YAML"),
    ],
)
def test_parse_override_rejects_malformed_text(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_override(text)


def test_apply_overrides_sets_nested_keys_creates_sections_and_leaves_the_input_alone() -> None:
    before = copy.deepcopy(SMALL)
    out = apply_overrides(SMALL, [("network.kind", "erdos_renyi"), ("live.round_seconds", 0.2), ("miners", 9)])
    assert out["network"] == {"kind": "erdos_renyi", "delay_rounds": 2}
    assert out["live"] == {"round_seconds": 0.2} and out["miners"] == 9
    assert before == SMALL


def test_overrides_are_validated_and_recorded_in_raw() -> None:
    exp = with_overrides({**SMALL, "sweep": {"path": "miners", "values": [2, 3]}}, ["miners=6", "protocol.cfs=true"])
    assert exp.raw["miners"] == 6 and exp.raw["protocol"]["cfs"] is True
    assert exp.raw["sweep"] == {"path": "miners", "values": [2, 3]}  # unlike with_value, a sweep stays


def test_load_experiment_applies_overrides_to_the_file(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps(SMALL))
    assert load_experiment(config).raw["miners"] == 4
    assert load_experiment(config, ["miners=5", "network.kind=erdos_renyi"]).network.kind == "erdos_renyi"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["netwrk.kind=full"], r"^--set netwrk\.kind=full: unknown key 'netwrk'"),
        (["seed.x=1"], r"^--set seed\.x=1: seed is 3, not a section with keys"),
        (["miners=0"], r"^--set miners=0: miners must be an integer >= 1"),
        (["miners=many"], r"^--set miners=many: miners must be an integer"),
        (["network.kind=mesh"], r"^--set network\.kind=mesh: network kind must be one of"),
        (["network.kindd=full"], r"^--set network\.kindd=full: unknown network config key"),
        (["protocol.phase_one=3"], r"^--set protocol\.phase_one=3: unknown protocol parameter"),
        (["protocol.name=nosuch"], r"^--set protocol\.name=nosuch: unknown protocol 'nosuch'"),
        # Only the override at fault is named, whichever position it has.
        (["seed=5", "work.train_rounds=-1", "tasks=1"], r"^--set work\.train_rounds=-1: "),
    ],
)
def test_a_bad_override_is_named(overrides: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        with_overrides(SMALL, overrides)


def test_a_combination_at_fault_names_every_override() -> None:
    mesh = {**SMALL, "network": {"kind": "erdos_renyi", "avg_degree": 2.0}}
    with_overrides(mesh, ["network.kind=full"])  # each is fine on its own
    with_overrides(mesh, ["network.loss=0.1"])
    with pytest.raises(ValueError, match=r"^--set network\.kind=full --set network\.loss=0\.1: loss is modelled"):
        with_overrides(mesh, ["network.kind=full", "network.loss=0.1"])


def test_the_files_own_error_is_not_blamed_on_an_override() -> None:
    with pytest.raises(ValueError, match=r"^unknown config key\(s\): colour$"):
        with_overrides({**SMALL, "colour": "blue"}, ["miners=5"])


def test_cli_sim_set_changes_the_run_and_is_recorded(tmp_path: Path) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps(SMALL))  # JSON is YAML
    argv = ["sim", "--config", str(config), "--out", str(tmp_path / "out"), "--set", "miners=3", "--set", "seed=5"]
    assert main(argv) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["config"]["miners"] == 3 and results["config"]["seed"] == 5 and results["seed"] == 5
    assert [h["miniblocks_generated"] for h in results["protocol_results"]["heights"]] == [3]
    assert json.loads(config.read_text()) == SMALL  # the file itself is untouched


@pytest.mark.parametrize("command", ["sim", "up"])
def test_cli_names_a_bad_override_and_exits_2_before_starting_anything(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "small.yaml"
    config.write_text(json.dumps(SMALL))
    argv = [command, "--config", str(config), "--out", str(tmp_path / "out"), "--set", "netwrk.kind=full"]
    assert main(argv) == 2
    assert "--set netwrk.kind=full: unknown key 'netwrk'" in " ".join(capsys.readouterr().out.split())
    assert not (tmp_path / "out").exists()
