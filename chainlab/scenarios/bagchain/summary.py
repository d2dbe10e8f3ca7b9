"""BagChain's protocol_results, computed by one function from a chain view, for sim and live alike."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import ModelSpec as LearningSpec
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.protocols.bagchain import FullNode
from chainlab.protocols.bagchain.messages import EnsembleBlock, KeyBlock, MiniBlock
from chainlab.scenarios.bagchain import queries
from chainlab.scenarios.bagchain.settings import BagChainSettings
from chainlab.scenarios.experiment import Experiment
from chainlab.work.executor import learning_spec


@dataclass(frozen=True)
class HeightView:
    """One height of the observer's best chain: its Key Block and the task's MiniBlocks and Ensemble Blocks."""

    key_block: KeyBlock
    miniblocks: tuple[MiniBlock, ...]
    ensembles: tuple[EnsembleBlock, ...]


@dataclass(frozen=True)
class ChainView:
    """What a full node knows of a finished run: the best chain, the checked base models, and balances."""

    heights: tuple[HeightView, ...]
    models: Mapping[bytes, bytes]  # ModelHash -> weights the node fetched and checked (or trained)
    balances: Mapping[bytes, int]  # account -> balance along the best chain
    predicted: Mapping[int, float | None] | None = None  # height -> accuracy of the requester's Predict (live)


def view_of(node: FullNode) -> ChainView:
    """The chain view read straight from a full node's state (simulation)."""
    heights = []
    for h in range(1, node.chain.tip.height + 1):
        kb, mbs, ebs = queries.height(node, h)
        heights.append(HeightView(kb, tuple(mbs), tuple(ebs)))
    return ChainView(tuple(heights), dict(node.models), node.balances())


def summarise(
    exp: Experiment,
    view: ChainView,
    data: Mapping[str, Dataset],
    worker: Worker,
    dishonest: frozenset[bytes] = frozenset(),
) -> dict[str, object]:
    """Per-height and overall figures, measured on D_E from the observer's best chain; the comparison block
    (protocols.md 6) on the report set D_R, with dishonest (label flippers, Byzantine miners) for the reward share."""
    settings = BagChainSettings.of(exp)
    spec, metric, test = learning_spec(settings.model), settings.metric, data["test"]
    report = data.get("report", test)
    same = report.commitment() == test.commitment()
    history: dict[str, list[int] | list[float]] = {"rounds": [], "accuracy": []}
    rounds_seen: list[int] = []
    accuracy_seen: list[float] = []
    heights: list[dict[str, object]] = []
    previous = 0
    for hv in view.heights:
        kb = hv.key_block
        held = {mb.model_hash: view.models[mb.model_hash] for mb in hv.miniblocks if mb.model_hash in view.models}
        base, best_possible = base_and_best(worker, spec, test, settings.aggregate, metric, held)
        ensembles = {eb.hash: eb for eb in hv.ensembles}
        winner = ensembles.get(kb.ranking[0].ensemble_block) if kb.ranking else None
        members = [(mb.model_hash, held[mb.model_hash]) for mb in _members(winner, hv) if mb.model_hash in held]
        heights.append(
            {
                "height": kb.height,
                "task_id": kb.task_id.hex(),
                "key_block": kb.hash.hex(),
                "key_block_miner": kb.miner_id.hex(),
                "round": kb.timestamp,
                "interval_rounds": kb.timestamp - previous,
                "ensemble_accuracy": kb.metric_best,
                "predict_accuracy": _predicted(view, kb.height, members, spec, test, settings.aggregate, worker),
                "base_accuracies": base,
                "miniblocks_generated": len(hv.miniblocks),
                "miniblocks_used": len(winner.miniblocks) if winner else 0,
                "best_possible_accuracy": best_possible,
            }
        )
        previous = kb.timestamp
        predicted = heights[-1]["predict_accuracy"]
        if same and isinstance(predicted, float):
            on_report: float | None = predicted
        else:
            on_report = _predicted(ChainView((), {}, {}), kb.height, members, spec, report, settings.aggregate, worker)
        rounds_seen.append(kb.timestamp)
        accuracy_seen.append(on_report if on_report is not None else 0.0)
    history["rounds"], history["accuracy"] = rounds_seen, accuracy_seen
    public_model = worker.fit_plain(spec, data["public"], exp.seed)
    all_base = [a for h in heights for a in _floats(h["base_accuracies"])]
    return {
        "heights": heights,
        "ensemble_accuracy": _mean([_float(h["ensemble_accuracy"]) for h in heights]),
        "base_accuracy": {
            "min": min(all_base, default=0.0),
            "mean": _mean(all_base),
            "max": max(all_base, default=0.0),
        },
        "public_accuracy": worker.base_metric(sha256(public_model), public_model, spec, test, metric),
        "best_possible_accuracy": _mean([_float(h["best_possible_accuracy"]) for h in heights]),
        "miniblock_wastage": _mean([_float(h["miniblocks_generated"]) - _float(h["miniblocks_used"]) for h in heights]),
        "key_block_interval_rounds": _mean([_float(h["interval_rounds"]) for h in heights]),
        "balances": {account.hex(): amount for account, amount in sorted(view.balances.items())},
        "comparison": {
            "accuracy": accuracy_seen[-1] if accuracy_seen else 0.0,  # the last task's winning ensemble on D_R
            "history": history,
            "chain_bytes": _chain_bytes(view),
            "blocks": len(view.heights),  # Key Blocks on the best chain (one per height)
            "forks": 0,  # the view holds the best chain only; results.json's `forks` counts the observer's forks
            "honest_reward_share": _honest_share(view, dishonest),
        },
    }


