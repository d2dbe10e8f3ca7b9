"""A node's gRPC surface over real servers: every bad input gets a status naming its reason, is counted, and the
node keeps serving with its chain intact."""

from __future__ import annotations

import asyncio
import copy
import dataclasses
from collections.abc import Callable, Coroutine, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
from prometheus_client import REGISTRY

from chainlab.learning.datasets import Dataset
from chainlab.ledger.hashing import sha256
from chainlab.ledger.identity import Identity
from chainlab.ledger.pow import meets_target
from chainlab.live.driver import FETCH_REQUEST, LiveNode, RoundClock
from chainlab.live.node_service import MAX_GOSSIP_BYTES, register_servicers
from chainlab.live.observer import MetricsObserver
from chainlab.live.server import MAX_MESSAGE_BYTES, insecure_channel, running_server
from chainlab.live.transport import InMemoryStore, InMemoryTransport
from chainlab.proto.v1 import netem_pb2, node_pb2, node_pb2_grpc, queries_pb2, queries_pb2_grpc
from chainlab.protocols.bagchain import FullNode, Miner
from chainlab.protocols.bagchain.messages import DatasetKind, KeyBlock, ModelRequest, Task, to_wire
from chainlab.protocols.bagchain.wire import CODEC
from chainlab.scenarios import registry
from chainlab.scenarios.bagchain.spec import identity_of
from chainlab.work.executor import learning_spec
from tests.protocols.bagchain.conftest import Honest, before_phase_two, honest_experiment, resign

Call = Callable[[grpc.aio.Channel], Coroutine[Any, Any, Any]]


def _rejections(kind: str, reason: str) -> float:
    return REGISTRY.get_sample_value("chainlab_block_rejections_total", {"kind": kind, "reason": reason}) or 0.0


def _refusals(method: str, reason: str, code: str = "INVALID_ARGUMENT") -> float:
    labels = {"service": "requester", "method": method, "code": code, "reason": reason}
    return REGISTRY.get_sample_value("chainlab_grpc_refusals_total", labels) or 0.0


def _serve(honest: Honest, role: str, calls: list[Call], *, node: Any = None, peers: Sequence[Miner] = ()) -> list[Any]:
    """Start the node of `role` (a fresh validator, the run's requester, or `node`) behind real gRPC on 127.0.0.1,
    with `peers` reachable through an in-memory transport and store, make the calls in order, stop it."""

    async def scenario() -> list[Any]:
        net = honest.net
        served: Any = node
        datasets: Mapping[bytes, Dataset] = net.datasets if role == "requester" else {}
        if served is None and role == "validator":
            exp = honest_experiment()
            served = FullNode(identity_of(exp.seed, "validator", 0), honest.params, net.miners[0].genesis)
        elif served is None:
            served = net.requester
        spec = registry.get("bagchain")
        observer = MetricsObserver(spec)
        transport, store = InMemoryTransport(0.0), InMemoryStore()
        for index, peer in enumerate(peers, 1):
            other = LiveNode(peer, index, CODEC, transport, store, RoundClock(0.05), datasets={}, private=None,
                             hash_trials_per_round=1, observe=MetricsObserver(spec))  # fmt: skip
            transport.register(peer.node_id, other.deliver, other.serve)
        live = LiveNode(served, 0, CODEC, transport, store, RoundClock(0.05), datasets=datasets,
                        private=None, hash_trials_per_round=1, observe=observer)  # fmt: skip
        out = []
        runner = asyncio.create_task(live.run())
        async with (
            running_server(role, "127.0.0.1:0", lambda s: register_servicers(s, spec, live, observer)) as r,
            # The client may send more than the server accepts, so the server's own limit is what is tested.
            insecure_channel(f"127.0.0.1:{r.port}", max_message_bytes=2 * MAX_MESSAGE_BYTES) as channel,
        ):
            for call in calls:
                try:
                    out.append(await call(channel))
                except grpc.aio.AioRpcError as exc:
                    out.append((exc.code(), exc.details()))
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        return out

    return asyncio.run(scenario())


