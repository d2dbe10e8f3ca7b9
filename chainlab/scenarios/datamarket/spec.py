"""The marketplace's ProtocolSpec: a config becomes the binary-MNIST stand-in (or, with `task: multiclass`, the 10
digits dealt by the experiment's partition, as every protocol of the common experiment gets them), the owner's
initial perceptron, the signed CreateMarket, a genesis allocation, and the owner, sealer, contributor and off-chain
trainer nodes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from chainlab.learning import market_data
from chainlab.learning.datasets import Dataset, load_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.hashing import sha256
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode, tips_agree
from chainlab.protocols.datamarket import ContributorNode, Genesis, MarketNode, OwnerNode, SealerNode, perceptron
from chainlab.protocols.datamarket.messages import Chain, CreateMarket, Transaction
from chainlab.protocols.datamarket.node import TrainerNode, seed_of
from chainlab.protocols.datamarket.wire import CODEC
from chainlab.scenarios.base import (
    Curve,
    Deployment,
    Figure,
    MetricFamily,
    MetricUpdate,
    NodeSlot,
    ProtocolSpec,
    ReportLayout,
)
from chainlab.scenarios.data import split_report
from chainlab.scenarios.datamarket.settings import (
    MarketSettings,
    allocation,
    contributor_identity,
    owner_identity,
    sealer_identity,
    trainer_identity,
)
from chainlab.scenarios.datamarket.summary import INITIAL, REPORT, TEST, MarketView, summarise
from chainlab.scenarios.experiment import Experiment
from chainlab.scenarios.federated import PUBLIC_SHARE, federated_data, public_share_of

BALANCE = "chainlab_datamarket_balance"
ADDITIONS = "chainlab_datamarket_additions_total"
REFUNDS = "chainlab_datamarket_refunds_total"
REPORTS = "chainlab_datamarket_reports_total"
ACCURACY = "chainlab_datamarket_published_accuracy"


def stream_name(index: int) -> str:
    """The data name of contributor index's samples to add."""
    return f"stream:{index}"


def market_data_of(exp: Experiment, settings: MarketSettings) -> tuple[Dataset, Dataset, Dataset | None, list[Dataset]]:
    """(the owner's initial data, its hidden test set, the report set D_R or None, each contributor's stream), all
    binary: the training set shuffled by the seed, its first `initial` share the owner's, the rest dealt to the
    contributors by their shares; with `task: multiclass`, multiclass_data_of."""
    if settings.task == "multiclass":
        return multiclass_data_of(exp, settings)
    train, original_test = load_dataset(str(exp.get("dataset", "mnist")))
    report, test = split_report(original_test, exp.report_set, exp.seed)
    train = market_data.binary_task(train)
    order = np.random.default_rng([exp.seed, 0x4D4B]).permutation(len(train))  # 0x4D4B: "MK", the market's stream
    first = round(settings.initial * len(train))
    rest = order[first:]
    if settings.contribute is not None:
        rest = rest[: settings.contribute]
    bounds = np.floor(np.cumsum([0.0, *settings.shares()]) * len(rest) + 1e-9).astype(np.int64)
    streams = [train.subset(np.sort(rest[bounds[i] : bounds[i + 1]])) for i in range(len(settings.contributors))]
    binary_report = market_data.binary_task(report) if report is not None else None
    return train.subset(np.sort(order[:first])), market_data.binary_task(test), binary_report, streams


def multiclass_data_of(
    exp: Experiment, settings: MarketSettings
) -> tuple[Dataset, Dataset, Dataset | None, list[Dataset]]:
    """The 10-digit task of the common experiment (protocols.md 6), pixels binarised: contributor i's stream is
    shard i of federated_data (the partition every protocol gets, e.g. Dirichlet 0.5 over the 20), in an order
    shuffled by the seed and capped, shard by shard in proportion to its size, so that the streams hold `contribute`
    samples between them. The owner's initial data is the public shard (`public_share:`); without one, the first
    `initial` share of every shuffled shard (no sample is both the owner's and contributed)."""
    fed = federated_data(exp, len(settings.contributors))
    rng = np.random.default_rng([exp.seed, 0x4D4B])
    shuffled = [s.subset(rng.permutation(len(s))) for s in fed.shards]
    heads = [0 if fed.public is not None else round(settings.initial * len(s)) for s in shuffled]
    left = sum(len(s) - h for s, h in zip(shuffled, heads, strict=True))
    cap = left if settings.contribute is None else min(settings.contribute, left)
    streams = []
    for shard, head in zip(shuffled, heads, strict=True):
        size = (len(shard) - head) * cap // left if left else 0
        streams.append(market_data.binary_features(shard.subset(np.arange(head, head + size))))
    if fed.public is not None:
        initial = fed.public
    else:
        initial = Dataset.concat([s.subset(np.arange(h)) for s, h in zip(shuffled, heads, strict=True)])
    report = market_data.binary_features(fed.report) if fed.report is not None else None
    return market_data.binary_features(initial), market_data.binary_features(fed.test), report, streams


