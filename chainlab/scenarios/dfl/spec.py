"""DFL's ProtocolSpec: a config becomes shards, label-matched receipt test sets, identities, a graph and nodes."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import numpy as np

from chainlab.learning.datasets import Dataset
from chainlab.learning.federated import NetSpec
from chainlab.learning.worker import Worker
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode
from chainlab.protocols.dfl import DflNode
from chainlab.protocols.dfl.messages import Block, genesis_block
from chainlab.protocols.dfl.wire import CODEC
from chainlab.protocols.effects import InitModel
from chainlab.protocols.spec import ModelSpec
from chainlab.scenarios.base import (
    Curve,
    Deployment,
    Figure,
    MetricFamily,
    MetricUpdate,
    NodeSlot,
    ProtocolSpec,
    ReportLayout,
    check_slot_identity,
    participant_deployment,
    participant_slots,
)
from chainlab.scenarios.dfl.settings import CONFIG_KEYS, DflSettings
from chainlab.scenarios.dfl.summary import DflView, summarise
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import (
    federated_data,
    flipped_shards,
    label_matched,
    model_spec,
    noise_images,
    pretrained,
    public_share_of,
)
from chainlab.work import executor
from chainlab.work.executor import net_spec

TEST = "test"
REPORT = "report"  # D_R when the experiment holds one out, else the test set again
INITIAL = "initial"  # the payload's pre-trained w0 (hex), present only with a public shard
LOCAL_TEST_SIZE = 2000  # the label-matched test samples each node draws its receipts' 100 samples from
VALIDATION_SHAPE = (1, 28, 28)  # model parameters are checked against MNIST's shape before the data is loaded

LOCAL_ACCURACY = "chainlab_dfl_local_accuracy"
BLOCKS = "chainlab_dfl_blocks_total"
CONFIRMATIONS = "chainlab_dfl_confirmations_total"


def identity_of(seed: int, index: int) -> Identity:
    """Node index's key pair, derived from the experiment seed so that every driver and service agrees on it."""
    return Identity.from_seed(f"{seed}:dfl:{index}".encode())


def shard_name(index: int) -> str:
    """The data name of node index's own shard (its data stream)."""
    return f"shard:{index}"


def local_test_name(index: int) -> str:
    """The data name of node index's label-matched test set."""
    return f"local_test:{index}"


