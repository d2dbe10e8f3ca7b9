"""One results schema for both drivers: the generic figures around the protocol's own protocol_results."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from chainlab.protocols.base import NodeStatus, Observation, tips_agree
from chainlab.protocols.effects import RECORD_INTERNAL_ERROR, RECORD_REJECTED
from chainlab.scenarios.experiment import Experiment

SCHEMA = 2
Results = dict[str, Any]  # JSON-ready: what results.json holds


def rejections_by_node(records: Sequence[Observation], names: Sequence[str]) -> dict[str, dict[str, int]]:
    """{node name: {"Kind:reason": count}} from records (node indices name deployment slots)."""
    counts: dict[str, Counter[str]] = {}
    for r in records:
        if r.event == RECORD_REJECTED:
            counts.setdefault(names[r.node], Counter())[f"{r.data.get('kind')}:{r.data.get('reason')}"] += 1
    return {name: dict(sorted(c.items())) for name, c in sorted(counts.items())}


def internal_errors_by_node(records: Sequence[Observation], names: Sequence[str]) -> dict[str, int]:
    """{node name: internal errors it recorded} (failures inside a node's own process, never a peer's fault)."""
    counts: Counter[str] = Counter(names[r.node] for r in records if r.event == RECORD_INTERNAL_ERROR)
    return dict(sorted(counts.items()))


COST_KEYS = ("workers", "non_ml_seconds", "peak_rss_mb", "peak_rss_worker_mb")
# What measures the machine a run ran on, not the run: two runs of one config differ only in these.
MEASURED_KEYS = frozenset(
    {"wall_seconds", "ml_seconds", "protocol_cpu_share", "codec_cpu_share", "cpu_by_node", "round_trace", *COST_KEYS}
)


def without_measurements(results: Mapping[str, object]) -> dict[str, object]:
    """results less MEASURED_KEYS: what the same config and seed must reproduce byte for byte."""
    return {key: value for key, value in results.items() if key not in MEASURED_KEYS}


def assemble(
    exp: Experiment,
    *,
    driver: str,
    statuses: Mapping[str, NodeStatus],
    observer: str,
    rejections: Mapping[str, Mapping[str, int]],
    internal_errors: Mapping[str, int],
    protocol_results: Mapping[str, object],
    truncated: bool,
    rounds: int,
    wall_seconds: float,
    ml_seconds: float,
    round_seconds: float | None = None,
    cpu: Mapping[str, Mapping[str, float]] | None = None,
    chaos: Sequence[Mapping[str, object]] = (),
    cost: Mapping[str, float | int] | None = None,
    wire_bytes: Mapping[str, float | int] | None = None,
    protocol_share: float | None = None,
    round_trace: Mapping[str, Sequence[int] | Sequence[float]] | None = None,
) -> Results:
    """results.json: the same keys from sim and live. rejections sum every node's; forks are the observer's.

    cpu (live only) is each node's protocol, codec, process and ML time; protocol_cpu_share is the protocol core's
    share of all the nodes' process CPU (seed 001's "blockchain overhead"), codec_cpu_share the wire codec's
    (seed 001 counts it among network tasks); both None without it. chaos is the scenario's report (ChaosClock):
    each action with when it took effect and when the nodes it restarted or healed caught up. cost (simulation
    only: None live, where each node is its own process) holds `workers`, `non_ml_seconds`, `peak_rss_mb` and
    `peak_rss_worker_mb` (see chainlab.sim.experiment.run). wire_bytes counts the bytes
    delivered by kind: model or gradient payload, control, and answers served on request, by one definition in
    both drivers (chainlab.network.wire_bytes; live, summed over the nodes that answer at read-out, each since its
    last start). protocol_share stands for protocol_cpu_share where there is no cpu by node (simulation: the time
    in the nodes' handlers over the simulator's CPU plus the workers' ML). round_trace (simulation only: None
    live) samples (virtual round, wall seconds since the run began, the observer's height) as rounds advance
    (chainlab.sim.experiment.RoundTrace), so that a history on rounds or heights maps onto wall-clock seconds.
    """
    cpu = cpu or {}
    process = sum(c["process_seconds"] for c in cpu.values())
    protocol = sum(c["protocol_seconds"] for c in cpu.values())
    codec = sum(c.get("codec_seconds", 0.0) for c in cpu.values())
    total: Counter[str] = Counter()
    for per_node in rejections.values():
        total.update(per_node)
    watched = statuses.get(observer)
    return {
        "schema": SCHEMA,
        "protocol": exp.protocol_name,
        "driver": driver,
        "config": dict(exp.raw),
        "seed": exp.seed,
        "rounds": rounds,
        "wall_seconds": wall_seconds,
        "ml_seconds": ml_seconds,
        "truncated": truncated,
        "tips_agree": tips_agree(list(statuses.values())),
        "forks": watched.forks if watched is not None else 0,
        "observer": observer,
        "rejections": dict(sorted(total.items())),
        "rejections_by_node": {name: dict(c) for name, c in sorted(rejections.items()) if c},
        "internal_errors": {name: n for name, n in sorted(internal_errors.items()) if n},
        "protocol_results": dict(protocol_results),
        "round_seconds": round_seconds,  # wall seconds per round live; None in simulation (no wall clock)
        "cpu_by_node": {name: dict(c) for name, c in sorted(cpu.items())},
        "protocol_cpu_share": protocol / process if process > 0 else protocol_share,
        "codec_cpu_share": codec / process if process > 0 else None,
        "exit_codes": {},  # live: each service's exit code once stopped; no processes in simulation
        "chaos": [dict(entry) for entry in chaos],
        **{key: (cost or {}).get(key) for key in COST_KEYS},
        "wire_bytes": dict(wire_bytes) if wire_bytes is not None else None,
        "round_trace": {k: list(v) for k, v in round_trace.items()} if round_trace is not None else None,
    }
