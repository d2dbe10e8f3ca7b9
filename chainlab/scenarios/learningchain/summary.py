"""LearningChain's protocol_results, computed by one function from the observer's chain (sim: its state; live: gRPC)."""

from __future__ import annotations

from collections.abc import Mapping

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.protocols.effects import EvaluateModel
from chainlab.protocols.learningchain.messages import Chain
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.learningchain.settings import LearningChainSettings, identity_of, pseudonym_of
from chainlab.work import executor

TEST = "test"  # the report set D_R when the experiment sets one, else the test set


def summarise(exp: Experiment, chain: Chain, data: Mapping[str, Dataset], worker: Worker) -> dict[str, object]:
    """Test accuracy of every record_every-th block's model (and the last), the attackers' share of the selected
    messages, blocks, forks, rejections by reason, and the comparison block of protocols.md 6."""
    settings = LearningChainSettings.of(exp)
    if not chain.blocks or chain.blocks[0].spec is None:
        raise ValueError("the chain has no genesis block naming the model spec")
    spec = chain.blocks[0].spec
    test = data[TEST]
    held = {test.commitment(): test}
    agents = [identity_of(exp.seed, i) for i in range(settings.nodes)]
    dishonest = settings.dishonest()
    miners = {a.public_key: i for i, a in enumerate(agents)}
    last = len(chain.blocks) - 1
    rows: list[dict[str, object]] = []
    selected_total = selected_attackers = 0
    attackers = [a for i, a in enumerate(agents) if settings.byzantine_holder(i) or _flipped(settings, i)]
    for block in chain.blocks[1:]:
        t = block.height - 1
        bad = {pseudonym_of(a, t, settings.params.fresh_pseudonyms) for a in attackers}
        chosen = [block.messages[i] for i in block.header.selected if i < len(block.messages)]
        bad_chosen = sum(1 for m in chosen if m.pseudonym in bad)
        selected_total += len(chosen)
        selected_attackers += bad_chosen
        miner = miners.get(block.header.miner_key, -1)
        measured = block.height % settings.record_every == 0 or block.height == last
        rows.append(
            {
                "height": block.height,
                "round": block.header.timestamp,
                "messages": len(block.messages),
                "selected": len(chosen),
                "selected_attackers": bad_chosen,
                "miner": miner,
                "honest_miner": miner >= 0 and miner not in dishonest,
                "bytes": len(encoding.encode(block)),
                "accuracy": _accuracy(worker, spec, block.weights, held) if measured else None,
            }
        )
    initial = _accuracy(worker, spec, chain.blocks[0].weights, held)
    measured_rows = [r for r in rows if isinstance(r["accuracy"], float)]
    accuracies = [float(r["accuracy"]) for r in measured_rows]  # type: ignore[arg-type]
    final = accuracies[-1] if accuracies else initial
    blocks = len(rows)
    chain_bytes = sum(len(encoding.encode(b)) for b in chain.blocks)
    rejections = dict(zip(chain.rejected_reasons, chain.rejected_counts, strict=False))
    honest_blocks = sum(1 for r in rows if r["honest_miner"])
    return {
        "heights": rows,
        "blocks": blocks,
        "forks": chain.forks,
        "initial_accuracy": initial,
        "final_accuracy": final,
        "final_error": 1.0 - final,
        "max_accuracy": max(accuracies, default=initial),
        "selected_messages": selected_total,
        "selected_attackers": selected_attackers,
        "honest_selected_share": 1.0 - selected_attackers / selected_total if selected_total else None,
        "rejections": rejections,
        "rejected_blocks": sum(n for r, n in rejections.items() if r.startswith("blk.") and r != "blk.unknown_parent"),
        "chain_bytes": chain_bytes,
        "block_mb": (sum(_int(r["bytes"]) for r in rows) / blocks / 1e6) if blocks else 0.0,
        "comparison": {
            "accuracy": final,
            "history": {
                "rounds": [0] + [_int(r["round"]) for r in measured_rows],
                "accuracy": [initial, *accuracies],
            },
            "chain_bytes": chain_bytes,
            "blocks": blocks,
            "forks": chain.forks,
            # The block reward is LearningChain's only reward (seed 003 leaves it unspecified): the honest share of
            # rewards is the share of main-chain blocks mined by honest agents.
            "honest_reward_share": honest_blocks / blocks if blocks else None,
        },
    }


def _flipped(settings: LearningChainSettings, index: int) -> bool:
    return index < int(settings.label_flip * settings.nodes + 1e-9)


def _accuracy(worker: Worker, spec: ModelSpec, weights: bytes, held: Mapping[bytes, Dataset]) -> float:
    (commitment,) = held
    result = executor.execute(worker, EvaluateModel(spec, weights, commitment), held)
    if not isinstance(result, float):
        raise ValueError(f"a block's weights do not evaluate: {result!r}")
    return result


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
