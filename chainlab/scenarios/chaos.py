"""The `chaos:` section: timed faults (kill, restart, partition, heal, set-link, byzantine), validated once, typed.

One scenario runs in every driver: the simulator in virtual rounds (chainlab/sim/chaos.py), `chainlab up` on its
processes and sidecars (chainlab/live/launcher.py), and `chainlab chaos render` as Chaos Mesh objects.

Each entry is a mapping with `at` and exactly one action key:

    chaos:
      - {at: {height: 1, phase: 2}, kill: {node: miner-2}}
      - {at: {round: 260}, restart: {node: miner-2}}
      - {at: {round: 120}, partition: {groups: [[miner-0, miner-1], [miner-2, validator-0, requester]]}}
      - {at: {round: 300}, heal: {}}
      - {at: {round: 10}, set-link: {a: miner-0, b: miner-1, latency_rounds: 10, bandwidth: 0.5, loss: 0.05}}
      - {at: {round: 50}, byzantine: {node: miner-3, behaviour: lazy}}

When: `{round: r}` is round r of the network's clock; `{height: h}` the first moment some running node's chain
reaches height h; `{height: h, phase: p}` the start of phase p of the work on the block at height h, i.e. the
protocol's phase_start(p) rounds after some running node's chain first reached height h - 1 (round 0 for h = 1).
A moment already past fires at once; actions due together run in list order; each runs once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chainlab.protocols.params import integer_at_least

if TYPE_CHECKING:
    from chainlab.scenarios.base import ProtocolSpec
    from chainlab.scenarios.experiment import Experiment

ACTIONS = ("kill", "restart", "partition", "heal", "set-link", "byzantine")


@dataclass(frozen=True)
class At:
    """When an action takes effect: a round, or a height (with a phase of that height's work)."""

    round: int | None = None
    height: int | None = None
    phase: int | None = None

    def describe(self) -> str:
        """`round 120`, `height 2` or `height 1 phase 2`."""
        if self.round is not None:
            return f"round {self.round}"
        return f"height {self.height}" + (f" phase {self.phase}" if self.phase is not None else "")

    def to_mapping(self) -> dict[str, int]:
        """As written in the config."""
        return {
            k: v for k, v in (("round", self.round), ("height", self.height), ("phase", self.phase)) if v is not None
        }


@dataclass(frozen=True)
class Kill:
    """SIGKILL a node: it stops receiving and acting (its sidecar keeps relaying, as live)."""

    node: str


@dataclass(frozen=True)
class Restart:
    """Start a node again, on its stored state where the driver keeps one."""

    node: str


@dataclass(frozen=True)
class Partition:
    """Cut every link between the groups; unlisted nodes keep their links. Replaces an earlier partition."""

    groups: tuple[tuple[str, ...], ...]


@dataclass(frozen=True)
class Heal:
    """Remove the partition (links switched off by set-link stay off)."""


@dataclass(frozen=True)
class SetLink:
    """Change the link between a and b, both directions: latency in rounds, MB per round (0: unlimited), loss."""

    a: str
    b: str
    latency_rounds: int
    bandwidth: float = 0.0
    loss: float = 0.0
    up: bool = True


@dataclass(frozen=True)
class Byzantine:
    """Switch a node to one of its protocol's misbehaviours (ProtocolSpec.behaviours)."""

    node: str
    behaviour: str


ChaosAction = Kill | Restart | Partition | Heal | SetLink | Byzantine


@dataclass(frozen=True)
class TimedAction:
    """One entry of the scenario: its position, when, and what."""

    index: int
    at: At
    action: ChaosAction

    @property
    def kind(self) -> str:
        """The action's config key (kill, set-link, ...)."""
        return kind_of(self.action)

    def nodes(self) -> tuple[str, ...]:
        """Every node name the action mentions."""
        match self.action:
            case Kill(node) | Restart(node) | Byzantine(node, _):
                return (node,)
            case Partition(groups):
                return tuple(name for group in groups for name in group)
            case SetLink(a, b):
                return (a, b)
            case Heal():
                return ()

    def describe(self) -> str:
        """`chaos[2] kill miner-2 at height 1 phase 2`."""
        return f"chaos[{self.index}] {self.kind} {' '.join(self.nodes())} at {self.at.describe()}".replace("  ", " ")

    def to_mapping(self) -> dict[str, object]:
        """The entry as results.json reports it."""
        fields: dict[str, object]
        match self.action:
            case Partition(groups):
                fields = {"groups": [list(g) for g in groups]}
            case Heal():
                fields = {}
            case _:
                fields = {k: v for k, v in vars(self.action).items()}
        return {"index": self.index, "action": self.kind, "at": self.at.to_mapping(), **fields}


def kind_of(action: ChaosAction) -> str:
    """The config key of an action."""
    match action:
        case Kill():
            return "kill"
        case Restart():
            return "restart"
        case Partition():
            return "partition"
        case Heal():
            return "heal"
        case SetLink():
            return "set-link"
        case Byzantine():
            return "byzantine"


def _number(where: str, value: object, low: float, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where} must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low:g}, {high:g}]" if high is not None else f">= {low:g}"
        raise ValueError(f"{where} must be {bound}, got {value!r}")
    return float(value)


