"""BagChain's ProtocolSpec: a config becomes data, identities, tasks, a genesis block and nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.identity import Identity
from chainlab.protocols.bagchain import FullNode, Miner, Requester
from chainlab.protocols.bagchain.messages import KeyBlock, Reward, Task, genesis
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode, tips_agree
from chainlab.scenarios.bagchain.byzantine import BEHAVIOURS, byzantine_miner
from chainlab.scenarios.bagchain.settings import CONFIG_KEYS, BagChainSettings
from chainlab.scenarios.bagchain.summary import ChainView, summarise, view_of
from chainlab.scenarios.base import (
    Deployment,
    Figure,
    MetricFamily,
    MetricUpdate,
    NodeSlot,
    ProtocolSpec,
    ReportLayout,
    check_slot_identity,
)
from chainlab.scenarios.chaos import Byzantine, parse_chaos
from chainlab.scenarios.data import load_split
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import flipped_shards
from chainlab.work.executor import learning_spec

PUBLIC, VALIDATION, TEST = "public", "validation", "test"
WARM_UP_PER_CLASS = 4  # every class present, so that any family fits
REPORT = "report"  # D_R when the experiment holds one out (protocols.md 6), else D_E again

ENSEMBLE_ACCURACY = "chainlab_bagchain_ensemble_accuracy"
MINIBLOCKS = "chainlab_bagchain_miniblocks_total"
MINIBLOCK_WASTAGE = "chainlab_bagchain_miniblock_wastage"
TASKS_COMPLETED = "chainlab_bagchain_tasks_completed_total"
TASK_ACCURACY = "chainlab_bagchain_task_accuracy"
TASK_MINIBLOCKS = "chainlab_bagchain_task_miniblocks"


def identity_of(seed: int, role: str, index: int) -> Identity:
    """A node's key pair, derived from the experiment seed so that every driver and service agrees on it.

    Anyone who knows the seed knows the keys: fine for a testbed's honest nodes, not for real money."""
    label = "requester" if role == "requester" else f"{role}:{index}"
    return Identity.from_seed(f"{seed}:{label}".encode())


def slot_name(role: str, index: int) -> str:
    """miner-0, validator-1, requester."""
    return "requester" if role == "requester" else f"{role}-{index}"


def private_name(index: int) -> str:
    """The data name of miner index's private data D_Mi."""
    return f"private:{index}"


