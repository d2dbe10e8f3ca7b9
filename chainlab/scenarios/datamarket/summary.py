"""The marketplace's protocol_results, computed by one function from a chain (sim: the observer's; live: over gRPC)
by replaying it through the contract: balances, dataset size and accuracy over time, claims, rejections, the
conservation check, and the comparison block."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.protocols.datamarket import perceptron
from chainlab.protocols.datamarket.contract import Market
from chainlab.protocols.datamarket.messages import Chain, CreateMarket
from chainlab.protocols.effects import EvaluatePerceptron
from chainlab.scenarios.datamarket.settings import MarketSettings, allocation, contributor_identity
from chainlab.scenarios.experiment import Experiment
from chainlab.work import executor

TEST, REPORT, INITIAL = "test", "report", "initial"
M1_DAYS = 6  # protocols.md 4.5 M1: growth read from the first 6 days


@dataclass(frozen=True)
class MarketView:
    """The summary's input: the observer's chain, and the content its transactions name as storage answered it
    (sim: what the observer read; live: read back from the storage service)."""

    chain: Chain
    contents: Mapping[bytes, bytes | None] = field(default_factory=dict)


def summarise(
    exp: Experiment, settings: MarketSettings, view: MarketView, data: Mapping[str, Dataset], worker: Worker
) -> dict[str, object]:
    """Replay the chain from the genesis allocation and measure what protocols.md 4.5 asks for."""
    params = settings.params
    market = Market.genesis(allocation(exp, settings))
    start_total = market.total()
    agents = {contributor_identity(exp.seed, i).node_id: a for i, a in enumerate(settings.contributors)}
    names = {node: f"{a.behaviour}-{i}" for i, (node, a) in enumerate(agents.items())}
    conserved = True
    rejections: Counter[str] = Counter()
    counts: Counter[str] = Counter()
    paid: Counter[bytes] = Counter()  # refunds, takes and rewards paid to each account
    days: list[dict[str, object]] = []
    day = params.day

    def snapshot(d: int) -> None:
        balances = {names[n]: market.balances.get(n, 0) for n in agents}
        honest = [market.balances.get(n, 0) for n, a in agents.items() if a.honest]
        bad = [market.balances.get(n, 0) for n, a in agents.items() if not a.honest]
        days.append(
            {
                "day": d,
                "dataset_size": len(market.records),
                "accuracy": market.accuracies[-1][2] if market.accuracies else None,
                "balance_honest": sum(honest) / len(honest) if honest else None,
                "balance_malicious": sum(bad) / len(bad) if bad else None,
                "balances": balances,
            }
        )

    chain_bytes = 0
    samples_by_cid = 0
    created = 0  # chain time of CreateMarket: growth is measured from it
    for block in view.chain.blocks:
        while len(days) * day <= block.time:
            snapshot(len(days))
        chain_bytes += len(encoding.encode(block))
        opened = market.terms is not None
        for outcome in market.execute_block(block, view.contents):
            if not outcome.accepted:
                rejections[f"{outcome.kind}.{outcome.reason}"] += 1
                continue
            counts[outcome.kind] += 1
            if outcome.tx.add is not None and outcome.tx.add.cid:
                counts["add_cid"] += 1
                samples_by_cid += len(market.records[outcome.record].samples)
            if outcome.kind in ("rf", "rp"):
                paid[outcome.tx.sender] += outcome.amount + outcome.reward
        conserved = conserved and market.total() == start_total
        if not opened and market.terms is not None:
            created = block.time
    end_time = view.chain.blocks[-1].time if view.chain.blocks else 0
    snapshot(len(days))
    create = market.terms
    held = data[REPORT]
    initial_acc = _accuracy(worker, _initial(create), held) if create is not None else None
    final_acc = _accuracy(worker, market.model.averaged(), held) if create is not None else None
    published = [(t, acc) for t, model, acc in market.accuracies if model == 0]
    judged = {model: acc for _, model, acc in market.accuracies if model > 0}
    uploads = [
        {"model": m.id, "parent": m.parent, "data_cids": len(m.data_cids), "accuracy": judged.get(m.id)}
        for m in market.models[1:]
    ]
    honest_paid = sum(v for n, v in paid.items() if n in agents and agents[n].honest)
    contributor_paid = sum(v for n, v in paid.items() if n in agents)
    open_days = (end_time - created) / day
    added_early = sum(1 for r in market.records if r.time < created + M1_DAYS * day)
    final = {names[n]: market.balances.get(n, 0) for n in agents}
    honest_final = [market.balances.get(n, 0) for n, a in agents.items() if a.honest]
    bad_final = [market.balances.get(n, 0) for n, a in agents.items() if not a.honest]
    return {
        "days": days,
        "days_run": round(end_time / day, 3),
        "blocks": len(view.chain.blocks),
        "accepted_additions": counts["add"],
        "dataset_size": len(market.records),
        "growth_per_day_first_6_days": added_early / min(M1_DAYS, open_days) if open_days > 0 else 0.0,
        "cid_additions": counts["add_cid"],
        "samples_by_cid": samples_by_cid,
        "uploads": uploads,
        "refunds": counts["rf"],
        "reports": counts["rp"],
        "published_accuracy": {"rounds": [t for t, _ in published], "accuracy": [a for _, a in published]},
        "initial_accuracy": initial_acc,
        "final_accuracy": final_acc,
        "initial_published": published[0][1] if published else None,
        "final_published": published[-1][1] if published else None,
        "accuracy_gain_pp": 100 * (final_acc - initial_acc)
        if final_acc is not None and initial_acc is not None
        else None,
        "min_published": min((a for _, a in published), default=None),
        "rejections": dict(sorted(rejections.items())),
        "final_balances": final,
        "start_balances": {names[n]: a.balance for n, a in agents.items()},
        "final_balance_honest": sum(honest_final) / len(honest_final) if honest_final else None,
        "final_balance_malicious": sum(bad_final) / len(bad_final) if bad_final else None,
        "pool": market.pool,
        "escrow": market.escrow,
        "conserved": conserved,
        "revealed": market.revealed,
        "comparison": {
            "accuracy": final_acc if final_acc is not None else 0.0,
            "history": {"rounds": [t for t, _ in published], "accuracy": [a for _, a in published]},
            "chain_bytes": chain_bytes,
            "blocks": len(view.chain.blocks),
            "forks": 0,
            "honest_reward_share": honest_paid / contributor_paid if contributor_paid else None,
        },
    }


def _initial(create: CreateMarket) -> list[int]:
    return perceptron.model_of(create.weights, create.sums, create.count, create.classes).averaged()


def _accuracy(worker: Worker, weights: list[int], held: Dataset) -> float:
    op = EvaluatePerceptron(perceptron.encode_weights(weights), held.commitment())
    result = executor.execute(worker, op, {held.commitment(): held})
    if not isinstance(result, float):
        raise ValueError(f"the on-chain model does not evaluate: {result!r}")
    return result