def _name(where: str, value: object) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where} must be a node name, got {value!r}")
    return value


def _fields(where: str, value: object, required: Sequence[str], optional: Sequence[str] = ()) -> Mapping[str, object]:
    """The action's mapping, naming missing and unknown fields."""
    if value is None:
        value = {}
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a mapping of {', '.join([*required, *optional]) or 'nothing'}")
    missing = [k for k in required if k not in value]
    unknown = sorted(str(k) for k in value if k not in (*required, *optional))
    if missing:
        raise ValueError(f"{where} needs {', '.join(missing)}")
    if unknown:
        raise ValueError(
            f"{where} has unknown field(s) {', '.join(unknown)}; known: {', '.join([*required, *optional])}"
        )
    return value


def parse_at(where: str, value: object) -> At:
    """`{round: r}`, `{height: h}` or `{height: h, phase: p}`."""
    data = _fields(where, value, (), ("round", "height", "phase"))
    if ("round" in data) == ("height" in data):
        raise ValueError(f"{where} needs exactly one of round or height, got {dict(data)!r}")
    if "round" in data:
        if "phase" in data:
            raise ValueError(f"{where}: phase goes with a height, not a round")
        return At(round=integer_at_least(data["round"], f"{where}.round", 0))
    height = integer_at_least(data["height"], f"{where}.height", 1)
    phase = integer_at_least(data["phase"], f"{where}.phase", 1) if "phase" in data else None
    return At(height=height, phase=phase)


def parse_action(where: str, kind: str, value: object) -> ChaosAction:
    """One action's fields, checked."""
    here = f"{where}.{kind}"
    if kind in ("kill", "restart"):
        node = _name(f"{here}.node", _fields(here, value, ("node",))["node"])
        return Kill(node) if kind == "kill" else Restart(node)
    if kind == "heal":
        _fields(here, value, ())
        return Heal()
    if kind == "partition":
        groups = _fields(here, value, ("groups",))["groups"]
        if not isinstance(groups, list) or len(groups) < 2:
            raise ValueError(f"{here}.groups must be a list of at least two lists of node names, got {groups!r}")
        parsed: list[tuple[str, ...]] = []
        for g, group in enumerate(groups):
            if not isinstance(group, list) or not group:
                raise ValueError(f"{here}.groups[{g}] must be a non-empty list of node names, got {group!r}")
            parsed.append(tuple(_name(f"{here}.groups[{g}][{k}]", n) for k, n in enumerate(group)))
        names = [n for group in parsed for n in group]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"{here}.groups names {', '.join(twice)} more than once")
        return Partition(tuple(parsed))
    if kind == "set-link":
        data = _fields(here, value, ("a", "b", "latency_rounds"), ("bandwidth", "loss", "up"))
        a, b = _name(f"{here}.a", data["a"]), _name(f"{here}.b", data["b"])
        if a == b:
            raise ValueError(f"{here}: a link needs two different nodes, got {a} twice")
        up = data.get("up", True)
        if not isinstance(up, bool):
            raise ValueError(f"{here}.up must be true or false, got {up!r}")
        return SetLink(
            a,
            b,
            latency_rounds=integer_at_least(data["latency_rounds"], f"{here}.latency_rounds", 0),
            bandwidth=_number(f"{here}.bandwidth", data.get("bandwidth", 0.0), 0.0),
            loss=_number(f"{here}.loss", data.get("loss", 0.0), 0.0, 1.0),
            up=up,
        )
    if kind == "byzantine":
        data = _fields(here, value, ("node", "behaviour"))
        behaviour = data["behaviour"]
        if not isinstance(behaviour, str) or not behaviour:
            raise ValueError(f"{here}.behaviour must be a behaviour's name, got {behaviour!r}")
        return Byzantine(_name(f"{here}.node", data["node"]), behaviour)
    raise ValueError(f"{where}: unknown action {kind!r}; one of {', '.join(ACTIONS)}")


