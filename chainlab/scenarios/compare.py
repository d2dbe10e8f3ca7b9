"""The compare family (protocols.md section 6, `make compare`): one world, several protocols, a grid of malicious
fractions, attacks and seeds, expanded into one validated Experiment per point.

The family knows no protocol: each protocol's section gives its own experiment keys and, per attack, which dotted
keys to set from the malicious fraction f. A value there is a literal, or one of these tokens:

- `$fraction`: f itself;
- `$count`: k = floor(f * participants);
- `$indices`: [0, 1, ..., k - 1] (the first k participants);
- `$byzantine:<role>:<behaviour>`: a chaos list turning <role>-0 .. <role>-(k-1) into <behaviour> at round 0.

At f = 0 no attack key is set: the clean point is run once per protocol and seed and serves every attack. With
`iid_control: true` each clean point is also run with the world's partition scheme set to iid (attack label
IID): protocols.md 6's IID control of the Dirichlet split.
Protocols reach this module only through the registry: one not registered, or whose points fail validation, is
kept out of the grid with its reason (report.md says "not run: <reason>").
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from chainlab.scenarios import registry
from chainlab.scenarios.experiment import GENERIC_KEYS, Experiment, apply_overrides

TOP_KEYS = frozenset({
    "name", "description", "deviations", "participants", "seeds", "fractions", "attacks", "timeout", "world",
    "protocols", "iid_control",
})  # fmt: skip
PROTOCOL_KEYS = frozenset({"experiment", "attacks"})
# Keys the harness sets on every point; a protocol's experiment or the world must not set them.
HARNESS_KEYS = frozenset({"name", "seed", "seeds", "sweep", "compare", "analysis"})
WORLD_KEYS = (GENERIC_KEYS | {"report_set"}) - HARNESS_KEYS - {"protocol", "description", "deviations", "paper"}
CLEAN = "none"  # the attack label of the f = 0 points
IID = "iid"  # the attack label of the IID control's points (clean, partition scheme iid)
DEFAULT_TIMEOUT_SECONDS = 900.0
TOKENS = ("$fraction", "$count", "$indices", "$byzantine")


@dataclass(frozen=True)
class ProtocolEntry:
    """One protocol's part of the compare config: its own experiment keys and how each attack is applied."""

    name: str
    experiment: Mapping[str, Any]
    attacks: Mapping[str, Mapping[str, Any]]  # attack -> {dotted key: literal or token}


@dataclass(frozen=True)
class CompareConfig:
    """A validated compare config (see the module docstring)."""

    name: str
    description: str
    deviations: tuple[str, ...]
    participants: int
    seeds: tuple[int, ...]
    fractions: tuple[float, ...]
    attacks: tuple[str, ...]
    timeout_seconds: float
    world: Mapping[str, Any]
    protocols: tuple[ProtocolEntry, ...]
    iid_control: bool = False  # also run every clean point on an iid partition

    @classmethod
    def from_mapping(cls, data: object) -> CompareConfig:
        """Check every key and value; ValueError naming the key at fault."""
        if not isinstance(data, Mapping):
            raise ValueError("a compare config must be a mapping")
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise ValueError(f"unknown compare key(s): {', '.join(sorted(map(str, unknown)))}")
        for key in ("participants", "seeds", "fractions", "attacks", "world", "protocols", "deviations"):
            if key not in data:
                raise ValueError(f"{key} is required")
        name = data.get("name", "compare")
        if not isinstance(name, str) or not name:
            raise ValueError(f"name must be a non-empty string, got {name!r}")
        description = data.get("description", "")
        if not isinstance(description, str):
            raise ValueError(f"description must be a string, got {description!r}")
        deviations = data["deviations"]
        if not isinstance(deviations, list) or not all(isinstance(d, str) for d in deviations):
            raise ValueError("deviations must be a list of strings")
        participants = data["participants"]
        if isinstance(participants, bool) or not isinstance(participants, int) or participants < 1:
            raise ValueError(f"participants must be an integer >= 1, got {participants!r}")
        seeds = data["seeds"]
        if (
            not isinstance(seeds, list)
            or not seeds
            or not all(type(s) is int for s in seeds)
            or len(set(seeds)) != len(seeds)
        ):
            raise ValueError(f"seeds must be a non-empty list of distinct integers, got {seeds!r}")
        fractions = _fractions(data["fractions"])
        attacks = data["attacks"]
        if (
            not isinstance(attacks, list)
            or not attacks
            or not all(isinstance(a, str) and a and a not in (CLEAN, IID) for a in attacks)
            or len(set(attacks)) != len(attacks)
        ):
            raise ValueError(
                f"attacks must be a non-empty list of distinct names (not {CLEAN} or {IID}), got {attacks!r}"
            )
        iid_control = data.get("iid_control", False)
        if not isinstance(iid_control, bool):
            raise ValueError(f"iid_control must be true or false, got {iid_control!r}")
        timeout = data.get("timeout", DEFAULT_TIMEOUT_SECONDS)
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
            raise ValueError(f"timeout must be seconds > 0, got {timeout!r}")
        if timeout <= 0:
            raise ValueError(f"timeout must be seconds > 0, got {timeout!r}")
        world = data["world"]
        if not isinstance(world, Mapping):
            raise ValueError("world must be a mapping of generic experiment keys")
        bad = set(world) - WORLD_KEYS
        if bad:
            raise ValueError(
                f"world: key(s) {', '.join(sorted(map(str, bad)))} not allowed"
                f" (allowed: {', '.join(sorted(WORLD_KEYS))})"
            )
        protocols = data["protocols"]
        if not isinstance(protocols, Mapping) or not protocols:
            raise ValueError("protocols must be a non-empty mapping of protocol name -> {experiment, attacks}")
        entries = tuple(_entry(str(n), section) for n, section in protocols.items())
        return cls(
            name,
            description,
            tuple(deviations),
            participants,
            tuple(seeds),
            fractions,
            tuple(attacks),
            float(timeout),
            copy.deepcopy(dict(world)),
            entries,
            iid_control,
        )