class BagChainSpec(ProtocolSpec):
    """Seed 000: miners, non-mining validators and one requester."""

    name = "bagchain"
    roles = ("miner", "validator", "requester")  # the requester publishes its tasks once: it starts last
    config_keys = CONFIG_KEYS
    codec = CODEC
    live_adapter = "chainlab.live.adapters.bagchain"
    metric_families = (
        MetricFamily(ENSEMBLE_ACCURACY, "gauge", "Metric_best of the Key Block that finished a task", ("task",)),
        MetricFamily(MINIBLOCKS, "counter", "MiniBlocks this miner created", ("task",)),
        MetricFamily(
            MINIBLOCK_WASTAGE, "gauge", "MiniBlocks of a finished task its winning ensemble left out", ("task",)
        ),
        MetricFamily(TASKS_COMPLETED, "counter", "The requester's tasks finished on its chain"),
        MetricFamily(
            TASK_ACCURACY,
            "gauge",
            "A finished task scored on D_E by its requester, by measure: ensemble, predict, base_min, base_mean,"
            " base_max, best_possible, public",
            ("task", "measure"),
        ),
        MetricFamily(TASK_MINIBLOCKS, "gauge", "MiniBlocks generated for a finished task", ("task",)),
    )

    summary_data = (PUBLIC, TEST, REPORT)
    behaviours = tuple(BEHAVIOURS)  # see chainlab/scenarios/bagchain/byzantine.py
    report = ReportLayout(
        headline=(
            Figure("ensemble", "ensemble_accuracy", "pct"),
            Figure("base mean", "base_accuracy.mean", "pct"),
            Figure("base min", "base_accuracy.min", "pct", compact=False),
            Figure("base max", "base_accuracy.max", "pct", compact=False),
            Figure("public", "public_accuracy", "pct"),
            Figure("best possible", "best_possible_accuracy", "pct"),
            Figure("wastage", "miniblock_wastage"),
            Figure("KB interval", "key_block_interval_rounds", "rounds"),
        ),
        rows="heights",
        row_columns=(
            Figure("Height", "height", "count"),
            Figure("Task", "task_id", "id"),
            Figure("KB miner", "key_block_miner", "id", compact=False),
            Figure("Ensemble", "ensemble_accuracy", "pct"),
            Figure("Predict", "predict_accuracy", "pct", full=False),
            Figure("Base min~max", "base_accuracies", "range"),
            Figure("MBs used/gen", "miniblocks_used", "ratio", other="miniblocks_generated"),
            Figure("Best possible", "best_possible_accuracy", "pct", compact=False),
            Figure("KB after", "interval_rounds", "rounds"),
        ),
        plotted=("ensemble_accuracy", "miniblock_wastage"),  # Fig. 11/12's two panels
    )

    def validate(self, exp: Experiment) -> None:
        """Check BagChain's keys and parameters."""
        BagChainSettings.of(exp)

    def tasks(self, exp: Experiment, split_public: Dataset, validation: Dataset, test: Dataset) -> list[Task]:
        """The requester's signed tasks over the split's commitments."""
        settings = BagChainSettings.of(exp)
        requester = identity_of(exp.seed, "requester", 0)
        return [
            Task(
                train_commitment=split_public.commitment(),
                validation_commitment=validation.commitment(),
                test_commitment=test.commitment(),
                train=settings.model,
                aggregate=settings.aggregate,
                metric=settings.metric,
                metric_min=settings.metric_min,
                fee=settings.fee,
                requester_key=requester.public_key,
                sequence=k,
            ).signed_by(requester)
            for k in range(settings.tasks)
        ]

    def build(self, exp: Experiment) -> Deployment:
        """Vertices in order: miners, the requester, validators."""
        settings = BagChainSettings.of(exp)
        split = load_split(exp, settings.miners)
        tasks = self.tasks(exp, split.public, split.validation, split.test)
        queue = tuple(t.task_id for t in tasks[: settings.params.queue_length])
        requester_id = identity_of(exp.seed, "requester", 0).node_id
        gen = genesis(queue, (Reward(requester_id, settings.requester_balance),))
        payload = {"genesis": encoding.encode(gen).hex(), "tasks": ",".join(t.encode().hex() for t in tasks)}
        roles = [("miner", i) for i in range(settings.miners)] + [("requester", 0)]
        roles += [("validator", i) for i in range(settings.validators)]
        identities = [identity_of(exp.seed, r, i) for r, i in roles]
        slots = [NodeSlot(slot_name(r, i), r, i, k.node_id) for (r, i), k in zip(roles, identities, strict=True)]
        data = {PUBLIC: split.public, VALIDATION: split.validation, TEST: split.test}
        data[REPORT] = split.report if split.report is not None else split.test
        data |= {private_name(i): d for i, d in enumerate(flipped_shards(split.private, settings.label_flip))}
        # D_T is public from the start; D_V and D_E stay with the requester until it releases them.
        held = {"miner": (PUBLIC,), "requester": (PUBLIC, VALIDATION, TEST), "validator": ()}
        holdings = {slot.name: held[slot.role] for slot in slots}
        private = {s.name: private_name(s.index) for s in slots if s.role == "miner"}
        peers = _full_nodes(exp.seed, settings)
        nodes = [_node(s, k, settings, gen, tasks, exp.seed, peers) for s, k in zip(slots, identities, strict=True)]
        return Deployment(slots, nodes, data, holdings, private, payload)

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """A miner, validator or requester from the plan's genesis and tasks."""
        identity = check_slot_identity(slot, identity_of(exp.seed, slot.role, slot.index))
        gen: KeyBlock = encoding.decode(KeyBlock, bytes.fromhex(payload["genesis"]))
        tasks = [encoding.decode(Task, bytes.fromhex(t)) for t in payload["tasks"].split(",") if t]
        settings = BagChainSettings.of(exp)
        return _node(slot, identity, settings, gen, tasks, exp.seed, _full_nodes(exp.seed, settings))

    def warm_up(self, exp: Experiment, worker: Worker, held: Sequence[Dataset]) -> None:
        """Fit the model family once on a few held samples of each class: its first import takes seconds, paid
        before joining (a fit on all of a large held set would cost more than the import)."""
        if held:
            y = held[0].y
            few = np.concatenate([np.flatnonzero(y == label)[:WARM_UP_PER_CLASS] for label in np.unique(y)])
            worker.fit_plain(learning_spec(BagChainSettings.of(exp).model), held[0].subset(few), 0)

    def phase_start(self, exp: Experiment, phase: int) -> int | None:
        """Phase I (training) starts with KB_{h-1}, Phase II (ensembles) when D_V is released phase1_rounds later,
        Phase III (ranking and mining) when D_E follows phase2_rounds after that (the requester's schedule)."""
        params = BagChainSettings.of(exp).params
        starts = {1: 0, 2: params.phase1_rounds, 3: params.phase1_rounds + params.phase2_rounds}
        return starts.get(phase)

    def byzantine(self, node: ProtocolNode, behaviour: str) -> ProtocolNode:
        """A miner wrapped to lie in one of `behaviours` (byzantine.py), caught by honest nodes' validation."""
        return byzantine_miner(node, behaviour)

    def progress_total(self, exp: Experiment) -> int:
        """One height per task."""
        return BagChainSettings.of(exp).tasks

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every task, planned or taken at run time, has its Key Block on the best chain (the requester is done)
        and the full nodes agree on the tip."""
        voting = [s for s in statuses if s.votes]
        requesters_done = all(s.done for s in statuses if s.role == "requester")
        reached = bool(voting) and max(s.height for s in voting) >= self.progress_total(exp)
        return reached and requesters_done and tips_agree(voting)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """The first validator, else the first miner: a full node that checked every block."""
        for role in ("validator", "miner"):
            for slot in slots:
                if slot.role == role:
                    return slot
        raise ValueError("a BagChain network needs a miner")

    def observers(self, slots: Sequence[NodeSlot]) -> list[NodeSlot]:
        """Every validator, then every miner: each keeps the whole chain, so any of them can stand in for the observer
        (validator-0) when it is down."""
        candidates = [slot for role in ("validator", "miner") for slot in slots if slot.role == role]
        if not candidates:
            raise ValueError("a BagChain network needs a miner")
        return candidates

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> ChainView:
        """The observer's chain, read from its state."""
        if not isinstance(observer, FullNode):
            raise TypeError(f"the observer must be a full node, got {type(observer).__name__}")
        return view_of(observer)

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """Heights, ensemble/base/public/best-possible accuracy, wastage, Key Block intervals, balances."""
        if not isinstance(view, ChainView):
            raise TypeError(f"expected a BagChain ChainView, got {type(view).__name__}")
        return summarise(exp, view, data, worker, dishonest_miners(exp))

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """Ensemble accuracy and wastage when a task finishes on the best chain; MiniBlocks as they are made."""
        task = str(obs.data.get("task", ""))
        if obs.event == "tip":
            wasted = _int(obs.data.get("miniblocks_seen")) - _int(obs.data.get("miniblocks_used"))
            return (
                MetricUpdate(ENSEMBLE_ACCURACY, float(_number(obs.data.get("metric_best"))), (task,)),
                MetricUpdate(MINIBLOCK_WASTAGE, float(max(wasted, 0)), (task,)),
            )
        if obs.event == "miniblock_created":
            return (MetricUpdate(MINIBLOCKS, 1.0, (task,)),)
        if obs.event == "task_done":
            return (MetricUpdate(TASKS_COMPLETED, 1.0),)
        if obs.event == "task_scored":
            scores = [(k.removeprefix("accuracy_"), v) for k, v in obs.data.items() if k.startswith("accuracy_")]
            updates = [MetricUpdate(TASK_ACCURACY, _number(v), (task, measure)) for measure, v in scores]
            return (*updates, MetricUpdate(TASK_MINIBLOCKS, _number(obs.data.get("miniblocks")), (task,)))
        return ()


