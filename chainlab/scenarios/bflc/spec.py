"""BFLC's ProtocolSpec: a config becomes data shards, identities, attackers, a genesis model block and nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode, RecordValue, tips_agree
from chainlab.protocols.bflc import BflcNode
from chainlab.protocols.bflc import committee as draws
from chainlab.protocols.bflc.messages import Chain, ModelBlock, genesis
from chainlab.protocols.bflc.wire import CODEC
from chainlab.protocols.effects import InitModel
from chainlab.scenarios.base import (
    Analysis,
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
from chainlab.scenarios.bflc.capture import capture_tables
from chainlab.scenarios.bflc.settings import BflcSettings, malicious_ids
from chainlab.scenarios.bflc.summary import REPORT, TEST, TRAIN, summarise
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import (
    PUBLIC_SHARE,
    federated_data,
    flipped_shards,
    model_spec,
    pretrained,
    public_share_of,
)
from chainlab.work import executor

ROUNDS = "chainlab_bflc_rounds_total"
PACKED = "chainlab_bflc_packed_updates"


def identity_of(seed: int, index: int) -> Identity:
    """Participant index's key pair, derived from the experiment seed so that every driver and service agrees."""
    return Identity.from_seed(f"{seed}:bflc:{index}".encode())


def private_name(index: int) -> str:
    """The data name of participant index's shard (its training data and, on the committee, validation set)."""
    return f"private:{index}"


def genesis_block(
    exp: Experiment, settings: BflcSettings, ids: Sequence[Identity], train: Dataset, public: Dataset | None = None
) -> ModelBlock:
    """Model block #0: w_0 from the experiment seed (pre-trained on the public shard when there is one), the member
    list, and C_0 (a seeded draw; the baselines' one aggregator is the lowest ID)."""
    spec = model_spec(settings.model, train)
    weights = executor.execute(Worker(), InitModel(spec, exp.seed % 2**31), {})
    if not isinstance(weights, bytes):
        raise ValueError(f"could not initialise the model: {weights!r}")
    weights = pretrained(spec, weights, public, exp.seed)
    members = [i.node_id for i in ids]
    params = settings.params
    if params.scored:
        seats = draws.seats(params.committee, draws.active_count(params.active, len(members)))
        committee = draws.initial_committee(sha256(f"{exp.seed}:bflc:genesis".encode()), members, seats)
    else:
        committee = (min(members),)
    return genesis(weights, spec, tuple(i.public_key for i in ids), committee)


