"""A DFL node fed by hand: the data stream, witnessing, buffered updates, attacks, blocks and the end of a run."""

from __future__ import annotations

import heapq

from chainlab.protocols.base import Timer
from chainlab.protocols.dfl import DflNode
from chainlab.protocols.dfl.messages import NodeReport, ReportRequest, Transaction
from chainlab.protocols.dfl.timers import ConfirmWindow, DataArrival, ReceiptWait, RecordAccuracy
from chainlab.protocols.effects import (
    PRIVATE,
    Aggregate,
    Compute,
    Effect,
    EvaluateModel,
    InitModel,
    JobFailed,
    JobResult,
    Perturb,
    Record,
    Send,
    StartTimer,
    TrainSteps,
    WorkOp,
)
from tests.protocols.dfl.conftest import IDS, LOCAL_TEST, computes, node, of_type, rejections, sends, started, tx


def test_start_initialises_the_shared_model_and_the_stream() -> None:
    n = node(0)
    effects = n.start(0)
    ((_, init),) = computes(effects, InitModel)
    assert init.seed == computes(node(1).start(0), InitModel)[0][1].seed  # every node starts from one model
    timers = {type(t.timer): t.after for t in of_type(effects, StartTimer)}
    assert 8 <= timers[DataArrival] <= 12 and timers[RecordAccuracy] == 20


def test_a_given_w0_is_the_model_from_the_start_and_nothing_is_initialised() -> None:
    n = node(0, initial=b"pretrained w0")
    effects = n.start(0)
    assert computes(effects, InitModel) == [] and n.weights == b"pretrained w0"
    # The first batch trains from it at once: no model job is in the way.
    (arrival,) = (t.timer for t in of_type(effects, StartTimer) if isinstance(t.timer, DataArrival))
    ((_, step),) = computes(n.on_timer(arrival, 10), TrainSteps)
    assert step.weights == b"pretrained w0"


def test_a_batch_is_one_sgd_step_then_a_transaction_to_every_neighbour() -> None:
    n = started(node(0, neighbours=(1, 2)))
    effects = n.on_timer(DataArrival(0), 10)
    ((job, train),) = computes(effects, TrainSteps)
    assert (train.dataset, train.steps, train.batch_size, train.iteration, train.weights) == (PRIVATE, 1, 64, 0, b"w0")
    (next_arrival,) = of_type(effects, StartTimer)
    assert next_arrival.timer == DataArrival(1) and 8 <= next_arrival.after <= 12
    out = sends(n.on_result(job, b"w1" * 1000, 10))
    assert {s.peer for s in out} == {IDS[1].node_id, IDS[2].node_id}
    t = out[0].message
    assert isinstance(t, Transaction) and t.ml_model == b"w1" * 1000 and t.ttl == 1 and t.expire_time == 70
    assert abs(out[0].size_mb - (0.002 + 0.001)) < 1e-12
    assert n.steps == 1 and n.transactions == 1


def test_stream_seeds_and_intervals_are_derived_not_random() -> None:
    a, b = started(node(0)), started(node(0))
    assert a.on_timer(DataArrival(3), 30) == b.on_timer(DataArrival(3), 30)
    other = started(node(1, neighbours=(0,)))
    seeds = {computes(x.on_timer(DataArrival(3), 30), TrainSteps)[0][1].seed for x in (started(node(0)), other)}
    assert len(seeds) == 2


def test_a_witness_evaluates_receipts_buffers_and_returns_the_copy_to_its_sender() -> None:
    n = started(node(0, neighbours=(1, 2)))
    t = tx(1)
    ((job, evaluate),) = computes(n.on_message(IDS[1].node_id, t, 3), EvaluateModel)
    assert (evaluate.weights, evaluate.dataset, evaluate.samples) == (b"model", LOCAL_TEST, 100)
    out = sends(n.on_result(job, 0.73219, 3))
    assert [s.peer for s in out] == [IDS[1].node_id]  # ttl 1: back to the sender only
    copy = out[0].message
    assert isinstance(copy, Transaction) and copy.digest == t.digest
    (r,) = copy.receipts
    assert (r.accuracy, r.received_at_ttl, r.creator, r.create_time) == ("0.7322", 0, IDS[0].node_id, 3)
    assert n.buffer[0].accuracy == 0.7322 and n.buffer[0].generator == IDS[1].node_id


