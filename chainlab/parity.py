"""Sim-vs-live network parity: every hop a netem sidecar charged, checked against the simulator's network model.

It reads what `chainlab up` leaves in its --out folder (plan.json and netem_stats.json) and builds the
simulator's network for the same config, so it sits above both drivers (like the CLI).
"""

from __future__ import annotations

import base64
import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from chainlab.live.launcher import NETEM_STATS_FILE
from chainlab.live.plan import NetworkPlan
from chainlab.sim.network import build_network


@dataclass
class SizeCheck:
    """The hops of one declared message size: how many netem charged, how many equal the simulator's."""

    hops: int = 0
    equal: int = 0
    netem_rounds: list[int] = field(default_factory=list)
    sim_rounds: list[int] = field(default_factory=list)


def check_hops(out: Path) -> dict[float, SizeCheck]:
    """Per declared size: each recorded hop's rounds in netem against the simulator's for that message and link."""
    plan = NetworkPlan.load(out / "plan.json")
    stats = json.loads((out / NETEM_STATS_FILE).read_text())
    exp = plan.exp()
    vertex = {bytes.fromhex(e.node_id): i for i, e in enumerate(plan.nodes)}
    network = build_network(exp.network, len(plan.nodes), exp.seed)
    by_size: defaultdict[float, SizeCheck] = defaultdict(SizeCheck)
    for entry in plan.nodes:
        here = vertex[bytes.fromhex(entry.node_id)]
        for link in stats.get(entry.name, {}).get("links", []):
            there = vertex[base64.b64decode(link["peer"])]
            edge = (min(here, there), max(here, there))
            for hop in link.get("recentHops", []):
                size, rounds = float(hop.get("sizeMb", 0.0)), int(hop.get("rounds", 0))
                simulated = network.hops(base64.b64decode(hop["messageId"]), size)[edge]
                check = by_size[size]
                check.hops += 1
                check.equal += simulated == rounds
                check.netem_rounds.append(rounds)
                check.sim_rounds.append(-1 if simulated is None else simulated)
    return dict(sorted(by_size.items()))