class BflcSpec(ProtocolSpec):
    """Seed 002: N participants (the "miner" service), every one a BflcNode; roles follow from the chain."""

    name = "bflc"
    roles = ("miner",)
    config_keys = frozenset({PUBLIC_SHARE})  # the rest lives in the protocol section
    codec = CODEC
    live_adapter = "chainlab.live.adapters.bflc"
    analyses = ("committee_capture",)
    metric_families = (
        MetricFamily(ROUNDS, "counter", "BFLC rounds this node committed as leader"),
        MetricFamily(PACKED, "gauge", "updates packed into the latest round this node committed"),
    )
    summary_data = (TEST, TRAIN, REPORT)
    report = ReportLayout(
        headline=(
            Figure("method", "method", "id"),
            Figure("final acc", "final_accuracy", "pct"),
            Figure("max acc", "max_accuracy", "pct", compact=False),
            Figure("stand-alone", "standalone_accuracy", "pct"),
            Figure("captured rounds", "captured_rounds", "count"),
            Figure("malicious packed", "packed_malicious", "count"),
            Figure("units/round", "units_per_round"),
            Figure("rounds", "rounds_written", "count"),
        ),
        rows="rounds",
        row_columns=(
            Figure("Round", "round", "count"),
            Figure("Accuracy", "accuracy", "pct"),
            Figure("Trainers", "trainers", "count"),
            Figure("Committee", "committee", "count"),
            Figure("Bad seats", "committee_malicious", "count"),
            Figure("Packed", "packed", "count"),
            Figure("Bad packed", "packed_malicious", "count"),
            Figure("Units", "cumulative_units", "count", compact=False),
        ),
        plotted=("final_accuracy", "packed_malicious"),
        # Figure 5: accuracy against log10 of the model-sized transfers so far (the sweep's curves.png overlays
        # the methods).
        curve=Curve(
            "log10_units",
            "log10(transmission units)",
            (Figure("global model accuracy", "accuracy", "pct"),),
            "Accuracy of w_t+1 against transmission units (model-sized transfers)",
            rows="rounds",
        ),
    )

    def validate(self, exp: Experiment) -> None:
        """Check the protocol section (scenario keys and BflcParams) and the public shard's share."""
        BflcSettings.of(exp)
        public_share_of(exp)

    def build(self, exp: Experiment) -> Deployment:
        """N participants miner-0..miner-(N-1), each with its own shard; the full test set for reports."""
        settings = BflcSettings.of(exp)
        fed = federated_data(exp, settings.nodes)
        ids = [identity_of(exp.seed, i) for i in range(settings.nodes)]
        gen = genesis_block(exp, settings, ids, fed.train, fed.public)
        bad = malicious_ids(exp, [i.node_id for i in ids])
        shards = flipped_shards(fed.shards, settings.label_flip)
        samples = [len(shard.y) for shard in shards]
        payload = {
            "genesis": encoding.encode(gen).hex(),
            "malicious": ",".join(m.hex() for m in bad),
            "samples": ",".join(str(n) for n in samples),
        }
        slots = participant_slots([ident.node_id for ident in ids])
        data = {TEST: fed.test, TRAIN: fed.train, REPORT: fed.reported}
        data |= {private_name(i): s for i, s in enumerate(shards)}
        return participant_deployment(self, exp, slots, data, payload, private_name)

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """A participant from the plan's genesis, attacker list and shard sizes."""
        settings = BflcSettings.of(exp)
        identity = check_slot_identity(slot, identity_of(exp.seed, slot.index))
        gen: ModelBlock = encoding.decode(ModelBlock, bytes.fromhex(payload["genesis"]))
        bad = frozenset(bytes.fromhex(m) for m in payload["malicious"].split(",") if m)
        samples = [int(n) for n in payload["samples"].split(",")]
        return BflcNode(
            identity,
            settings.params,
            gen,
            n_samples=samples[slot.index],
            malicious=identity.node_id in bad,
            colluders=bad,
        )

    def progress_total(self, exp: Experiment) -> int:
        """One height per FL round."""
        return BflcSettings.of(exp).params.rounds

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every voting node has all rounds written and they agree on the tip."""
        voting = [s for s in statuses if s.votes]
        total = self.progress_total(exp)
        return bool(voting) and all(s.height >= total for s in voting) and tips_agree(voting)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """miner-0: every participant holds the whole chain."""
        return slots[0]

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> Chain:
        """The observer's chain, read from its state."""
        if not isinstance(observer, BflcNode):
            raise TypeError(f"the observer must be a BflcNode, got {type(observer).__name__}")
        return Chain(observer.chain.genesis, tuple(observer.chain.rounds))

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """Accuracy per round on the full test set, committee capture, packed attackers, transmission units."""
        if not isinstance(view, Chain):
            raise TypeError(f"expected a BFLC Chain, got {type(view).__name__}")
        settings = BflcSettings.of(exp)
        members = [identity_of(exp.seed, i).node_id for i in range(settings.nodes)]
        flippers = frozenset(members[: settings.flippers])
        return summarise(exp, view, frozenset(malicious_ids(exp, members)), data, worker, flippers=flippers)

    def analyse(self, name: str, exp: Experiment) -> Analysis:
        """committee_capture (Figure 3): P[capture] exactly and over 2,000 committees drawn by the protocol's code."""
        if name != "committee_capture":
            return super().analyse(name, exp)
        tables = capture_tables(seed=f"{exp.seed}:figure-3".encode())
        rows: list[dict[str, RecordValue]] = [
            {**row, "gap": abs(row["exact"] - row["monte_carlo"])} for row in tables.rows()
        ]
        summary: dict[str, RecordValue] = {
            "population": tables.population,
            "draws": tables.draws,
            "max_gap": tables.max_gap(),
        }
        return Analysis(rows, summary, x="q", ys=("exact", "monte_carlo"), series="p")

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """Rounds committed and their packed updates, from the leader's round_committed record."""
        if obs.event != "round_committed":
            return ()
        packed = obs.data.get("packed")
        return (
            MetricUpdate(ROUNDS, 1.0),
            MetricUpdate(PACKED, float(packed) if isinstance(packed, int) else 0.0),
        )


SPEC = BflcSpec()