def _chain_bytes(view: ChainView) -> int:
    """Bytes of the best chain a full node stores: every Key Block, MiniBlock and Ensemble Block, encoded (the
    base models' weights live off chain)."""
    total = 0
    for hv in view.heights:
        total += len(encoding.encode(hv.key_block))
        total += sum(len(encoding.encode(mb)) for mb in hv.miniblocks)
        total += sum(len(encoding.encode(eb)) for eb in hv.ensembles)
    return total


def _honest_share(view: ChainView, dishonest: frozenset[bytes]) -> float | None:
    """The share of the rewards Key Blocks paid (fees and block rewards) that went to honest accounts."""
    paid = [r for hv in view.heights for r in hv.key_block.rewards]
    total = sum(r.amount for r in paid)
    if total <= 0:
        return None
    return sum(r.amount for r in paid if r.recipient not in dishonest) / total


def base_and_best(
    worker: Worker, spec: LearningSpec, test: Dataset, aggregate: str, metric: str, held: Mapping[bytes, bytes]
) -> tuple[list[float], float]:
    """Each base model's metric on D_E, and the best possible: all of them ensembled (0 when none is held)."""
    ordered = sorted(held.items())
    base = [worker.base_metric(h, m, spec, test, metric) for h, m in ordered]
    return base, (worker.ensemble_metric(ordered, spec, test, aggregate, metric) if held else 0.0)


def _members(winner: EnsembleBlock | None, hv: HeightView) -> list[MiniBlock]:
    if winner is None:
        return []
    by_hash = {mb.hash: mb for mb in hv.miniblocks}
    return [by_hash[h] for h in winner.miniblocks if h in by_hash]


def _predicted(
    view: ChainView,
    height: int,
    members: list[tuple[bytes, bytes]],
    spec: LearningSpec,
    test: Dataset,
    aggregate: str,
    worker: Worker,
) -> float | None:
    """Accuracy on D_E of the winning ensemble's labels: as the requester's Predict served them (live), or as
    the same ensemble predicts in-process (sim)."""
    if view.predicted is not None:
        return view.predicted.get(height)
    if not members:
        return None
    labels = worker.ensemble_predict(members, spec, test.X, aggregate)
    return float(np.mean(labels == test.y))


def _float(value: object) -> float:
    assert isinstance(value, int | float)
    return float(value)


def _floats(values: object) -> Sequence[float]:
    assert isinstance(values, list)
    return [_float(v) for v in values]


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