def test_a_full_buffer_is_averaged_and_model_jobs_run_one_at_a_time() -> None:
    n = started(node(0, neighbours=(1, 2), buffer=2, aggregation="halffedavg"))
    for i in (1, 2):
        ((job, _),) = computes(n.on_message(IDS[i].node_id, tx(i, model=bytes([i])), 0), EvaluateModel)
        effects = n.on_result(job, 0.5, 0)
    ((update_job, update),) = computes(effects, Aggregate)
    assert update.models == (b"w0", b"\x01", b"\x02") and update.coefficients == (0.5, 0.25, 0.25)
    assert n.buffer == []
    assert computes(n.on_timer(DataArrival(0), 10), TrainSteps) == []  # queued behind the update
    after = n.on_result(update_job, b"avg", 10)
    ((_, train),) = computes(after, TrainSteps)
    assert train.weights == b"avg" and n.model_updates == 1
    assert any(isinstance(e, Record) and e.event == "model_update" for e in after)


def test_reputation_penalises_the_worst_sender() -> None:
    n = started(node(0, neighbours=(1, 2), buffer=2))
    for i, accuracy in ((1, 0.9), (2, 0.1)):
        ((job, _),) = computes(n.on_message(IDS[i].node_id, tx(i, model=bytes([i])), 0), EvaluateModel)
        effects = n.on_result(job, accuracy, 0)
    ((_, update),) = computes(effects, Aggregate)
    assert update.coefficients == (0.5, 0.45, 0.05)
    assert n.reputation == {IDS[2].node_id: 0.95}


def test_a_model_poisoner_keeps_its_model_but_publishes_uniform_noise() -> None:
    n = started(node(0, poison_model=True))
    ((job, _),) = computes(n.on_timer(DataArrival(0), 10), TrainSteps)
    ((poison_job, perturb),) = computes(n.on_result(job, b"good", 10), Perturb)
    assert (perturb.weights, perturb.kind, perturb.scale) == (b"good", "uniform", 0.001)
    out = sends(n.on_result(poison_job, b"noise", 10))
    assert {s.message.ml_model for s in out if isinstance(s.message, Transaction)} == {b"noise"}
    assert n.weights == b"good" and n.report().attacker


def test_a_failed_job_is_no_verdict_on_the_peer() -> None:
    n = started(node(0))
    t = tx(1)
    ((job, _),) = computes(n.on_message(IDS[1].node_id, t, 0), EvaluateModel)
    assert n.on_result(job, JobFailed("oom"), 0) == []
    assert computes(n.on_message(IDS[1].node_id, t, 0), EvaluateModel)  # witnessed again, not a duplicate


def test_reverse_path_relays_receipts_from_further_away() -> None:
    # ttl 2: node 0 forwards to its other neighbour 2, and 2's receipt comes back through 0 to generator 1.
    n = started(node(0, neighbours=(1, 2), ttl=2))
    t = tx(1, ttl=2)
    ((job, _),) = computes(n.on_message(IDS[1].node_id, t, 0), EvaluateModel)
    out = sends(n.on_result(job, 0.5, 0))
    assert {s.peer for s in out} == {IDS[1].node_id, IDS[2].node_id}
    copy = out[0].message
    assert isinstance(copy, Transaction)
    witness = started(node(2, neighbours=(0,), ttl=2))
    ((job2, _),) = computes(witness.on_message(IDS[0].node_id, copy, 0), EvaluateModel)
    (back,) = sends(witness.on_result(job2, 0.6, 0))
    assert back.peer == IDS[0].node_id
    (relayed,) = sends(n.on_message(IDS[2].node_id, back.message, 0))
    assert relayed.peer == IDS[1].node_id and len(relayed.message.receipts) == 2  # type: ignore[attr-defined]
    assert rejections(n.on_message(IDS[2].node_id, back.message, 0)) == ["tx.duplicate"]


def test_neighbours_only_sends_every_copy_to_every_neighbour() -> None:
    n = started(node(0, neighbours=(1, 2), receipt_routing="neighbours_only"))
    ((job, _),) = computes(n.on_message(IDS[1].node_id, tx(1), 0), EvaluateModel)
    assert {s.peer for s in sends(n.on_result(job, 0.5, 0))} == {IDS[1].node_id, IDS[2].node_id}