def _deliver(payload: bytes, origin: bytes = b"\x01" * 32, size_mb: float = 0.0, payload_mb: float = 0.0) -> Call:
    async def call(channel: grpc.aio.Channel) -> Any:
        envelope = netem_pb2.Envelope(origin=origin, payload=payload, size_mb=size_mb, payload_mb=payload_mb)
        return await node_pb2_grpc.PeerStub(channel).Deliver(envelope)

    return call


async def _status(channel: grpc.aio.Channel) -> node_pb2.NodeStatus:
    reply: node_pb2.NodeStatus = await node_pb2_grpc.NodeStub(channel).Status(node_pb2.StatusRequest())
    return reply


def _owner(miners: Sequence[Miner], node_id: bytes) -> Miner:
    return next(m for m in miners if m.node_id == node_id)


def _bad_pow(honest: Honest) -> KeyBlock:
    kb = honest.key_block(1)
    identity = honest.identity_of(kb.miner_id)
    for nonce in range(10_000):
        tampered = resign(kb, identity, nonce=nonce)
        if not meets_target(tampered.hash, honest.params.target):
            return tampered
    raise AssertionError("every nonce met the target")


def test_bad_gossip_gets_a_named_status_is_counted_and_the_node_carries_on(honest: Honest) -> None:
    kb = honest.key_block(1)
    forged = dataclasses.replace(kb, signature=bytes(64))
    wrong_height = resign(honest.miniblocks(1)[0], honest.identity_of(honest.miniblocks(1)[0].miner_id), height=7)
    before = {r: _rejections(k, r) for k, r in [("message", "malformed"), ("message", "oversized"),
                                                 ("KeyBlock", "bad_signature"), ("KeyBlock", "bad_pow")]}  # fmt: skip
    answers = _serve(
        honest,
        "validator",
        [
            _status,
            _deliver(b"\x09junk"),
            _deliver(b"\x01" * (MAX_GOSSIP_BYTES + 1)),
            _deliver(b"\x01" * (MAX_MESSAGE_BYTES + 1)),
            _deliver(to_wire(forged)),
            _deliver(to_wire(_bad_pow(honest))),
            *[_deliver(to_wire(m)) for m in honest.net.tasks],
            _deliver(to_wire(wrong_height)),
            _status,
        ],
    )
    first, *refusals, last = answers
    malformed, oversized, too_big, bad_sig, bad_pow, *tasks, height = refusals
    assert malformed[0] == grpc.StatusCode.INVALID_ARGUMENT and malformed[1].startswith("malformed")
    assert oversized[0] == grpc.StatusCode.INVALID_ARGUMENT and oversized[1].startswith("oversized")
    # Past the transport's own limit the server's gRPC refuses the message before any handler runs.
    assert too_big[0] == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in too_big[1]
    assert bad_sig[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert bad_sig[1] == f"bad_signature: KeyBlock: KeyBlock not signed by its stated author ({kb.miner_id.hex()[:8]})"
    assert bad_pow[0] == grpc.StatusCode.INVALID_ARGUMENT and bad_pow[1].startswith("bad_pow")
    assert all(isinstance(t, node_pb2.DeliverReply) for t in tasks)
    assert height[0] == grpc.StatusCode.INVALID_ARGUMENT and "height" in height[1]
    assert _rejections("message", "malformed") == before["malformed"] + 1
    assert _rejections("message", "oversized") == before["oversized"] + 1
    assert _rejections("KeyBlock", "bad_signature") == before["bad_signature"] + 1
    assert _rejections("KeyBlock", "bad_pow") == before["bad_pow"] + 1
    # Still serving, chain untouched, and its Status counts what it refused.
    assert (last.height, last.tip) == (first.height, first.tip) == (0, honest.net.miners[0].genesis.hash)
    assert last.rejections["message:malformed"] == 1 and last.rejections["KeyBlock:bad_pow"] == 1


def test_status_reports_what_reached_the_node_by_kind_and_sender(honest: Honest) -> None:
    """results.json's live wire_bytes is summed from these: each message at the size its envelope declares."""
    task = to_wire(honest.net.tasks[0])
    first, _, _, last = _serve(
        honest,
        "validator",
        [
            _status,
            _deliver(task, b"\x01" * 32, size_mb=0.002, payload_mb=0.0005),
            _deliver(b"\x09junk", b"\x02" * 32, size_mb=0.001),
            _status,
        ],
    )
    assert (first.wire.payload, first.wire.control, first.wire.served, dict(first.wire.sent_by)) == (0, 0, 0, {})
    assert (last.wire.payload, last.wire.control, last.wire.served) == (500, 2_500, 0)
    assert dict(last.wire.sent_by) == {"01" * 32: 2_000, "02" * 32: 1_000}


def test_a_block_re_signed_with_another_key_or_under_another_author_is_refused_and_counted(honest: Honest) -> None:
    """The issue's case: a copy of a block it already holds, re-signed with a wrong key, used to be answered OK and
    not counted (the node took it for a duplicate); and the same block with its author field swapped."""
    mb = honest.miniblocks(1)[0]
    thief = Identity.from_seed(b"thief")
    re_signed = dataclasses.replace(mb, signature=thief.sign(mb.hash))
    victim = next(m.identity for m in honest.net.miners if m.node_id != mb.miner_id)
    swapped = dataclasses.replace(mb, miner_key=victim.public_key)
    before = _rejections("MiniBlock", "bad_signature")
    answers = _serve(
        honest,
        "validator",
        [
            *[_deliver(to_wire(t)) for t in honest.net.tasks],
            _deliver(to_wire(mb)),
            _deliver(to_wire(re_signed)),
            _deliver(to_wire(swapped)),
            _deliver(to_wire(mb)),
            _status,
        ],
    )
    *tasks, taken, forged, other_author, again, status = answers
    assert all(isinstance(a, node_pb2.DeliverReply) for a in (*tasks, taken, again))
    author = mb.miner_id.hex()[:8]
    assert forged == (
        grpc.StatusCode.INVALID_ARGUMENT,
        f"bad_signature: MiniBlock: MiniBlock not signed by its stated author ({author})",
    )
    assert other_author[0] == grpc.StatusCode.INVALID_ARGUMENT
    assert other_author[1].startswith("bad_signature") and victim.node_id.hex()[:8] in other_author[1]
    assert _rejections("MiniBlock", "bad_signature") == before + 2
    assert status.rejections["MiniBlock:bad_signature"] == 2


def test_rogue_gossiped_tasks_get_their_named_reason_are_counted_and_never_scheduled(honest: Honest) -> None:
    """The issue's case, a fresh key with fee 2^64-1 and Metric_min NaN, and an honest-looking task from an
    account with no funds: each refused over gRPC with its reason and counted; an honest task is still taken."""
    rogue = Identity.from_seed(b"a fresh key")
    planned = honest.net.tasks[0]

    def task(**terms: Any) -> Task:
        fields = {"requester_key": rogue.public_key, "signature": b"", "sequence": 9, **terms}
        return dataclasses.replace(planned, **fields).signed_by(rogue)

    absurd = task(fee=2**64 - 1, metric_min=float("nan"))
    unfunded = task()
    cases = [("bad_metric_min", absurd), ("insufficient_funds", unfunded), ("bad_fee", task(fee=2**64 - 1))]
    before = {reason: _rejections("Task", reason) for reason, _ in cases}
    answers = _serve(honest, "validator", [*[_deliver(to_wire(t)) for _, t in cases], _deliver(to_wire(planned))])
    *refused, taken = answers
    for (reason, _), answer in zip(cases, refused, strict=True):
        assert answer[0] == grpc.StatusCode.INVALID_ARGUMENT and answer[1].startswith(reason), answer
        assert _rejections("Task", reason) == before[reason] + 1
    assert isinstance(taken, node_pb2.DeliverReply)


def test_chain_queries_refuse_unknown_and_malformed_keys(honest: Honest) -> None:
    chain = queries_pb2_grpc.ChainStub

    async def result(channel: grpc.aio.Channel, task_id: bytes) -> Any:
        return await chain(channel).GetTaskResult(queries_pb2.TaskResultRequest(task_id=task_id))

    answers = _serve(
        honest,
        "validator",
        [
            lambda c: result(c, b"\x07" * 32),
            lambda c: result(c, b"short"),
            lambda c: chain(c).GetBlock(queries_pb2.BlockRequest(hash=b"\x07" * 32)),
            lambda c: chain(c).GetHeight(queries_pb2.HeightRequest(height=5)),
            lambda c: chain(c).GetModel(queries_pb2.ModelLocationRequest(model_hash=b"\x07" * 32)),
            lambda c: chain(c).GetBalance(queries_pb2.BalanceRequest(account=b"\x07" * 32)),
            lambda c: node_pb2_grpc.PeerStub(c).Serve(netem_pb2.FetchRequest(kind="weights")),
        ],
    )
    unknown_task, short, block, height, model, balance, fetch = answers
    assert unknown_task[0] == grpc.StatusCode.NOT_FOUND and unknown_task[1].startswith("unknown_task")
    assert short[0] == grpc.StatusCode.INVALID_ARGUMENT and short[1].startswith("bad_task_id")
    assert block[0] == grpc.StatusCode.NOT_FOUND and block[1].startswith("unknown_block")
    assert height[0] == grpc.StatusCode.NOT_FOUND and height[1].startswith("unknown_height")
    assert model[0] == grpc.StatusCode.NOT_FOUND and model[1].startswith("unknown_model")
    assert balance.amount == 0
    assert fetch == (grpc.StatusCode.INVALID_ARGUMENT, "unknown_fetch_kind: weights")


def test_the_requester_refuses_unknown_tasks_and_bad_samples_and_reports_states(honest: Honest) -> None:
    stub = queries_pb2_grpc.RequesterStub
    features = honest.net.test.X.shape[1]
    task_id = honest.net.tasks[0].task_id

    def predict(task: bytes, rows: int, cols: int, samples: bytes) -> Call:
        request = queries_pb2.PredictRequest(task_id=task, rows=rows, features=cols, samples=samples)
        return lambda c: stub(c).Predict(request)

    one_row = np.zeros((1, features), "<f4").tobytes()

    def rows_with(value: float) -> bytes:
        X = np.zeros((3, features), "<f4")
        X[1, 2] = value
        return X.tobytes()

    non_finite = [float("nan"), float("inf"), float("-inf")]
    before = {r: _refusals("Predict", r) for r in ("bad_samples", "bad_task_id")}
    answers = _serve(
        honest,
        "requester",
        [
            lambda c: stub(c).TaskStatus(queries_pb2.TaskStatusRequest()),
            lambda c: stub(c).TaskStatus(queries_pb2.TaskStatusRequest(task_id=b"\x07" * 32)),
            predict(b"\x07" * 32, 1, features, one_row),
            predict(task_id, 1, features + 1, one_row),
            predict(task_id, 2, features, one_row),
            *[predict(task_id, 3, features, rows_with(v)) for v in non_finite],
            predict(b"", 1, features, one_row),
            predict(task_id[:31], 1, features, one_row),
            predict(task_id.hex().encode(), 1, features, one_row),  # the ID as hex text, not its 32 bytes
        ],
    )
    status, unknown, unknown_predict, wrong_features, short_samples, *rest = answers
    nan, inf, minus_inf, empty_id, short_id, hex_id = rest
    # Never INTERNAL: each is the caller's mistake, named, counted by the interceptor.
    for answer in (nan, inf, minus_inf):
        assert answer == (
            grpc.StatusCode.INVALID_ARGUMENT,
            "bad_samples: samples must be finite (1 of 3 rows hold NaN or infinity)",
        )
    for answer in (empty_id, short_id, hex_id):
        assert answer[0] == grpc.StatusCode.INVALID_ARGUMENT and answer[1].startswith("bad_task_id: expected 32 bytes")
    assert _refusals("Predict", "bad_samples") == before["bad_samples"] + 4  # the short samples too
    assert _refusals("Predict", "bad_task_id") == before["bad_task_id"] + 3
    # The requester here is the one from the finished simulation: both its tasks are done.
    assert [t.state for t in status.tasks] == ["done", "done"]
    assert status.tasks[0].result.height == 1
    assert unknown[0] == grpc.StatusCode.NOT_FOUND and unknown[1].startswith("unknown_task")
    assert unknown_predict[0] == grpc.StatusCode.NOT_FOUND and unknown_predict[1].startswith("unknown_task")
    assert wrong_features[0] == grpc.StatusCode.INVALID_ARGUMENT and wrong_features[1].startswith("wrong_feature")
    assert short_samples[0] == grpc.StatusCode.INVALID_ARGUMENT and short_samples[1].startswith("bad_samples")


def test_a_release_proves_phase_two_so_the_requester_can_collect_its_winner(honest: Honest) -> None:
    """Miners that have not seen D_V refuse a model fetch without the requester's release and serve it with the
    release, so the requester's Predict (whose fetches carry its release) collects the winning ensemble."""
    miners = [before_phase_two(m) for m in honest.net.miners]
    requester = honest.net.requester
    result = requester.results()[0]
    members = requester.winning_models(result)
    assert members
    task = requester.tasks[result.task_id]
    release = requester.release_of(result.height, DatasetKind.VALIDATION)
    mb = members[0]
    owner = _owner(miners, mb.miner_id)

    def fetch(proof: Any) -> Call:
        payload = CODEC.encode_request(ModelRequest(mb.model_hash, proof))
        return lambda c: node_pb2_grpc.PeerStub(c).Serve(netem_pb2.FetchRequest(kind=FETCH_REQUEST, payload=payload))

    refused, served = _serve(honest, "miner", [fetch(None), fetch(release)], node=owner)
    assert refused.found is False
    # The in-memory store addresses content by its SHA-256: the answer names exactly the miner's model.
    assert served.found and served.answer.decode() == sha256(owner.own_models()[mb.model_hash]).hex()

    X = np.ascontiguousarray(honest.net.test.X[:5], dtype="<f4")
    request = queries_pb2.PredictRequest(task_id=task.task_id, rows=len(X), features=X.shape[1], samples=X.tobytes())

    async def predict(channel: grpc.aio.Channel) -> Any:
        return await queries_pb2_grpc.RequesterStub(channel).Predict(request)

    infinite = X.copy()
    infinite[0, 0] = np.inf

    async def predict_infinite(channel: grpc.aio.Channel) -> Any:
        bad = queries_pb2.PredictRequest(
            task_id=task.task_id, rows=len(X), features=X.shape[1], samples=infinite.tobytes()
        )
        return await queries_pb2_grpc.RequesterStub(channel).Predict(bad)

    reply, refused_inf = _serve(honest, "requester", [predict, predict_infinite], peers=miners)
    models = [(m.model_hash, _owner(miners, m.miner_id).own_models()[m.model_hash]) for m in members]
    expected = honest.worker.ensemble_predict(models, learning_spec(task.train), X, task.aggregate)
    assert reply.ensemble_block == result.winning_ensemble
    assert list(reply.labels) == expected.tolist()
    # With the winner's models at hand an infinity used to reach them and fail as INTERNAL; it is the caller's.
    assert refused_inf[0] == grpc.StatusCode.INVALID_ARGUMENT and refused_inf[1].startswith("bad_samples")

    # The same Predict from a requester that has released nothing carries no proof: every miner refuses.
    unreleased = copy.deepcopy(requester)
    unreleased.released.clear()
    (refusal,) = _serve(honest, "requester", [predict], node=unreleased, peers=miners)
    assert refusal[0] == grpc.StatusCode.UNAVAILABLE and refusal[1].startswith("model_unavailable")


def test_a_node_says_which_protocol_it_runs_and_exports_its_cpu_split() -> None:
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from chainlab.live.node_service import describe_node
    from chainlab.network.wire_bytes import WireBytes
    from chainlab.scenarios import registry

    live = SimpleNamespace(
        protocol_seconds=1.5,
        codec_seconds=0.5,
        process_seconds=10.0,
        ml_seconds=7.0,
        pow_seconds=0.25,
        wire=WireBytes[str](300, 20, 1),
    )
    entry = SimpleNamespace(role="miner", name="miner-7")
    describe_node(registry.get("dfl"), entry, live)  # type: ignore[arg-type]
    labels = {"protocol": "dfl", "role": "miner", "node": "miner-7"}
    assert REGISTRY.get_sample_value("chainlab_node_info", labels) == 1.0
    assert REGISTRY.get_sample_value("chainlab_protocol_cpu_seconds") == 1.5
    assert REGISTRY.get_sample_value("chainlab_codec_cpu_seconds") == 0.5
    assert REGISTRY.get_sample_value("chainlab_node_process_cpu_seconds") == 10.0
    assert REGISTRY.get_sample_value("chainlab_ml_seconds") == 7.0
    assert REGISTRY.get_sample_value("chainlab_pow_cpu_seconds") == 0.25
    wire = {kind: REGISTRY.get_sample_value("chainlab_wire_bytes", {"kind": kind}) for kind in ("payload", "control")}
    assert wire == {"payload": 300.0, "control": 20.0}
    assert REGISTRY.get_sample_value("chainlab_wire_bytes", {"kind": "served"}) == 1.0


def test_status_gauges_follow_the_node_and_only_a_voting_node_exports_its_tip() -> None:
    import asyncio
    from types import SimpleNamespace

    from prometheus_client import REGISTRY

    from chainlab.live.node_service import publish_status
    from chainlab.protocols.base import NodeStatus

    def tips() -> dict[str, float]:
        return {
            s.labels["tip"]: s.value for m in REGISTRY.collect() if m.name == "chainlab_chain_tip" for s in m.samples
        }

    async def scenario() -> list[dict[str, float]]:
        node = SimpleNamespace(status=lambda: NodeStatus("miner", 2, b"\xaa" * 32, forks=1))
        live = SimpleNamespace(node=node, clock=SimpleNamespace(now=lambda: 40))
        seen = []
        task = asyncio.create_task(publish_status(live, every_seconds=0.01))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        seen.append(tips())
        node.status = lambda: NodeStatus("miner", 3, b"\xbb" * 32)
        await asyncio.sleep(0.05)
        seen.append(tips())
        node.status = lambda: NodeStatus("requester", 3, b"\xcc" * 32, votes=False)
        await asyncio.sleep(0.05)
        seen.append(tips())
        task.cancel()
        return seen

    first, moved, light = asyncio.run(scenario())
    assert first == {"aa" * 8: 1.0} and moved == {"bb" * 8: 1.0} and light == {}
    assert REGISTRY.get_sample_value("chainlab_chain_height") == 3
    assert REGISTRY.get_sample_value("chainlab_chain_forks") == 0
    assert REGISTRY.get_sample_value("chainlab_round") == 40