@dataclass(frozen=True)
class Point:
    """One run of the grid: a protocol at malicious fraction f under one attack (CLEAN at f = 0, IID for the IID
    control's clean points), one seed."""

    protocol: str
    fraction: float
    attack: str
    seed: int
    experiment: Experiment

    @property
    def name(self) -> str:
        """The point's folder under the compare output: <protocol>/f<f>-<attack>-s<seed>."""
        return f"{self.protocol}/f{self.fraction:g}-{self.attack}-s{self.seed}"


@dataclass(frozen=True)
class Skipped:
    """A protocol (point None) or one point kept out of the grid, and why."""

    protocol: str
    point: str | None
    reason: str


@dataclass(frozen=True)
class Expansion:
    """The grid's runnable points, in order, and what was kept out of it."""

    points: tuple[Point, ...]
    skipped: tuple[Skipped, ...]


def load_compare(path: Path) -> CompareConfig:
    """Read and validate a compare config from YAML."""
    with path.open() as f:
        data = yaml.safe_load(f)
    try:
        return CompareConfig.from_mapping(data)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def expand(config: CompareConfig, available: Sequence[str] | None = None) -> Expansion:
    """Every (protocol, f, attack, seed) point as a validated Experiment; available is the registry's names
    (by default), and a protocol outside it, or whose clean point fails validation, is skipped with its reason."""
    known = set(registry.names() if available is None else available)
    points: list[Point] = []
    skipped: list[Skipped] = []
    for entry in config.protocols:
        if entry.name not in known:
            skipped.append(Skipped(entry.name, None, "not registered"))
            continue
        try:
            registry.get(entry.name)
        except Exception as exc:  # a plug-in still being written may fail to import: reported, not fatal
            skipped.append(Skipped(entry.name, None, f"not loadable: {exc}"))
            continue
        mine: list[Point] = []
        try:
            for seed in config.seeds:
                mine.append(Point(entry.name, 0.0, CLEAN, seed, point_experiment(config, entry, 0.0, CLEAN, seed)))
        except ValueError as exc:
            skipped.append(Skipped(entry.name, None, f"invalid: {exc}"))
            continue
        if config.iid_control:
            for seed in config.seeds:
                try:
                    mine.append(Point(entry.name, 0.0, IID, seed, point_experiment(config, entry, 0.0, IID, seed)))
                except ValueError as exc:
                    skipped.append(Skipped(entry.name, f"{entry.name}/f0-{IID}-s{seed}", f"invalid: {exc}"))
        for fraction in (f for f in config.fractions if f > 0):
            for attack in config.attacks:
                for seed in config.seeds:
                    label = f"{entry.name}/f{fraction:g}-{attack}-s{seed}"
                    if attack not in entry.attacks:
                        if seed == config.seeds[0]:
                            skipped.append(Skipped(entry.name, label, f"no {attack!r} attack in its section"))
                        continue
                    try:
                        exp = point_experiment(config, entry, fraction, attack, seed)
                    except ValueError as exc:
                        skipped.append(Skipped(entry.name, label, f"invalid: {exc}"))
                        continue
                    mine.append(Point(entry.name, fraction, attack, seed, exp))
        # Clean points first for every protocol, then by f, the IID control last: a grid cut short still has its
        # baselines.
        points.extend(mine)
    order = {p.name: i for i, p in enumerate(points)}
    points.sort(key=lambda p: (p.attack == IID, p.fraction > 0, p.fraction, order[p.name]))
    return Expansion(tuple(points), tuple(skipped))


