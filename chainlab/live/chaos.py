"""Chaos on a running `chainlab up` network, by node name: link settings, partitions, heal, per-link stats."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from chainlab.live.netem import control
from chainlab.live.plan import NetworkPlan


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
