"""Scenarios: a BagChain network (data, identities, tasks, nodes) built from a config, and its summary.

Both drivers build from here, so a configuration means the same network in simulation and live."""

from __future__ import annotations

import copy
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from chainlab.learning.datasets import Dataset, load_dataset, split_validation_test
from chainlab.learning.partition import partition
from chainlab.learning.worker import Worker
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.mlwork import learning_spec
from chainlab.protocols.bagchain import BagChainParams, FullNode, Miner, Requester
from chainlab.protocols.bagchain.messages import KeyBlock, Task, genesis
from chainlab.protocols.spec import ModelSpec

_TOP_LEVEL = {
    "name", "seed", "dataset", "model", "aggregate", "metric", "metric_min", "tasks", "miners",
    "validators", "fee", "partition", "network", "protocol", "work", "max_rounds", "sweep", "compare",
    "description", "live", "deviations",
}  # fmt: skip


@dataclass(frozen=True)
class Experiment:
    """One simulation's configuration, validated."""

    raw: Mapping[str, Any]

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Experiment:
        """Check the config's keys and values now rather than mid-run."""
        unknown = set(data) - _TOP_LEVEL
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(sorted(unknown))}")
        exp = cls(data)
        exp.params()
        if exp.miners < 1 or exp.tasks < 1:
            raise ValueError("miners and tasks must be at least 1")
        return exp

    def get(self, key: str, default: Any = None) -> Any:
        """A top-level value."""
        return self.raw.get(key, default)

    @property
    def seed(self) -> int:
        """The seed of everything random in the run."""
        return int(self.get("seed", 0))

    @property
    def miners(self) -> int:
        """Number of miners N."""
        return int(self.get("miners", 10))

    @property
    def tasks(self) -> int:
        """Number of tasks, one per height."""
        return int(self.get("tasks", 3))

    def params(self) -> BagChainParams:
        """Protocol parameters."""
        return BagChainParams.from_mapping(self.get("protocol", {}))

    def model_spec(self) -> ModelSpec:
        """Train(.; f)."""
        model = self.get("model", {"family": "decision_tree"})
        return ModelSpec.of(model["family"], model.get("params", {}))

    def with_value(self, path: str, value: Any) -> Experiment:
        """A copy with one dotted key (e.g. protocol.cfs) set: one point of a sweep."""
        data = copy.deepcopy(dict(self.raw))
        data.pop("sweep", None)
        data.pop("compare", None)
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
        return Experiment.from_mapping(data)


def load_experiment(path: Path) -> Experiment:
    """Read a YAML experiment config."""
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return Experiment.from_mapping(data)


@dataclass(frozen=True)
class Observation:
    """A Record effect with when and where it happened."""

    round: int
    node: int
    event: str
    data: Mapping[str, Any]


@dataclass
class Network:
    """The built network: its nodes (miners, requester, validators, in that order) and its data."""

    nodes: list[Any]
    miners: list[Miner]
    requester: Requester
    validators: list[FullNode]
    tasks: list[Task]
    public: Dataset
    validation: Dataset
    test: Dataset
    datasets: dict[bytes, Dataset]  # by commitment: what Fetch(requester, Hash(D)) returns
    private: dict[int, Dataset]  # node index -> D_Mi


def identity_of(seed: int, role: str, index: int) -> Identity:
    """A node's key pair, derived from the experiment seed so that every driver and service agrees on it.

    Anyone who knows the seed knows the keys: fine for a testbed's honest nodes, not for real money."""
    label = "requester" if role == "requester" else f"{role}:{index}"
    return Identity.from_seed(f"{seed}:{label}".encode())