def parse_chaos(value: object) -> tuple[TimedAction, ...]:
    """The `chaos:` list as typed actions; ValueError naming the entry and field that is wrong."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ValueError(f"chaos must be a list of timed actions, got {type(value).__name__}")
    out = []
    for i, entry in enumerate(value):
        where = f"chaos[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{where} must be a mapping with `at` and one action, got {entry!r}")
        if "at" not in entry:
            raise ValueError(f"{where} needs `at` ({{round: r}}, {{height: h}} or {{height: h, phase: p}})")
        kinds = [str(k) for k in entry if k != "at"]
        if len(kinds) != 1:
            raise ValueError(f"{where} needs exactly one action ({', '.join(ACTIONS)}), got {kinds or 'none'}")
        out.append(TimedAction(i, parse_at(f"{where}.at", entry["at"]), parse_action(where, kinds[0], entry[kinds[0]])))
    return tuple(out)


def check_against(actions: Sequence[TimedAction], spec: ProtocolSpec, exp: Experiment) -> None:
    """What only the protocol knows: its behaviours, and whether it has the phases named."""
    for timed in actions:
        action = timed.action
        if isinstance(action, Byzantine) and action.behaviour not in spec.behaviours:
            known = ", ".join(spec.behaviours) or "none"
            raise ValueError(
                f"chaos[{timed.index}].byzantine.behaviour {action.behaviour!r} is not one of {spec.name}'s ({known})"
            )
        phase = timed.at.phase
        if phase is not None and spec.phase_start(exp, phase) is None:
            raise ValueError(f"chaos[{timed.index}].at.phase: {spec.name} has no phase {phase} of a height")


def check_names(actions: Sequence[TimedAction], names: Sequence[str]) -> None:
    """Every node an action names is in the deployment (called once it is built, before anything runs)."""
    for timed in actions:
        for name in timed.nodes():
            if name not in names:
                raise ValueError(f"chaos[{timed.index}] {timed.kind}: no node {name!r} (known: {', '.join(names)})")


def scenario(exp: Experiment) -> tuple[TimedAction, ...]:
    """The experiment's chaos scenario (already validated by Experiment.from_mapping)."""
    return parse_chaos(exp.get("chaos"))


@dataclass
class Outcome:
    """When one action took effect, and when each node it restarted or healed caught up."""

    timed: TimedAction
    round: int | None = None
    seconds: float | None = None  # live: wall seconds since the network was up; None in simulation
    watched: tuple[str, ...] = ()  # restarted or healed nodes whose catch-up is measured
    target: int = 0  # the best height of the running nodes when it took effect: caught up means at least this
    caught_up: dict[str, int | None] | None = None

    def to_mapping(self, heights: Mapping[str, int] | None = None) -> dict[str, object]:
        """One entry of results.json's `chaos` section; with the final heights of the running nodes, whether each
        watched node ended level with the best of the others (None: not running at the end)."""
        caught = self.caught_up or {}
        after = {n: (r - self.round if r is not None and self.round is not None else None) for n, r in caught.items()}
        level: dict[str, bool | None] = {}
        for node in caught:
            others = [h for n, h in (heights or {}).items() if n != node]
            mine = (heights or {}).get(node)
            level[node] = None if mine is None else mine >= max(others, default=0)
        return {
            **self.timed.to_mapping(),
            "round": self.round,
            "seconds": self.seconds,
            "caught_up_round": dict(caught),
            "caught_up_after_rounds": after,
            "level_at_end": level,
        }