class Net:
    """Nodes joined by instant delivery, timers in tick order, and a fake executor of the weight operations."""

    def __init__(self, nodes: list[DflNode]) -> None:
        self.nodes = {n.node_id: n for n in nodes}
        self.queue: list[tuple[int, int, bytes, Timer]] = []
        self.seq = 0
        self.records: list[Record] = []
        self.now = 0
        for n in nodes:
            self.apply(n, n.start(0))

    def apply(self, n: DflNode, effects: list[Effect]) -> None:
        for e in effects:
            if isinstance(e, StartTimer):
                self.seq += 1
                heapq.heappush(self.queue, (self.now + e.after, self.seq, n.node_id, e.timer))
            elif isinstance(e, Compute):
                self.apply(n, n.on_result(e.job, fake(e.op), self.now))
            elif isinstance(e, Send) and e.peer in self.nodes:
                self.apply(self.nodes[e.peer], self.nodes[e.peer].on_message(n.node_id, e.message, self.now))
            elif isinstance(e, Record):
                self.records.append(e)

    def run(self, until: int) -> None:
        while self.queue and self.queue[0][0] <= until:
            self.now, _, who, timer = heapq.heappop(self.queue)
            self.apply(self.nodes[who], self.nodes[who].on_timer(timer, self.now))


def fake(op: WorkOp) -> JobResult:
    """Stand-in weight operations: training appends a byte, evaluations say 0.5."""
    if isinstance(op, TrainSteps):
        return op.weights + b"+"
    if isinstance(op, EvaluateModel):
        return 0.5
    return {InitModel: b"w", Aggregate: b"avg", Perturb: b"noise"}[type(op)]


def test_blocks_are_confirmed_by_the_neighbours_and_finalised_after_the_window() -> None:
    params = {"tx_per_block": 2, "receipt_wait": 3, "confirm_window": 5, "duration": 200, "buffer": 2}
    net = Net([node(0, (1, 2), **params), node(1, (0, 2), **params), node(2, (0, 1), **params)])  # type: ignore[arg-type]
    net.run(199)
    blocks = [r for r in net.records if r.event == "block"]
    assert blocks and all(r.data["transactions"] == 2 and r.data["ideal"] == 4 for r in blocks)
    assert all(r.data["confirmations"] == 4 for r in blocks)
    assert not [r for r in net.records if r.event == "rejected"]
    n0 = net.nodes[IDS[0].node_id]
    assert n0.status().height == len(n0.block_stats) == len(n0.chain) - 1 and not n0.status().votes
    net.run(10_000)
    assert all(n.done and n.status().done for n in net.nodes.values())
    assert not net.queue  # nothing is started after the run: the simulation drains


def test_the_run_ends_at_duration_and_a_draft_in_its_window_is_finalised() -> None:
    n = started(node(0, neighbours=(1,), tx_per_block=1, duration=50))
    ((job, _),) = computes(n.on_timer(DataArrival(0), 10), TrainSteps)
    n.on_result(job, b"w1", 10)
    n.on_timer(ReceiptWait(1), 20)
    assert n.draft is not None and n.draft.height == 1
    effects = n.on_timer(DataArrival(4), 50)
    assert n.stopped and n.done and n.draft is None and len(n.chain) == 2
    assert not of_type(effects, StartTimer)
    assert n.on_timer(ConfirmWindow(1), 80) == [] and n.on_message(IDS[1].node_id, tx(1), 80) == []


def test_history_reports_and_requests() -> None:
    n = started(node(0))
    effects = n.on_timer(RecordAccuracy(), 20)
    ((job, evaluate),) = computes(effects, EvaluateModel)
    assert evaluate.weights == b"w0" and evaluate.samples == 100
    assert of_type(effects, StartTimer)[0].after == 20
    n.on_result(job, 0.25, 20)
    answer = n.on_request(IDS[1].node_id, ReportRequest(), 21)
    assert isinstance(answer, bytes)
    report = NodeReport.decode(answer)
    assert report.history[0].tick == 20 and report.weights == b"w0" and not report.attacker
    assert n.on_request(IDS[1].node_id, b"other", 21) is None