def build(exp: Experiment) -> Network:
    """Load and split the data, create identities, tasks and nodes, and wire them to the simulator."""
    rng = np.random.default_rng(exp.seed)
    train, original_test = load_dataset(str(exp.get("dataset", "mnist")))
    validation, test = split_validation_test(original_test, rng)
    split = dict(exp.get("partition", {}))
    parts = partition(
        train,
        exp.miners,
        kappa=float(split.get("kappa", 0.1)),
        zeta=float(split.get("zeta", 0.06)),
        phi=split.get("phi"),
        scheme=str(split.get("scheme", "iid")),
        beta=float(split.get("beta", 0.5)),
        rng=rng,
    )
    params = exp.params()
    requester_id = identity_of(exp.seed, "requester", 0)
    tasks = [
        Task(
            train_commitment=parts.public.commitment(),
            validation_commitment=validation.commitment(),
            test_commitment=test.commitment(),
            train=exp.model_spec(),
            aggregate=str(exp.get("aggregate", "majority")),
            metric=str(exp.get("metric", "accuracy")),
            metric_min=float(exp.get("metric_min", 0.5)),
            fee=int(exp.get("fee", 100)),
            requester_key=requester_id.public_key,
            sequence=k,
        ).signed_by(requester_id)
        for k in range(exp.tasks)
    ]
    gen = genesis(tuple(t.task_id for t in tasks[: params.queue_length]))
    miners = [Miner(identity_of(exp.seed, "miner", i), params, gen, seed=exp.seed) for i in range(exp.miners)]
    requester = Requester(requester_id, params, gen, tasks)
    validators = [
        FullNode(identity_of(exp.seed, "validator", i), params, gen, seed=exp.seed)
        for i in range(int(exp.get("validators", 0)))
    ]
    nodes: list[Any] = [*miners, requester, *validators]
    datasets = {d.commitment(): d for d in (parts.public, validation, test)}
    return Network(
        nodes,
        miners,
        requester,
        validators,
        tasks,
        parts.public,
        validation,
        test,
        datasets,
        dict(enumerate(parts.private)),
    )


def summarise(exp: Experiment, net: Network, records: list[Observation], worker: Worker) -> dict[str, Any]:
    """Per-height and overall figures, measured on D_E from the consensus chain."""
    spec = learning_spec(exp.model_spec())
    observer = net.miners[0]
    models = {h: m for miner in net.miners for h, m in miner.own_models().items()}
    created = _by_height(records, "miniblock_created")
    mined = [r for r in records if r.event == "key_block_mined"]
    metric = str(exp.get("metric", "accuracy"))
    aggregate = str(exp.get("aggregate", "majority"))

    heights: list[dict[str, Any]] = []
    for entry in observer.chain.main_chain()[1:]:
        kb: KeyBlock = observer.key_blocks[entry.block_hash]
        generated = [bytes.fromhex(r.data["model_hash"]) for r in created.get(kb.height, [])]
        base = [worker.base_metric(h, models[h], spec, net.test, metric) for h in generated]
        everything = [(h, models[h]) for h in generated]
        winner = observer.ensembles[kb.ranking[0].ensemble_block] if kb.ranking else None
        heights.append(
            {
                "height": kb.height,
                "task_id": kb.task_id.hex(),
                "key_block": kb.hash.hex(),
                "key_block_miner": kb.miner_id.hex(),
                "round": kb.timestamp,
                "ensemble_accuracy": kb.metric_best,
                "base_accuracies": base,
                "miniblocks_generated": len(generated),
                "miniblocks_used": len(winner.miniblocks) if winner else 0,
                "best_possible_accuracy": (
                    worker.ensemble_metric(everything, spec, net.test, aggregate, metric) if everything else 0.0
                ),
            }
        )
    public_model = worker.fit_plain(spec, net.public, exp.seed)
    public_accuracy = worker.base_metric(sha256(public_model), public_model, spec, net.test, metric)
    all_base = [a for h in heights for a in h["base_accuracies"]]
    found_rounds = [int(h["round"]) for h in heights]
    return {
        "config": dict(exp.raw),
        "seed": exp.seed,
        "heights": heights,
        "ensemble_accuracy": _mean([h["ensemble_accuracy"] for h in heights]),
        "base_accuracy": {
            "min": min(all_base, default=0.0),
            "mean": _mean(all_base),
            "max": max(all_base, default=0.0),
        },
        "public_accuracy": public_accuracy,
        "best_possible_accuracy": _mean([h["best_possible_accuracy"] for h in heights]),
        "miniblock_wastage": _mean([h["miniblocks_generated"] - h["miniblocks_used"] for h in heights]),
        "forks": len(mined) - len(heights),
        "key_block_interval_rounds": _mean([b - a for a, b in zip([0, *found_rounds], found_rounds, strict=False)]),
        "tips_agree": len({m.tip.hash for m in net.miners} | {v.tip.hash for v in net.validators}) == 1,
        "rejections": _count_rejections(records),
    }


def _by_height(records: list[Observation], event: str) -> dict[int, list[Observation]]:
    out: defaultdict[int, list[Observation]] = defaultdict(list)
    for r in records:
        if r.event == event:
            out[int(r.data["height"])].append(r)
    return out


def _count_rejections(records: list[Observation]) -> dict[str, int]:
    counts: defaultdict[str, int] = defaultdict(int)
    for r in records:
        if r.event == "rejected":
            counts[f"{r.data['kind']}:{r.data['reason']}"] += 1
    return dict(sorted(counts.items()))


def _mean(values: Sequence[float]) -> float:
    return float(np.mean(values)) if len(values) else 0.0