def point_experiment(
    config: CompareConfig, entry: ProtocolEntry, fraction: float, attack: str, seed: int
) -> Experiment:
    """The experiment of one point: the world, the protocol's keys, the attack's keys at f, name and seed."""
    data = merge(config.world, entry.experiment)
    protocol = dict(data.get("protocol") or {})
    protocol.setdefault("name", entry.name)
    data["protocol"] = protocol
    data["name"] = f"{config.name}-{entry.name}-f{fraction:g}-{attack}-s{seed}"
    data["seed"] = seed
    data["description"] = f"{config.name}: {entry.name} at f = {fraction:g} ({attack}), seed {seed}"
    data["deviations"] = [*config.deviations, *entry.experiment.get("deviations", [])]
    if attack == IID:
        data = apply_overrides(data, [("partition.scheme", "iid")])
    elif attack != CLEAN:
        count = math.floor(fraction * config.participants + 1e-9)
        pairs = [(path, resolve(value, fraction, count)) for path, value in entry.attacks[attack].items()]
        data = apply_overrides(data, pairs)
    return Experiment.from_mapping(data)


def resolve(value: Any, fraction: float, count: int) -> Any:
    """An attack value at f: a token's meaning (module docstring), a literal as it is."""
    if not isinstance(value, str) or not value.startswith("$"):
        return copy.deepcopy(value)
    if value == "$fraction":
        return fraction
    if value == "$count":
        return count
    if value == "$indices":
        return list(range(count))
    _, role, behaviour = value.split(":")
    return [{"at": {"round": 0}, "byzantine": {"node": f"{role}-{i}", "behaviour": behaviour}} for i in range(count)]


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """base with over laid on it, section by section (a mapping in both is merged, anything else replaced)."""
    out = copy.deepcopy(dict(base))
    for key, value in over.items():
        if key == "deviations":
            continue
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _fractions(value: object) -> tuple[float, ...]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"fractions must be a non-empty list of malicious fractions in [0, 1), got {value!r}")
    out: list[float] = []
    for f in value:
        if isinstance(f, bool) or not isinstance(f, int | float) or not math.isfinite(f) or not 0 <= f < 1:
            raise ValueError(f"fractions must lie in [0, 1), got {f!r}")
        out.append(float(f))
    if len(set(out)) != len(out):
        raise ValueError(f"fractions must be distinct, got {value!r}")
    if 0.0 not in out:
        raise ValueError("fractions must include 0 (the clean baseline every breakdown is measured against)")
    return tuple(sorted(out))


def _entry(name: str, section: object) -> ProtocolEntry:
    here = f"protocols.{name}"
    if not isinstance(section, Mapping):
        raise ValueError(f"{here} must be a mapping with keys experiment, attacks")
    unknown = set(section) - PROTOCOL_KEYS
    if unknown:
        raise ValueError(f"{here}: unknown key(s) {', '.join(sorted(map(str, unknown)))} (known: experiment, attacks)")
    experiment = section.get("experiment", {})
    if not isinstance(experiment, Mapping):
        raise ValueError(f"{here}.experiment must be a mapping of the protocol's experiment keys")
    fixed = set(experiment) & HARNESS_KEYS
    if fixed:
        raise ValueError(f"{here}.experiment: {', '.join(sorted(fixed))} set by the harness, not the config")
    protocol = experiment.get("protocol", {})
    if not isinstance(protocol, Mapping):
        raise ValueError(f"{here}.experiment.protocol must be a mapping")
    if protocol.get("name", name) != name:
        raise ValueError(f"{here}.experiment.protocol.name is {protocol.get('name')!r}, not {name!r}")
    deviations = experiment.get("deviations", [])
    if not isinstance(deviations, list) or not all(isinstance(d, str) for d in deviations):
        raise ValueError(f"{here}.experiment.deviations must be a list of strings")
    attacks = section.get("attacks", {})
    if not isinstance(attacks, Mapping):
        raise ValueError(f"{here}.attacks must be a mapping of attack name -> {{dotted key: value}}")
    checked: dict[str, dict[str, Any]] = {}
    for attack, keys in attacks.items():
        where = f"{here}.attacks.{attack}"
        if attack == CLEAN:
            raise ValueError(f"{where}: {CLEAN!r} is the clean f = 0 point, not an attack")
        if not isinstance(keys, Mapping) or not keys:
            raise ValueError(f"{where} must be a non-empty mapping of dotted key -> value")
        for path, value in keys.items():
            if not isinstance(path, str) or not path or not all(path.split(".")):
                raise ValueError(f"{where}: {path!r} is not a dotted key")
            if path.split(".")[0] in HARNESS_KEYS:
                raise ValueError(f"{where}.{path}: set by the harness, not by an attack")
            _check_token(f"{where}.{path}", value)
        checked[str(attack)] = dict(keys)
    return ProtocolEntry(name, copy.deepcopy(dict(experiment)), checked)


def _check_token(where: str, value: object) -> None:
    if not isinstance(value, str) or not value.startswith("$"):
        return
    if value in ("$fraction", "$count", "$indices"):
        return
    parts = value.split(":")
    if parts[0] == "$byzantine" and len(parts) == 3 and all(parts[1:]):
        return
    raise ValueError(f"{where}: unknown token {value!r} (known: {', '.join(TOKENS)}; $byzantine:<role>:<behaviour>)")
