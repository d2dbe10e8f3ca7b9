"""What a finished live network measured: per-task figures read from a full node's chain over gRPC."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import grpc
import numpy as np
from rich.table import Table

from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.live.plan import NetworkPlan
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.mlwork import learning_spec
from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain.messages import EnsembleBlock, KeyBlock, MiniBlock, model_hash
from chainlab.scenario import Network


async def collect_results(plan: NetworkPlan, net: Network, observer: str) -> dict[str, Any]:
    """Per-task figures from the observer's best chain; base models fetched from storage and scored on D_E."""
    exp = plan.exp()
    spec, metric = learning_spec(exp.model_spec()), str(exp.get("metric", "accuracy"))
    worker = Worker()
    storage = StorageClient(plan.storage)
    entry = plan.node(observer)
    heights: list[dict[str, Any]] = []
    try:
        async with insecure_channel(entry.listen) as channel:
            chain = queries_pb2_grpc.ChainStub(channel)
            previous = 0
            for h in range(1, exp.tasks + 1):
                reply = await chain.GetHeight(queries_pb2.HeightRequest(height=h), timeout=10.0)
                kb = encoding.from_proto(KeyBlock, reply.key_block)
                mbs = [encoding.from_proto(MiniBlock, m) for m in reply.miniblocks]
                ebs = {sha: eb for eb in (encoding.from_proto(EnsembleBlock, e) for e in reply.ensemble_blocks)
                       for sha in [eb.hash]}  # fmt: skip
                winner = ebs.get(kb.ranking[0].ensemble_block) if kb.ranking else None
                base = []
                for mb in mbs:
                    weights = await _model(chain, storage, mb)
                    if weights is not None:
                        base.append(
                            await asyncio.to_thread(worker.base_metric, mb.model_hash, weights, spec, net.test, metric)
                        )
                predicted = await _predict_accuracy(plan, net, kb.task_id)
                heights.append(
                    {
                        "height": h,
                        "task_id": kb.task_id.hex(),
                        "key_block": kb.hash.hex(),
                        "key_block_miner": kb.miner_id.hex(),
                        "round": kb.timestamp,
                        "interval_rounds": kb.timestamp - previous,
                        "ensemble_accuracy": kb.metric_best,
                        "predict_accuracy": predicted,
                        "base_accuracies": base,
                        "miniblocks_generated": len(mbs),
                        "miniblocks_used": len(winner.miniblocks) if winner else 0,
                    }
                )
                previous = kb.timestamp
            balances = {}
            for e in plan.nodes:
                request = queries_pb2.BalanceRequest(account=bytes.fromhex(e.node_id))
                balances[e.name] = int((await chain.GetBalance(request, timeout=10.0)).amount)
    finally:
        await storage.close()
    public = await asyncio.to_thread(worker.fit_plain, spec, net.public, exp.seed)
    all_base = [a for h in heights for a in h["base_accuracies"]]
    return {
        "config": dict(exp.raw),
        "seed": exp.seed,
        "driver": "live",
        "round_seconds": plan.round_seconds,
        "heights": heights,
        "ensemble_accuracy": float(np.mean([h["ensemble_accuracy"] for h in heights])) if heights else 0.0,
        "base_accuracy": {
            "min": min(all_base, default=0.0),
            "mean": float(np.mean(all_base)) if all_base else 0.0,
            "max": max(all_base, default=0.0),
        },
        "public_accuracy": worker.base_metric(sha256(public), public, spec, net.test, metric),
        "miniblock_wastage": float(np.mean([h["miniblocks_generated"] - h["miniblocks_used"] for h in heights]))
        if heights
        else 0.0,
        "key_block_interval_rounds": float(np.mean([h["interval_rounds"] for h in heights])) if heights else 0.0,
        "balances": balances,
    }


async def _model(chain: queries_pb2_grpc.ChainStub, storage: StorageClient, mb: MiniBlock) -> bytes | None:
    """A MiniBlock's base model, located by the observer and read from storage, checked against its ModelHash."""
    try:
        where = await chain.GetModel(queries_pb2.ModelLocationRequest(model_hash=mb.model_hash), timeout=10.0)
    except grpc.aio.AioRpcError:
        return None  # the observer never fetched it (e.g. its miner died before serving it)
    weights = await storage.get(where.cid)
    return weights if model_hash(weights, mb.miner_id) == mb.model_hash else None


async def _predict_accuracy(plan: NetworkPlan, net: Network, task_id: bytes) -> float | None:
    """Accuracy on D_E of the requester's Predict answer: the winning ensemble as served to its user."""
    X, y = net.test.X, net.test.y
    request = queries_pb2.PredictRequest(
        task_id=task_id, rows=len(X), features=X.shape[1], samples=np.ascontiguousarray(X, "<f4").tobytes()
    )
    async with insecure_channel(plan.node("requester").listen) as channel:
        try:
            reply = await queries_pb2_grpc.RequesterStub(channel).Predict(request, timeout=60.0)
        except grpc.aio.AioRpcError:
            return None
    return float(np.mean(np.asarray(reply.labels) == y))


def results_table(results: Mapping[str, Any], title: str) -> Table:
    """One row per task: ensemble accuracy on D_E (as ranked, and as Predict serves it), base accuracies on D_E,
    MiniBlocks used and wasted, and the wall time since the previous Key Block (the first counts start-up)."""
    seconds = float(results["round_seconds"])
    table = Table(title=title, padding=(0, 0))
    for name in ("Height", "Task", "Ensemble", "Predict", "Base min~max", "MBs used/wasted", "KB after"):
        table.add_column(name, justify="left" if name == "Task" else "right", no_wrap=True)
    for row in results["heights"]:
        base = row["base_accuracies"]
        wasted = row["miniblocks_generated"] - row["miniblocks_used"]
        predicted = row["predict_accuracy"]
        table.add_row(
            str(row["height"]),
            row["task_id"][:8],
            f"{100 * row['ensemble_accuracy']:.2f}%",
            "-" if predicted is None else f"{100 * predicted:.2f}%",
            f"{100 * min(base):.1f}~{100 * max(base):.1f}%" if base else "-",
            f"{row['miniblocks_used']}/{wasted}",
            f"{row['interval_rounds'] * seconds:.1f} s",
        )
    table.caption = (
        f"mean ensemble {100 * results['ensemble_accuracy']:.2f}%"
        f" · public model {100 * results['public_accuracy']:.2f}%"
        f" · wall {results.get('wall_seconds', 0):.0f} s"
    )
    return table