def dishonest_miners(exp: Experiment) -> frozenset[bytes]:
    """The miners that attack: the label flippers (the first ones) and every miner the chaos section turns
    Byzantine, by node ID (for the comparison block's honest reward share)."""
    settings = BagChainSettings.of(exp)
    indices = set(range(settings.flippers))
    for timed in parse_chaos(exp.get("chaos")):
        if isinstance(timed.action, Byzantine) and timed.action.node.startswith("miner-"):
            tail = timed.action.node.removeprefix("miner-")
            if tail.isdigit():
                indices.add(int(tail))
    return frozenset(identity_of(exp.seed, "miner", i).node_id for i in indices)


def _full_nodes(seed: int, settings: BagChainSettings) -> tuple[bytes, ...]:
    """The IDs of every full node (validators first: they mine nothing, so they answer catch-up soonest)."""
    roles = [("validator", i) for i in range(settings.validators)] + [("miner", i) for i in range(settings.miners)]
    return tuple(identity_of(seed, role, i).node_id for role, i in roles)


def _node(
    slot: NodeSlot,
    identity: Identity,
    settings: BagChainSettings,
    gen: KeyBlock,
    tasks: list[Task],
    seed: int,
    peers: tuple[bytes, ...] = (),
) -> ProtocolNode:
    """The node of a slot's role; full nodes know the other full nodes, to catch up from when they start behind."""
    if slot.role == "miner":
        held = frozenset(t.train_commitment for t in tasks)
        return Miner(identity, settings.params, gen, seed=seed, held=held, peers=peers)
    if slot.role == "validator":
        return FullNode(identity, settings.params, gen, seed=seed, peers=peers)
    if slot.role == "requester":
        return Requester(identity, settings.params, gen, tasks)
    raise ValueError(f"unknown BagChain role {slot.role!r} (known: {', '.join(BagChainSpec.roles)})")


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


def _int(value: object) -> int:
    return int(value) if isinstance(value, int) else 0


SPEC = BagChainSpec()
