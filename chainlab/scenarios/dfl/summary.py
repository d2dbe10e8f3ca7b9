"""DFL's results: every node's report becomes accuracy on the full test set, chain statistics and histories."""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.protocols.dfl.messages import NodeReport
from chainlab.protocols.spec import ModelSpec
from chainlab.work.executor import net_spec


@dataclass(frozen=True)
class DflView:
    """Every node's report, by slot name (the summary's input in both drivers)."""

    reports: Mapping[str, NodeReport]


def summarise(
    view: DflView,
    spec: ModelSpec,
    test: Dataset,
    worker: Worker,
    *,
    report_set: Dataset | None = None,
    flippers: frozenset[bytes] = frozenset(),
) -> dict[str, object]:
    """Honest nodes' final accuracy on the full test set, chain statistics, and the mean accuracy history; the
    comparison block (protocols.md 6) measures nodes neither attacking nor label-flipped on report_set (D_R)."""
    rows: list[dict[str, object]] = []
    accuracies: dict[str, float] = {}
    for name, report in sorted(view.reports.items(), key=lambda item: _index(item[0])):
        accuracy = None if report.attacker else _accuracy(worker, spec, report.weights, test)
        if accuracy is not None:
            accuracies[name] = accuracy
        rows.append(_row(name, report, accuracy))
    honest = [r for r in view.reports.values() if not r.attacker]
    attackers = {r.node_id for r in view.reports.values() if r.attacker}
    blocks = [b for r in view.reports.values() for b in r.blocks]
    confirmations = sum(b.confirmations for b in blocks)
    ideal = sum(b.ideal for b in blocks)
    values = list(accuracies.values())
    return {
        "accuracy": {
            "mean": statistics.fmean(values) if values else None,
            "min": min(values, default=None),
            "max": max(values, default=None),
        },
        "best_node": max(accuracies, key=lambda k: accuracies[k]) if accuracies else None,
        "honest_nodes": len(honest),
        "attackers": len(attackers),
        "blocks_per_node": statistics.fmean(len(r.blocks) for r in view.reports.values()) if view.reports else 0.0,
        "blocks": len(blocks),
        "transactions_per_block": statistics.fmean(b.transactions for b in blocks) if blocks else None,
        "confirmations_per_block": confirmations / len(blocks) if blocks else None,
        "ideal_per_block": ideal / len(blocks) if blocks else None,
        "confirmation_ratio": confirmations / ideal if ideal else None,
        "attacker_reputation": _attacker_reputation(honest, attackers),
        "history": _mean_history(honest),
        "nodes": rows,
        "comparison": _comparison(view, spec, test if report_set is None else report_set, worker, flippers),
    }


def _comparison(
    view: DflView, spec: ModelSpec, report: Dataset, worker: Worker, flippers: frozenset[bytes]
) -> dict[str, object]:
    """The compare harness's block: the mean accuracy on D_R of the nodes that neither attack nor train on
    flipped labels, and the same mean over the ticks (each history point's weights measured again on D_R); chain
    bytes estimated as the model payload of the transactions in a node's finalised blocks (receipts and headers
    left out)."""
    clean = [r for r in view.reports.values() if not r.attacker and r.node_id not in flippers]
    if not clean:
        clean = [r for r in view.reports.values() if not r.attacker]
    values = [a for r in clean if (a := _accuracy(worker, spec, r.weights, report)) is not None]
    history = _report_history(clean, spec, report, worker)
    reports = list(view.reports.values())
    chain = [sum(b.transactions for b in r.blocks) * len(r.weights) for r in reports]
    return {
        "accuracy": statistics.fmean(values) if values else 0.0,
        "history": {"rounds": [int(t) for t in history["ticks"]], "accuracy": history["mean"]},
        "chain_bytes": int(statistics.fmean(chain)) if chain else 0,
        "blocks": round(statistics.fmean(len(r.blocks) for r in reports)) if reports else 0,
        "forks": 0,  # every node keeps its own chain: nothing is off a main chain
        "honest_reward_share": None,  # proof of contribution feeds an external reward system the paper leaves out
    }


def _accuracy(worker: Worker, spec: ModelSpec, weights: bytes, test: Dataset) -> float | None:
    if not weights:
        return None
    try:
        return worker.federated.evaluate(net_spec(spec), weights, test)
    except ModelCodecError:
        return None


def _row(name: str, report: NodeReport, accuracy: float | None) -> dict[str, object]:
    return {
        "node": name,
        "attacker": report.attacker,
        "accuracy": accuracy,
        "local_accuracy": report.history[-1].accuracy if report.history else None,
        "blocks": len(report.blocks),
        "transactions": report.transactions,
        "receipts": report.receipts,
        "model_updates": report.model_updates,
        "steps": report.steps,
    }


def _attacker_reputation(honest: list[NodeReport], attackers: set[bytes]) -> float | None:
    """The mean reputation honest nodes hold of the attackers they heard from."""
    values = [p.value for r in honest for p in r.reputation if p.peer in attackers]
    return statistics.fmean(values) if values else None


def _mean_history(honest: list[NodeReport]) -> dict[str, list[float]]:
    """The honest nodes' mean local accuracy at each tick that every one of them measured."""
    return _mean_at_common_ticks([[(p.tick, p.accuracy) for p in r.history] for r in honest])


def _report_history(
    clean: list[NodeReport], spec: ModelSpec, report: Dataset, worker: Worker
) -> dict[str, list[float]]:
    """The nodes' mean accuracy on the report set at each tick that every one of them measured, from the weights
    each history point carries (none without DflParams.snapshot_history: the history is then empty); weights that
    did not change between points are evaluated once."""
    measured: dict[bytes, float | None] = {}
    series: list[list[tuple[int, float]]] = []
    for node in clean:
        points = []
        for point in node.history:
            if point.weights not in measured:
                measured[point.weights] = _accuracy(worker, spec, point.weights, report)
            if (accuracy := measured[point.weights]) is not None:
                points.append((point.tick, accuracy))
        series.append(points)
    return _mean_at_common_ticks(series)


def _mean_at_common_ticks(series: list[list[tuple[int, float]]]) -> dict[str, list[float]]:
    """The mean over nodes of (tick, accuracy) series, at the ticks every node has a value for."""
    by_tick: dict[int, list[float]] = {}
    for points in series:
        for tick, accuracy in points:
            by_tick.setdefault(tick, []).append(accuracy)
    ticks = sorted(t for t, values in by_tick.items() if len(values) == len(series))
    return {"ticks": [float(t) for t in ticks], "mean": [statistics.fmean(by_tick[t]) for t in ticks]}


def _index(name: str) -> int:
    tail = name.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0