def test_file_commitment(test: Dataset) -> bytes:
    """SHA-256 of the test set's sample file: the commitment CreateMarket carries and RevealTestSet is checked by."""
    return sha256(market_data.sample_file(test, 0, len(test)))


def create_market(exp: Experiment, settings: MarketSettings, initial: Dataset, test: Dataset) -> Transaction:
    """The owner's signed CreateMarket: the perceptron fit on its initial data, the schema, the test set's SHA-256."""
    features = initial.X.shape[1]
    classes = test.n_classes if settings.task == "multiclass" else 0
    model = perceptron.fit(features, market_data.samples(initial), settings.epochs, max(classes, 2))
    weights, sums = model.flat if isinstance(model, perceptron.MultiPerceptron) else (model.w, model.a)
    p = settings.params
    body = CreateMarket(
        weights=tuple(weights),
        features=features,
        train_cids=(initial.commitment(),),
        test_commitment=test_file_commitment(test),
        day=p.day,
        tau=p.tau,
        tau2=p.tau2,
        cost_weight=p.cost_weight,
        fixed_deposit=p.fixed_deposit,
        reward=p.reward,
        sums=tuple(sums),
        count=model.c,
        classes=classes,
    )
    owner = owner_identity(exp.seed)
    return Transaction.of(owner.public_key, 0, body, value=p.reward_fund).signed_by(owner)


