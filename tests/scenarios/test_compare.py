"""The compare family's config: every rejection names its key; expansion into points, tokens and skips."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from chainlab.scenarios.compare import CLEAN, IID, CompareConfig, expand, load_compare, resolve

ROOT = Path(__file__).resolve().parents[2]


def base() -> dict[str, Any]:
    """A small valid compare config over DFL and BFLC (built-ins) and one protocol that is not registered."""
    return {
        "name": "cmp",
        "participants": 10,
        "seeds": [1, 2],
        "fractions": [0.0, 0.2],
        "attacks": ["label_flip", "own"],
        "world": {"dataset": "mnist", "report_set": 1000, "partition": {"scheme": "dirichlet", "beta": 0.5}},
        "deviations": ["a test"],
        "protocols": {
            "dfl": {
                "experiment": {"protocol": {"nodes": 10, "duration": 50, "model": {"family": "softmax"}}},
                "attacks": {
                    "label_flip": {"protocol.label_flip": "$fraction"},
                    "own": {"protocol.attack": "model", "protocol.attackers": "$indices"},
                },
            },
            "bflc": {
                "experiment": {"protocol": {"nodes": 10, "rounds": 2}},
                "attacks": {"label_flip": {"protocol.label_flip": "$fraction"}},
            },
            "nosuch": {"experiment": {}, "attacks": {}},
        },
    }


def changed(path: str, value: Any) -> dict[str, Any]:
    """base() with one dotted key set (value DELETE removes it)."""
    data = copy.deepcopy(base())
    node = data
    *parents, leaf = path.split("/")
    for part in parents:
        node = node[part]
    if value is DELETE:
        del node[leaf]
    else:
        node[leaf] = value
    return data


DELETE = object()


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("extra", 1, "unknown compare key(s): extra"),
        ("participants", DELETE, "participants is required"),
        ("deviations", DELETE, "deviations is required"),
        ("deviations", "x", "deviations must be a list of strings"),
        ("name", "", "name must be a non-empty string"),
        ("description", 3, "description must be a string"),
        ("participants", 0, "participants must be an integer >= 1"),
        ("participants", True, "participants must be an integer >= 1"),
        ("seeds", [], "seeds must be a non-empty list"),
        ("seeds", [1, 1], "seeds must be a non-empty list of distinct"),
        ("seeds", [1.5], "seeds must be a non-empty list of distinct integers"),
        ("fractions", [], "fractions must be a non-empty list"),
        ("fractions", [0.0, 1.0], "fractions must lie in [0, 1)"),
        ("fractions", [0.0, "x"], "fractions must lie in [0, 1)"),
        ("fractions", [0.0, 0.2, 0.2], "fractions must be distinct"),
        ("fractions", [0.1, 0.2], "fractions must include 0"),
        ("attacks", [], "attacks must be a non-empty list"),
        ("attacks", [CLEAN], "attacks must be a non-empty list"),
        ("attacks", ["a", "a"], "attacks must be a non-empty list"),
        ("attacks", [IID], "attacks must be a non-empty list"),
        ("iid_control", "yes", "iid_control must be true or false"),
        ("timeout", 0, "timeout must be seconds > 0"),
        ("timeout", "x", "timeout must be seconds > 0"),
        ("world", [], "world must be a mapping"),
        ("world/seed", 3, "world: key(s) seed not allowed"),
        ("world/protocol", {}, "world: key(s) protocol not allowed"),
        ("protocols", {}, "protocols must be a non-empty mapping"),
        ("protocols/dfl", [], "protocols.dfl must be a mapping"),
        ("protocols/dfl/extra", 1, "protocols.dfl: unknown key(s) extra"),
        ("protocols/dfl/experiment", [], "protocols.dfl.experiment must be a mapping"),
        ("protocols/dfl/experiment/seed", 1, "protocols.dfl.experiment: seed set by the harness"),
        ("protocols/dfl/experiment/protocol", 1, "protocols.dfl.experiment.protocol must be a mapping"),
        ("protocols/dfl/experiment/protocol/name", "bflc", "protocols.dfl.experiment.protocol.name is 'bflc'"),
        ("protocols/dfl/experiment/deviations", "x", "protocols.dfl.experiment.deviations must be a list"),
        ("protocols/dfl/attacks", [], "protocols.dfl.attacks must be a mapping"),
        ("protocols/dfl/attacks/none", {"a": 1}, "protocols.dfl.attacks.none: 'none' is the clean"),
        ("protocols/dfl/attacks/own", {}, "protocols.dfl.attacks.own must be a non-empty mapping"),
        ("protocols/dfl/attacks/own", {"a..b": 1}, "protocols.dfl.attacks.own: 'a..b' is not a dotted key"),
        ("protocols/dfl/attacks/own", {"seed": 1}, "protocols.dfl.attacks.own.seed: set by the harness"),
        ("protocols/dfl/attacks/own", {"a": "$nope"}, "protocols.dfl.attacks.own.a: unknown token '$nope'"),
        ("protocols/dfl/attacks/own", {"a": "$byzantine:miner"}, "unknown token '$byzantine:miner'"),
    ],
)
def test_every_rejection_names_its_key(path: str, value: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        CompareConfig.from_mapping(changed(path, value))


def test_not_a_mapping() -> None:
    with pytest.raises(ValueError, match="must be a mapping"):
        CompareConfig.from_mapping([1])


def test_expansion_runs_the_clean_point_once_and_skips_what_cannot_run() -> None:
    config = CompareConfig.from_mapping(base())
    expansion = expand(config)
    names = [p.name for p in expansion.points]
    assert names == [
        "dfl/f0-none-s1",
        "dfl/f0-none-s2",
        "bflc/f0-none-s1",
        "bflc/f0-none-s2",
        "dfl/f0.2-label_flip-s1",
        "dfl/f0.2-label_flip-s2",
        "dfl/f0.2-own-s1",
        "dfl/f0.2-own-s2",
        "bflc/f0.2-label_flip-s1",
        "bflc/f0.2-label_flip-s2",
    ]
    reasons = {(s.protocol, s.point): s.reason for s in expansion.skipped}
    assert reasons == {
        ("nosuch", None): "not registered",
        ("bflc", "bflc/f0.2-own-s1"): "no 'own' attack in its section",
    }
    own = next(p for p in expansion.points if p.name == "dfl/f0.2-own-s2")
    raw = own.experiment.raw
    assert raw["seed"] == 2 and raw["report_set"] == 1000
    assert raw["protocol"]["name"] == "dfl" and raw["protocol"]["attack"] == "model"
    assert raw["protocol"]["attackers"] == [0, 1]  # floor(0.2 * 10)
    assert raw["deviations"] == ["a test"]
    flip = next(p for p in expansion.points if p.name == "bflc/f0.2-label_flip-s1")
    assert flip.experiment.raw["protocol"]["label_flip"] == 0.2
    clean = next(p for p in expansion.points if p.name == "dfl/f0-none-s1")
    assert "label_flip" not in clean.experiment.raw["protocol"]


def test_a_protocol_whose_points_fail_validation_is_skipped_with_the_reason() -> None:
    data = changed("protocols/dfl/experiment/protocol/nodes", 1)
    expansion = expand(CompareConfig.from_mapping(data))
    assert not any(p.protocol == "dfl" for p in expansion.points)
    (dfl,) = [s for s in expansion.skipped if s.protocol == "dfl"]
    assert dfl.point is None and dfl.reason.startswith("invalid:") and "nodes must be an integer >= 2" in dfl.reason


def test_an_attack_point_that_fails_validation_is_skipped_alone() -> None:
    data = changed("protocols/bflc/attacks/label_flip", {"protocol.label_flip": 2.0})
    expansion = expand(CompareConfig.from_mapping(data))
    assert {p.name for p in expansion.points if p.protocol == "bflc"} == {"bflc/f0-none-s1", "bflc/f0-none-s2"}
    bad = [s for s in expansion.skipped if s.protocol == "bflc" and s.point and "label_flip" in s.point]
    assert len(bad) == 2 and all("label_flip must be a fraction" in s.reason for s in bad)


def test_available_limits_the_registry() -> None:
    expansion = expand(CompareConfig.from_mapping(base()), available=["bflc"])
    assert {p.protocol for p in expansion.points} == {"bflc"}
    assert ("dfl", None, "not registered") in {(s.protocol, s.point, s.reason) for s in expansion.skipped}


def test_tokens() -> None:
    assert resolve("$fraction", 0.3, 6) == 0.3
    assert resolve("$count", 0.3, 6) == 6
    assert resolve("$indices", 0.3, 3) == [0, 1, 2]
    assert resolve("$byzantine:miner:lazy", 0.1, 2) == [
        {"at": {"round": 0}, "byzantine": {"node": "miner-0", "behaviour": "lazy"}},
        {"at": {"round": 0}, "byzantine": {"node": "miner-1", "behaviour": "lazy"}},
    ]
    assert resolve("model", 0.3, 6) == "model"
    assert resolve([1], 0.3, 6) == [1]


def test_the_iid_control_runs_each_clean_point_again_on_an_iid_partition_last() -> None:
    data = base()
    del data["protocols"]["nosuch"]
    plain = expand(CompareConfig.from_mapping(data))
    data["iid_control"] = True
    config = CompareConfig.from_mapping(data)
    assert config.iid_control and not CompareConfig.from_mapping(base()).iid_control
    points = expand(config).points
    controls = [p for p in points if p.attack == IID]
    assert [p.name for p in controls] == ["dfl/f0-iid-s1", "dfl/f0-iid-s2", "bflc/f0-iid-s1", "bflc/f0-iid-s2"]
    assert points[-len(controls) :] == tuple(controls)  # after every other point: a grid cut short keeps its own
    assert [p.name for p in points if p.attack != IID] == [p.name for p in plain.points]
    for p in controls:
        assert p.fraction == 0.0 and p.experiment.raw["partition"] == {"scheme": "iid", "beta": 0.5}
        assert "label_flip" not in p.experiment.raw["protocol"]


@pytest.mark.parametrize("name", ["compare.yaml", "compare_quick.yaml", "compare_lenet5.yaml"])
def test_shipped_configs_expand(name: str) -> None:
    config = load_compare(ROOT / "experiments" / "compare" / name)
    expansion = expand(config)
    ran = {p.protocol for p in expansion.points}
    assert {"bagchain", "dfl", "bflc"} <= ran
    assert not [s for s in expansion.skipped if s.protocol in ran and s.point is None]
    invalid = [s for s in expansion.skipped if s.reason.startswith("invalid")]
    assert not invalid, invalid


def test_load_compare_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("participants: 0\n")
    with pytest.raises(ValueError, match=r"c\.yaml: "):
        load_compare(path)
