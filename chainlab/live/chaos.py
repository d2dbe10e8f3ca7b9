"""Chaos on a running `chainlab up` network, by node name: link settings, partitions, heal, per-link stats, and
the executor of an experiment's chaos scenario (LiveChaos)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence

from rich.table import Table

from chainlab.live.netem import control
from chainlab.live.plan import NetworkPlan
from chainlab.live.runtimes import Runtime
from chainlab.scenarios.chaos import (
    At,
    Byzantine,
    ChaosClock,
    Heal,
    Kill,
    Outcome,
    Partition,
    Restart,
    SetLink,
    TimedAction,
    check_names,
)


def _names(plan: NetworkPlan) -> dict[bytes, str]:
    return {bytes.fromhex(e.node_id): e.name for e in plan.nodes}


def _id(plan: NetworkPlan, name: str) -> bytes:
    return bytes.fromhex(plan.node(name).node_id)


async def set_link(
    plan: NetworkPlan, a: str, b: str, *, latency_rounds: int, bandwidth_mb_per_round: float, loss: float, up: bool
) -> None:
    """Change the link between two nodes in both directions (each sidecar shapes what it sends)."""
    for here, there in ((a, b), (b, a)):
        await control.set_link(
            plan.node(here).sidecar,
            _id(plan, there),
            latency_rounds=latency_rounds,
            bandwidth_mb_per_round=bandwidth_mb_per_round,
            loss=loss,
            up=up,
        )


async def partition(plan: NetworkPlan, groups: Sequence[Sequence[str]]) -> dict[str, int]:
    """Cut every link between the named groups; links down per node."""
    ids = [[_id(plan, name) for name in group] for group in groups]
    downs = await control.partition_all([e.sidecar for e in plan.nodes], ids)
    return {e.name: downs[e.sidecar] for e in plan.nodes}


async def heal(plan: NetworkPlan) -> dict[str, int]:
    """Remove the partition everywhere; links still down (switched off by set_link) per node."""
    downs = await control.heal_all([e.sidecar for e in plan.nodes])
    return {e.name: downs[e.sidecar] for e in plan.nodes}


async def stats_table(plan: NetworkPlan) -> Table:
    """Per-link counters of every sidecar, one row per directed link, with the last hop delay it applied."""
    names = _names(plan)
    table = Table(title="netem links", padding=(0, 1))
    columns = ("from", "to", "up", "latency", "MB/round", "loss", "sent", "dropped", "received", "dups", "last hop")
    for column in columns:
        table.add_column(column, justify="left" if column in ("from", "to") else "right")
    for entry in plan.nodes:
        reply = await control.stats(entry.sidecar)
        for link in reply.links:
            spec = link.link
            table.add_row(
                entry.name,
                names.get(bytes(link.peer), bytes(link.peer).hex()[:8]),
                "yes" if spec.up else "no",
                f"{spec.latency_rounds:g}",
                f"{spec.bandwidth_mb_per_round:g}" if spec.bandwidth_mb_per_round else "∞",
                f"{spec.loss:g}",
                str(link.messages_sent),
                str(link.messages_dropped),
                str(link.messages_received),
                str(link.duplicates_received),
                f"{link.last_hop_rounds} rounds" if link.messages_sent else "-",
            )
    return table


class LiveChaos:
    """A chaos scenario on a running network: SIGKILL and restart through the runtime (same command, same state
    directory), partition / heal / set-link through the sidecars' NetemControl. The launcher calls step() each
    time it polls the nodes; the ChaosClock decides what is due and measures catch-up."""

    def __init__(
        self,
        actions: Sequence[TimedAction],
        plan: NetworkPlan,
        runtime: Runtime,
        phase_start: Callable[[int], int | None],
        observer: str,
        log: Callable[[str], None],
    ) -> None:
        for timed in actions:
            if isinstance(timed.action, Byzantine) and timed.at != At(round=0):
                # A live node takes its behaviour from the plan when it starts; it cannot switch in flight.
                raise ValueError(f"{timed.describe()}: live, a byzantine action must be at round 0")
        check_names(actions, [e.name for e in plan.nodes])
        self.plan = plan
        self.runtime = runtime
        self.clock = ChaosClock(actions, phase_start, observer)
        self.log = log
        self.began = time.monotonic()
        self.begun = False

    def add(self, timed: TimedAction) -> None:
        """One more action (`chainlab up --kill`), due by its own `at`."""
        check_names([timed], [e.name for e in self.plan.nodes])
        self.clock.pending.append(timed)
        self.clock.effects.append(Outcome(timed))

    async def step(self, now: int, heights: Mapping[str, int]) -> None:
        """Take the actions due at round now (heights: of the nodes that answer), then note catch-ups. The first
        step is the network's start: the phases of height 1 count from it."""
        if not self.begun:
            self.clock.begin(now)
            self.began, self.begun = time.monotonic(), True
        for timed in self.clock.due(now, heights):
            await self.apply(timed)
            self.clock.took_effect(timed, now, heights, time.monotonic() - self.began)
            self.log(f"chaos: {timed.describe()} took effect at round {now}")
        self.clock.observe(now, heights)

    async def apply(self, timed: TimedAction) -> None:
        """Carry out one action now."""
        match timed.action:
            case Kill(node):
                if self.runtime.alive(node):
                    await asyncio.to_thread(self.runtime.kill, node)
            case Restart(node):
                await asyncio.to_thread(self.runtime.restart, node)
            case Partition(groups):
                await partition(self.plan, groups)
            case Heal():
                await heal(self.plan)
            case SetLink(a, b, latency_rounds, bandwidth, loss, up):
                await set_link(
                    self.plan, a, b, latency_rounds=latency_rounds, bandwidth_mb_per_round=bandwidth, loss=loss, up=up
                )
            case Byzantine():
                pass  # at round 0: the node started with it (plan.behaviours); later ones are refused in __init__

    def busy(self) -> bool:
        """Whether an action is still to come by the clock, or a restarted or healed node has not caught up."""
        return self.clock.waits_for_a_round() or self.clock.watching()

    def report(self, heights: Mapping[str, int]) -> list[dict[str, object]]:
        """results.json's `chaos` section; heights: of the nodes that answer at the end."""
        return self.clock.report(heights)