class DatamarketSpec(ProtocolSpec):
    """Seed 004: the owner ("requester"), a PoA sealer ("validator") and contributors ("miner") on one chain."""

    name = "datamarket"
    roles = ("validator", "requester", "miner")
    config_keys = frozenset({PUBLIC_SHARE})  # the owner's initial data with `task: multiclass`
    codec = CODEC
    live_adapter = "chainlab.live.adapters.datamarket"
    progress_unit = "round"
    summary_data = (TEST, REPORT, INITIAL)
    metric_families = (
        MetricFamily(BALANCE, "gauge", "an account's balance after its latest transaction", ("account",)),
        MetricFamily(ADDITIONS, "counter", "accepted data additions"),
        MetricFamily(REFUNDS, "counter", "accepted refunds"),
        MetricFamily(REPORTS, "counter", "accepted reports (takes)"),
        MetricFamily(ACCURACY, "gauge", "the owner's latest accuracy on its hidden test set"),
    )
    report = ReportLayout(
        headline=(
            Figure("initial acc", "initial_accuracy", "pct"),
            Figure("final acc", "final_accuracy", "pct"),
            Figure("gain (pp)", "accuracy_gain_pp"),
            Figure("added", "accepted_additions", "count"),
            Figure("per day (6 d)", "growth_per_day_first_6_days"),
            Figure("refunds", "refunds", "count"),
            Figure("reports", "reports", "count"),
            Figure("honest balance", "final_balance_honest"),
            Figure("malicious balance", "final_balance_malicious"),
            Figure("conserved", "conserved", "id", compact=False),
            Figure("days", "days_run"),
        ),
        rows="days",
        row_columns=(
            Figure("Day", "day", "count"),
            Figure("Dataset", "dataset_size", "count"),
            Figure("Accuracy", "accuracy", "pct"),
            Figure("Honest balance", "balance_honest"),
            Figure("Malicious balance", "balance_malicious"),
        ),
        plotted=("final_accuracy", "final_balance_malicious"),
        curve=Curve(
            "day",
            "simulated day",
            (Figure("honest balance", "balance_honest"), Figure("malicious balance", "balance_malicious")),
            "Agents' mean balance over time (Fig. 11)",
            rows="days",
        ),
    )

    def validate(self, exp: Experiment) -> None:
        """Check the protocol section (contributors, shares, MarketParams) and the public shard."""
        MarketSettings.of(exp)
        public_share_of(exp)

    def build(self, exp: Experiment) -> Deployment:
        """The sealer validator-0, the owner requester-0 holding the test set, contributors miner-0..N-1."""
        settings = MarketSettings.of(exp)
        initial, test, report, streams = market_data_of(exp, settings)
        create = create_market(exp, settings, initial, test)
        contributors = [contributor_identity(exp.seed, i) for i in range(len(settings.contributors))]
        payload = {
            "create": encoding.encode(create).hex(),
            "streams": ",".join(str(len(s)) for s in streams),
            "test": test.commitment().hex(),
        }
        slots = [
            NodeSlot("validator-0", "validator", 0, sealer_identity(exp.seed).node_id),
            NodeSlot("requester-0", "requester", 0, owner_identity(exp.seed).node_id),
        ] + [NodeSlot(f"miner-{i}", "miner", i, ident.node_id) for i, ident in enumerate(contributors)]
        n = len(contributors)
        slots += [
            NodeSlot(f"miner-{n + j}", "miner", n + j, trainer_identity(exp.seed, j).node_id)
            for j in range(settings.trainers)
        ]
        data = {TEST: test, INITIAL: initial} | {stream_name(i): s for i, s in enumerate(streams)}
        data[REPORT] = report if report is not None else test  # the summary measures on D_R where there is one
        holdings: dict[str, tuple[str, ...]] = {slot.name: () for slot in slots}
        holdings["requester-0"] = (TEST,)
        private = {f"miner-{i}": stream_name(i) for i in range(len(streams))}
        nodes: list[ProtocolNode] = [self.node(exp, payload, slot) for slot in slots]
        return Deployment(slots, nodes, data, holdings, private, payload)

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """A node from the plan's CreateMarket, stream lengths and the test set's commitment."""
        settings = MarketSettings.of(exp)
        streams = [int(n) for n in payload["streams"].split(",")]
        ids = [contributor_identity(exp.seed, i) for i in range(len(settings.contributors))]
        sealer = sealer_identity(exp.seed)
        genesis = Genesis(
            balances=allocation(exp, settings),
            sealer_key=sealer.public_key,
            streams={ident.node_id: n for ident, n in zip(ids, streams, strict=True)},
            honest=frozenset(i.node_id for i, a in zip(ids, settings.contributors, strict=True) if a.honest),
        )
        params = settings.params
        if slot.role == "validator":
            return SealerNode(sealer, params, genesis)
        if slot.role == "requester":
            create: Transaction = encoding.decode(Transaction, bytes.fromhex(payload["create"]))
            return OwnerNode(owner_identity(exp.seed), params, genesis, create, bytes.fromhex(payload["test"]))
        if slot.index >= len(settings.contributors):
            return TrainerNode(trainer_identity(exp.seed, slot.index - len(ids)), params, genesis)
        agent = settings.contributors[slot.index]
        return ContributorNode(ids[slot.index], params, genesis, agent, seed_of(exp.seed))

    def progress_total(self, exp: Experiment) -> int:
        """The run's longest length in rounds: `days` of chain time."""
        return MarketSettings.of(exp).params.rounds(MarketSettings.of(exp).params.days)

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every node has seen the test set revealed, and they agree on the tip."""
        return bool(statuses) and all(s.done for s in statuses) and tips_agree(statuses)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """The sealer: it holds every block first."""
        return slots[0]

    def observers(self, slots: Sequence[NodeSlot]) -> list[NodeSlot]:
        """The sealer, then the owner: every full node holds the whole chain."""
        return [slots[0], slots[1]]

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> MarketView:
        """The observer's chain, and the mean chain bytes over the full nodes."""
        if not isinstance(observer, MarketNode):
            raise TypeError(f"the observer must be a MarketNode, got {type(observer).__name__}")
        return MarketView(Chain(tuple(observer.blocks)), dict(observer.contents))

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """Balances, dataset size and published accuracy over time, claims, rejections, conservation, comparison."""
        if not isinstance(view, MarketView):
            raise TypeError(f"expected a MarketView, got {type(view).__name__}")
        return summarise(exp, MarketSettings.of(exp), view, data, worker)

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """Balances, accepted additions, refunds and reports (the sealer's records), and published accuracy."""
        data = obs.data
        if obs.event == "balance":
            balance = data.get("balance")
            value = float(balance) if isinstance(balance, int | float) else 0.0
            return (MetricUpdate(BALANCE, value, (str(data.get("account", "")),)),)
        if obs.event == "accuracy":
            acc = data.get("accuracy")
            return (MetricUpdate(ACCURACY, float(acc) if isinstance(acc, int | float) else 0.0),)
        if obs.event == "tx_applied":
            counter = {"add": ADDITIONS, "rf": REFUNDS, "rp": REPORTS}.get(str(data.get("kind")))
            return (MetricUpdate(counter, 1.0),) if counter else ()
        return ()


SPEC = DatamarketSpec()
