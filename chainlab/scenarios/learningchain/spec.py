"""LearningChain's ProtocolSpec: a config becomes shards, identities, attackers, a genesis block B_0 and nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode
from chainlab.protocols.effects import InitModel
from chainlab.protocols.learningchain import LearningChainNode
from chainlab.protocols.learningchain.messages import Block, Chain, genesis
from chainlab.protocols.learningchain.wire import CODEC
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
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import (
    PUBLIC_SHARE,
    federated_data,
    flipped_shards,
    model_spec,
    pretrained,
    public_share_of,
)
from chainlab.scenarios.learningchain.settings import LearningChainSettings, identity_of
from chainlab.scenarios.learningchain.summary import TEST, summarise
from chainlab.work import executor

BLOCKS = "chainlab_learningchain_blocks_total"
SELECTED_BYZANTINE = "chainlab_learningchain_selected_byzantine_total"
HEIGHT = "chainlab_learningchain_height"


def private_name(index: int) -> str:
    """The data name of agent index's shard D_k."""
    return f"private:{index}"


def genesis_block(
    exp: Experiment, settings: LearningChainSettings, train: Dataset, public: Dataset | None = None
) -> Block:
    """B_0: w_0 (the federated initialisation from the experiment seed, or zeros, then pre-trained on the public
    shard when there is one) and the model spec."""
    spec = model_spec(settings.model, train)
    weights = executor.execute(Worker(), InitModel(spec, exp.seed % 2**31), {})
    if not isinstance(weights, bytes):
        raise ValueError(f"could not initialise the model: {weights!r}")
    if settings.init == "zeros":
        from chainlab.learning import dp_gradients

        classes = int(spec.params["classes"])
        shape = dp_gradients.LinearShape(classes, train.X.shape[1])
        weights = dp_gradients.encode_weights(dp_gradients.decode_weights(weights, shape) * 0.0, shape)
    return genesis(pretrained(spec, weights, public, exp.seed), spec)


class LearningChainSpec(ProtocolSpec):
    """Seed 003: K agents (the "miner" service), each a LearningChainNode holding a shard and mining."""

    name = "learningchain"
    roles = ("miner",)
    config_keys = frozenset({PUBLIC_SHARE})  # the rest lives in the protocol section
    codec = CODEC
    live_adapter = "chainlab.live.adapters.learningchain"
    max_message_mb = 16.0  # a block carries the model and all K messages: 6.3 MB for MNIST at K = 100
    metric_families = (
        MetricFamily(BLOCKS, "counter", "LearningChain blocks this node mined"),
        MetricFamily(SELECTED_BYZANTINE, "counter", "Byzantine holders' messages selected into this node's head"),
        MetricFamily(HEIGHT, "gauge", "height of this node's head"),
    )
    summary_data = (TEST,)
    report = ReportLayout(
        headline=(
            Figure("final acc", "final_accuracy", "pct"),
            Figure("final error", "final_error", "pct"),
            Figure("initial acc", "initial_accuracy", "pct", compact=False),
            Figure("blocks", "blocks", "count"),
            Figure("bad selected", "selected_attackers", "count"),
            Figure("rejected blocks", "rejected_blocks", "count"),
            Figure("block MB", "block_mb", compact=False),
        ),
        rows="heights",
        row_columns=(
            Figure("Height", "height", "count"),
            Figure("Round", "round", "count"),
            Figure("Messages", "messages", "count"),
            Figure("Bad selected", "selected_attackers", "count"),
            Figure("Accuracy", "accuracy", "pct"),
        ),
        plotted=("final_error", "selected_attackers"),
        curve=Curve(
            "height",
            "iteration (height)",
            (Figure("test accuracy", "accuracy", "pct"),),
            "Test accuracy of the head model w_t against iterations",
            rows="heights",
        ),
    )

    def validate(self, exp: Experiment) -> None:
        """Check the protocol section (scenario keys and LearningChainParams) and the public shard's share."""
        LearningChainSettings.of(exp)
        public_share_of(exp)

    def build(self, exp: Experiment) -> Deployment:
        """K agents miner-0..miner-(K-1), each with its shard (label-flipped for the first ones if asked)."""
        settings = LearningChainSettings.of(exp)
        fed = federated_data(exp, settings.nodes)
        shards = flipped_shards(fed.shards, settings.label_flip)
        gen = genesis_block(exp, settings, fed.train, fed.public)
        payload = {"genesis": encoding.encode(gen).hex()}
        slots = participant_slots([identity_of(exp.seed, i).node_id for i in range(settings.nodes)])
        report = fed.report if fed.report is not None else fed.test
        data = {TEST: report} | {private_name(i): s for i, s in enumerate(shards)}
        return participant_deployment(self, exp, slots, data, payload, private_name)

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """An agent from the plan's genesis; its attacks follow from its index."""
        settings = LearningChainSettings.of(exp)
        identity = check_slot_identity(slot, identity_of(exp.seed, slot.index))
        gen: Block = encoding.decode(Block, bytes.fromhex(payload["genesis"]))
        return LearningChainNode(
            identity,
            settings.params,
            gen,
            holders=settings.nodes,
            byzantine_holder=settings.byzantine_holder(slot.index),
            byzantine_miner=settings.byzantine_miner(slot.index),
        )

    def progress_total(self, exp: Experiment) -> int:
        """One height per iteration, T in all."""
        return LearningChainSettings.of(exp).params.rounds

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every voting node's head has reached height T (a fork at the last height may leave tips apart: PoW's
        last block is final only by convention)."""
        voting = [s for s in statuses if s.votes]
        return bool(voting) and all(s.done for s in voting)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """miner-0: every agent holds the whole chain."""
        return slots[0]

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> Chain:
        """The observer's main chain, fork count and rejections, read from its state."""
        if not isinstance(observer, LearningChainNode):
            raise TypeError(f"the observer must be a LearningChainNode, got {type(observer).__name__}")
        return observer.chain_view()

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """Accuracy per recorded height, attackers selected, blocks, forks, rejections, the comparison block."""
        if not isinstance(view, Chain):
            raise TypeError(f"expected a LearningChain Chain, got {type(view).__name__}")
        return summarise(exp, view, data, worker)

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """Blocks mined, Byzantine messages selected into a head, head height."""
        if obs.event == "block_mined":
            return (MetricUpdate(BLOCKS, 1.0),)
        if obs.event == "message_selected" and obs.data.get("byzantine") is True:
            return (MetricUpdate(SELECTED_BYZANTINE, 1.0),)
        if obs.event == "block_accepted" and obs.data.get("head") is True:
            height = obs.data.get("height")
            return (MetricUpdate(HEIGHT, float(height) if isinstance(height, int) else 0.0),)
        return ()


SPEC = LearningChainSpec()