class ChaosClock:
    """Which actions are due, from what a driver sees (the round, the heights of the running nodes), and when the
    restarted or healed nodes catch up: their height reaches both the best height any running node had when the
    action took effect and the observer's current one (the best of the other running nodes when the node is the
    observer or the observer is down). Pure: both drivers feed it."""

    def __init__(self, actions: Sequence[TimedAction], phase_start: Callable[[int], int | None], observer: str):
        self.pending = list(actions)
        self.effects = [Outcome(a) for a in actions]
        self.phase_start = phase_start
        self.observer = observer
        self.reached: dict[int, int] = {0: 0}  # height -> the round some running node first had it
        self.partitioned: tuple[str, ...] = ()

    def begin(self, now: int) -> None:
        """The network started working at round now (live: once every service is up), not at round 0: the work on
        height 1, and so its phases, count from here."""
        self.reached[0] = now

    def _due_round(self, at: At) -> int | None:
        """The round an action is due, where it is known yet."""
        if at.round is not None:
            return at.round
        assert at.height is not None
        if at.phase is None:
            return self.reached.get(at.height)
        base = self.reached.get(at.height - 1)
        start = self.phase_start(at.phase)
        if base is None or start is None:
            return self.reached.get(at.height)
        late = self.reached.get(at.height)
        return base + start if late is None else min(base + start, late)

    def due(self, now: int, heights: Mapping[str, int]) -> list[TimedAction]:
        """The actions due at round `now` (in list order), given every running node's height; each once."""
        best = max(heights.values(), default=0)
        for h in range(1, best + 1):
            self.reached.setdefault(h, now)
        out = []
        for timed in list(self.pending):
            at = self._due_round(timed.at)
            if at is not None and at <= now:
                self.pending.remove(timed)
                out.append(timed)
        return out

    def next_round(self) -> int | None:
        """The earliest round a pending action is due at, where the heights seen so far fix it."""
        rounds = [r for r in (self._due_round(t.at) for t in self.pending) if r is not None]
        return min(rounds, default=None)

    def waits_for_a_round(self) -> bool:
        """Whether a pending action will come due by the clock alone (not on a height still to be reached)."""
        return self.next_round() is not None

    def took_effect(
        self, timed: TimedAction, now: int, heights: Mapping[str, int], seconds: float | None = None
    ) -> None:
        """Note that an action ran at round now (heights: of the running nodes just before): whom to watch catch up
        (a restarted node, the nodes of a healed partition) and the height they must reach."""
        effect = self.effects[timed.index]
        effect.round, effect.seconds = now, seconds
        effect.target = max(heights.values(), default=0)
        match timed.action:
            case Restart(node):
                effect.watched = (node,)
            case Partition(groups):
                self.partitioned = tuple(n for g in groups for n in g)
            case Heal():
                effect.watched, self.partitioned = self.partitioned, ()
        effect.caught_up = dict.fromkeys(effect.watched)

    def watching(self) -> bool:
        """Whether some restarted or healed node has not caught up yet."""
        return any(e.caught_up and None in e.caught_up.values() for e in self.effects)

    def observe(self, now: int, heights: Mapping[str, int]) -> None:
        """Note every watched node whose height has reached the reference's (running nodes only)."""
        for effect in self.effects:
            for node, done in (effect.caught_up or {}).items():
                if done is not None or node not in heights:
                    continue
                others = [h for n, h in heights.items() if n != node]
                if node != self.observer and self.observer in heights:
                    reference = heights[self.observer]
                else:
                    reference = max(others, default=0)
                if heights[node] >= max(reference, effect.target):
                    assert effect.caught_up is not None
                    effect.caught_up[node] = now

    def report(self, heights: Mapping[str, int] | None = None) -> list[dict[str, object]]:
        """results.json's `chaos`: each action, when it took effect (None: never), and the catch-ups; heights are
        the running nodes' at the end."""
        return [e.to_mapping(heights) for e in self.effects]