class DflSpec(ProtocolSpec):
    """Seed 001: identical nodes (the "miner" service) on a neighbour graph, each with its own chain."""

    name = "dfl"
    roles = ("miner",)
    config_keys = CONFIG_KEYS
    codec = CODEC
    live_adapter = "chainlab.live.adapters.dfl"
    metric_families = (
        MetricFamily(LOCAL_ACCURACY, "gauge", "The node's local accuracy (100 label-matched test samples)"),
        MetricFamily(BLOCKS, "counter", "Blocks this node finalised on its own chain"),
        MetricFamily(CONFIRMATIONS, "counter", "Confirmations in this node's finalised blocks"),
    )
    progress_unit = "round"
    # Transactions carry full weights and a draft carries T_b of them (12 of Caffe's LeNet are 21 MB).
    max_message_mb = 32.0
    summary_data = (TEST, REPORT)
    report = ReportLayout(
        headline=(
            Figure("accuracy mean", "accuracy.mean", "pct"),
            Figure("best", "accuracy.max", "pct"),
            Figure("worst", "accuracy.min", "pct", compact=False),
            Figure("confirmed", "confirmation_ratio", "pct"),
            Figure("blocks/node", "blocks_per_node"),
            Figure("tx/block", "transactions_per_block", compact=False),
            Figure("conf/block", "confirmations_per_block", compact=False),
        ),
        rows="nodes",
        row_columns=(
            Figure("Node", "node"),
            Figure("Accuracy", "accuracy", "pct"),
            Figure("Local", "local_accuracy", "pct"),
            Figure("Blocks", "blocks", "count"),
            Figure("Tx", "transactions", "count"),
            Figure("Updates", "model_updates", "count", compact=False),
        ),
        plotted=("accuracy.mean", "accuracy.min"),
        curve=Curve(
            "history.ticks",
            "tick",
            (Figure("honest nodes' mean local accuracy", "history.mean", "pct"),),
            "Mean local accuracy of honest nodes (100 label-matched test samples each)",
        ),
    )

    def validate(self, exp: Experiment) -> None:
        """Check the protocol section, the model's parameters and the graph's size."""
        settings = DflSettings.of(exp)
        params = {str(k): v for k, v in settings.model.items() if k != "family"}
        NetSpec.of(str(settings.model["family"]), {**params, "input": VALIDATION_SHAPE, "classes": 10})
        exp.network.graph_edges(settings.nodes, exp.seed)
        public_share_of(exp)

    def build(self, exp: Experiment) -> Deployment:
        """Shards by exp's partition (noise images for data poisoners), label-matched test sets, nodes 0..N-1."""
        settings = DflSettings.of(exp)
        fed = federated_data(exp, settings.nodes)
        spec = model_spec(settings.model, fed.test)
        data: dict[str, Dataset] = {TEST: fed.test, REPORT: fed.reported}
        for i, shard in enumerate(flipped_shards(fed.shards, settings.label_flip)):
            data[local_test_name(i)] = label_matched(
                fed.test, shard, LOCAL_TEST_SIZE, np.random.default_rng([exp.seed, i, 1])
            )
            poisoned = settings.attack == "data" and settings.is_attacker(i)
            data[shard_name(i)] = noise_images(shard, np.random.default_rng([exp.seed, i, 2])) if poisoned else shard
        payload = {
            "spec": json.dumps({"family": spec.family, "params_json": spec.params_json}),
            "local_test": ",".join(data[local_test_name(i)].commitment().hex() for i in range(settings.nodes)),
        }
        if fed.public is not None:
            payload[INITIAL] = _pretrained_w0(spec, fed.public, exp.seed).hex()
        slots = participant_slots([identity_of(exp.seed, i).node_id for i in range(settings.nodes)])
        return participant_deployment(self, exp, slots, data, payload, shard_name, held=lambda i: (local_test_name(i),))

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """A DflNode for the slot, from the plan's model spec and test-set commitments."""
        settings = DflSettings.of(exp)
        identity = check_slot_identity(slot, identity_of(exp.seed, slot.index))
        spec = model_spec_of(payload)
        ids = [identity_of(exp.seed, i).node_id for i in range(settings.nodes)]
        edges = exp.network.graph_edges(settings.nodes, exp.seed)
        neighbours = tuple(ids[v if u == slot.index else u] for u, v in edges if slot.index in (u, v))
        local_test = bytes.fromhex(payload["local_test"].split(",")[slot.index])
        attacker = settings.is_attacker(slot.index)
        return DflNode(
            identity,
            settings.params,
            spec,
            genesis_of(spec),
            neighbours,
            local_test,
            seed=exp.seed,
            attacker=attacker,
            poison_model=attacker and settings.attack == "model",
            initial=bytes.fromhex(payload.get(INITIAL, "")),
        )

    def progress_total(self, exp: Experiment) -> int:
        """The run's length in ticks (a node's run lasts `duration` ticks from its start)."""
        return DflSettings.of(exp).params.duration

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every node has stopped and has no job in flight."""
        return bool(statuses) and all(s.done for s in statuses)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """Node 0: DFL has no shared chain, so the view reads every node's report anyway."""
        return slots[0]

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> DflView:
        """Every node's report, read from its state."""
        reports = {}
        for name, node in nodes.items():
            if not isinstance(node, DflNode):
                raise TypeError(f"{name} is not a DFL node: {type(node).__name__}")
            reports[name] = node.report()
        return DflView(reports)

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """Accuracy of honest nodes on the full test set, chain statistics, histories."""
        if not isinstance(view, DflView):
            raise TypeError(f"expected a DflView, got {type(view).__name__}")
        test = data[TEST]
        settings = DflSettings.of(exp)
        flippers = frozenset(identity_of(exp.seed, i).node_id for i in range(settings.flippers))
        spec = model_spec(settings.model, test)
        return summarise(view, spec, test, worker, report_set=data.get(REPORT, test), flippers=flippers)

    def warm_up(self, exp: Experiment, worker: Worker, held: Sequence[Dataset]) -> None:
        """Build the model once (torch's first import takes seconds), before the node joins."""
        if held:
            worker.federated.init(net_spec(model_spec(DflSettings.of(exp).model, held[0])), 0)

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """Local accuracy as it is measured; blocks and their confirmations as they are finalised."""
        if obs.event == "accuracy":
            return (MetricUpdate(LOCAL_ACCURACY, _number(obs.data.get("accuracy"))),)
        if obs.event == "block":
            return (MetricUpdate(BLOCKS, 1.0), MetricUpdate(CONFIRMATIONS, _number(obs.data.get("confirmations"))))
        return ()


def model_spec_of(payload: Mapping[str, str]) -> ModelSpec:
    """The model spec the plan's payload carries."""
    raw = json.loads(payload["spec"])
    return ModelSpec(str(raw["family"]), str(raw["params_json"]))


def genesis_of(spec: ModelSpec) -> Block:
    """The genesis block every node shares: the model architecture."""
    return genesis_block(json.dumps({"family": spec.family, "params": spec.params}, sort_keys=True))


def _pretrained_w0(spec: ModelSpec, public: Dataset, seed: int) -> bytes:
    """w0 pre-trained by the genesis role on the public shard (protocols.md 6), which every node then starts from."""
    weights = executor.execute(Worker(), InitModel(spec, seed % 2**31), {})
    if not isinstance(weights, bytes):
        raise ValueError(f"could not initialise the model: {weights!r}")
    return pretrained(spec, weights, public, seed)


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0


SPEC = DflSpec()
