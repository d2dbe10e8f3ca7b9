"""The discrete-event driver: runs sans-IO nodes in virtual rounds, skipping idle time."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import heapq
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar, TypeVarTuple, assert_never

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.cid import raw_cid
from chainlab.ledger.pow import fixed64_suffix, search_nonce
from chainlab.ledger.store import MemoryBlockStore
from chainlab.network.links import message_id
from chainlab.network.wire_bytes import WireBytes
from chainlab.protocols.base import (
    Answer,
    DataGrant,
    DataRequest,
    Observation,
    ProtocolNode,
    Recorder,
    Restorable,
    Timer,
    WireCodec,
)
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    FetchData,
    Get,
    JobResult,
    Mine,
    Persist,
    Put,
    Record,
    Request,
    Send,
    StartTimer,
    TrainModel,
    persist_first,
)
from chainlab.sim.network import NetworkModel
from chainlab.work import executor
from chainlab.work.config import WorkConfig
from chainlab.work.pool import ComputePool, Ticket

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

_MINE_STEP_ROUNDS = 16  # a search covers this many rounds of trials at a time (see Simulation._mine)
_MAX_MINE_TRIALS = 1 << 26  # a Key Block this unlucky is reported instead of searched forever
# The protocol's CPU time is read on one step in this many and scaled up: reading the thread's CPU clock is a system
# call (about 0.8 us), as costly as a small step, and a run makes millions of steps.
_TIMED_EVERY = 16
# Collector thresholds while a simulation runs (Python's default is 700, 10, 10): see _young_collections_only.
_GC_THRESHOLDS = (100_000, 50, 1_000)


@contextlib.contextmanager
def _young_collections_only() -> Iterator[None]:
    """Run with the cyclic collector mostly on young objects. A simulation builds millions of long-lived small
    objects (blocks, verdicts, index entries) and few cycles; at the default thresholds the collector walks that
    growing heap again and again (a fifth of the non-ML time at 250 miners). Thresholds are restored after."""
    before = gc.get_threshold()
    gc.set_threshold(*_GC_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)


@dataclass(frozen=True)
class _Deliver:
    sender: bytes
    message: object


@dataclass(frozen=True)
class _Flood:
    """One broadcast's deliveries due in one round, in node order (one heap entry instead of one per node)."""

    sender: bytes
    message: object
    nodes: tuple[int, ...]


@dataclass(frozen=True)
class _Result:
    job: int
    result: JobResult | Ticket  # a pool's ticket is collected when the result is due


@dataclass(frozen=True)
class _Mining:
    """A nonce search goes on: trials made so far, since round `started`."""

    job: int
    effect: Mine
    started: int
    trials: int


@dataclass(frozen=True)
class _Serve:
    client: int
    effect: Request | FetchData


_Event = _Deliver | _Flood | Timer | _Result | _Mining | _Serve


@dataclass
class Simulation:
    """Executes effects: network deliveries, timers, ML work, mining and point-to-point requests."""

    nodes: Sequence[ProtocolNode]
    codec: WireCodec
    network: NetworkModel
    worker: Worker
    datasets: Mapping[bytes, Dataset]  # by commitment: every dataset a node may hold or be granted
    private: Mapping[int, Dataset]  # node index -> D_Mi
    work: WorkConfig
    max_rounds: int = 1_000_000
    on_round: Callable[[int], None] | None = None
    records: list[Observation] = field(default_factory=list)
    # Which Record events to keep (None: all). At 1,000 miners every node records every verdict: millions of
    # observations that a run's results never read.
    kept_events: frozenset[str] | None = None
    now: int = 0
    truncated: bool = False
    # The event queue, by round: a heap of the rounds that have events, and each round's events in the order they
    # were pushed (node index, event). Rounds are whole numbers and many events share one, so this orders events as
    # a heap of (round, sequence) would, with a heap operation per round instead of per event: at 1,000 miners
    # millions of events (every pending block's expiry timer among them) wait at once, and each pop from one heap of
    # them all walked it.
    _rounds: list[int] = field(default_factory=list)
    _due: dict[int, list[tuple[int, _Event]]] = field(default_factory=dict)
    _cancelled: set[tuple[int, int]] = field(default_factory=set)
    _index: dict[bytes, int] = field(default_factory=dict)
    _train_data: dict[tuple[tuple[bytes, ...], bool, int], Dataset] = field(default_factory=dict)
    stores: dict[int, MemoryBlockStore] = field(default_factory=dict)  # node index -> what it persisted
    # Whether Persist effects are kept: only a restarted node reads them, so a run without restarts drops them
    # (at 1,000 miners every node persisting every block would hold millions of records for nobody).
    durable: bool = True
    # ML jobs go to the pool when there is one: submitted when asked for, collected when due (simulated rounds
    # later), so that independent jobs run on every worker meanwhile; without one they run here, one at a time.
    pool: ComputePool | None = None
    wire: WireBytes[int] = field(default_factory=WireBytes)
    # CPU time inside the nodes' handlers (this thread's, so a loaded machine or the pool's collecting thread does not
    # count): the protocol core's share of the CPU. Estimated from one step in _TIMED_EVERY.
    protocol_seconds: float = 0.0
    _steps: int = 0
    # The content-addressed storage every node reaches, by address: what Put stored, for Get. Addresses are CIDv1
    # (raw) here and the storage service's (Kubo's CIDv0) live: the cores treat them as opaque.
    content: dict[bytes, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._index = {node.node_id: i for i, node in enumerate(self.nodes)}

    def store(self, i: int) -> MemoryBlockStore:
        """Node i's store: every Persist it asked for, kept across its restarts (the simulator's disk)."""
        if i not in self.stores:
            self.stores[i] = MemoryBlockStore(self.nodes[i].node_id)
        return self.stores[i]

    def restored(self, i: int, fresh: ProtocolNode) -> ProtocolNode:
        """fresh, a new incarnation of node i built by the spec, restored from node i's store (when its protocol
        persists anything); the caller installs it in nodes[i] and starts it."""
        store = self.store(i)
        store.check_owner(fresh.node_id)
        if isinstance(fresh, Restorable):
            fresh.restore(Persist(r.kind, r.key, r.payload) for r in store.records())
        return fresh

    def configure(self, node: ProtocolNode) -> None:
        """Before a node starts: tell it what this run keeps of its output, so that it builds nothing else."""
        if not self.durable and isinstance(node, Restorable):
            node.persisting = False  # what it would persist is never read back here
        if isinstance(node, Recorder):
            node.kept_events = self.kept_events

    def run(self) -> int:
        """Start every node and process events until none are left or max_rounds passes; returns the last round."""
        with _young_collections_only():
            return self._run()

    def _run(self) -> int:
        for node in self.nodes:
            self.configure(node)
        for i, node in enumerate(self.nodes):
            self._step(i, node.start, 0)
        rounds, due, cancelled = self._rounds, self._due, self._cancelled
        while rounds:
            at = rounds[0]
            if at != self.now:
                if at > self.max_rounds:
                    self.truncated = True
                    break
                if self.on_round is not None:
                    self.on_round(at)
                self.now = at
            events, k = due[at], 0
            while k < len(events):  # a step may push more events for this round: they come after, in order
                i, event = events[k]
                k += 1
                if cancelled and isinstance(event, _Result | _Mining) and (i, event.job) in cancelled:
                    continue  # an abandoned job's result (a nonce found after its block was superseded) is no event
                self._dispatch(i, event)
            heapq.heappop(rounds)
            del due[at]
        return self.now

    def _push(self, at: int, node: int, event: _Event) -> None:
        """Queue event for node at round at, after those already queued for it."""
        events = self._due.get(at)
        if events is None:
            if at < self.now:
                raise ValueError(f"an event for round {at}, which is over (now {self.now})")
            events = self._due[at] = []
            heapq.heappush(self._rounds, at)
        events.append((node, event))

    def _step(self, i: int, handler: Callable[[*Ts], list[Effect]], *args: *Ts) -> None:
        """Run one protocol step of node i, handler(*args), its CPU time counted as the protocol core's, then its
        effects."""
        effects = self._timed(handler, *args)
        if effects:
            self._execute(i, effects)

    def _timed(self, handler: Callable[[*Ts], T], *args: *Ts) -> T:
        """handler(*args), its CPU time sampled into protocol_seconds (one call in _TIMED_EVERY, scaled up)."""
        # Positional only: a **kwargs would build a dict on every one of millions of steps.
        self._steps += 1
        if self._steps % _TIMED_EVERY:
            return handler(*args)
        started = time.thread_time()
        out = handler(*args)
        self.protocol_seconds += (time.thread_time() - started) * _TIMED_EVERY
        return out

    def _dispatch(self, i: int, event: _Event) -> None:
        # By exact type, most common first: millions of events per run, and a match on class patterns reads every
        # positional field through __match_args__.
        if type(event) is _Flood:
            for dst in event.nodes:
                self._deliver(dst, event.sender, event.message)
        elif type(event) is _Result:
            result = event.result
            if isinstance(result, Ticket):
                assert self.pool is not None
                result = self.pool.result(result)
            self._step(i, self.nodes[i].on_result, event.job, result, self.now)
        elif type(event) is _Serve:
            self._serve(i, event)
        elif type(event) is _Deliver:
            self._deliver(i, event.sender, event.message)
        elif type(event) is _Mining:
            self._mine(i, event)
        elif isinstance(event, Timer):
            self._step(i, self.nodes[i].on_timer, event, self.now)
        else:
            raise TypeError(f"unknown simulator event {event!r}")

    def _deliver(self, i: int, sender: bytes, message: object) -> None:
        """A message from sender reaches node i."""
        self._step(i, self.nodes[i].on_message, sender, message, self.now)

    def _execute(self, i: int, effects: list[Effect]) -> None:
        # As raft's Ready: a step's records are written before anything it announces can be seen. By exact type, most
        # common first, as _dispatch: a run carries out millions of effects, most of them Records, Requests and
        # Computes, and a match on class patterns reads every captured field through __match_args__.
        for effect in persist_first(effects) if self.durable else effects:
            if type(effect) is Record:
                if self.kept_events is None or effect.event in self.kept_events:
                    self.records.append(Observation(self.now, i, effect.event, effect.data))
            elif type(effect) is Request or type(effect) is FetchData:
                self._fetch(i, effect)
            elif type(effect) is Compute:
                self._compute(i, effect)
            elif type(effect) is Persist:
                if self.durable:
                    self.store(i).put(effect.kind, effect.key, effect.payload)
            elif type(effect) is StartTimer:
                self._push(self.now + effect.after, i, effect.timer)
            elif type(effect) is Broadcast:
                self._broadcast(i, effect)
            else:
                self._execute_rare(i, effect)

    def _execute_rare(self, i: int, effect: Effect) -> None:
        """The effects a run carries out once per block or job rather than once per check."""
        match effect:
            case Send(peer, message, size_mb, payload_mb):
                if self._send(i, peer, message, size_mb):
                    self.wire.count(i, size_mb, payload_mb, 1)
            case CancelJob(job):
                self._cancelled.add((i, job))
            case Mine(job):
                self._mine(i, _Mining(job, effect, self.now, 0))
            case Put(job, content):
                address = raw_cid(content).encode("ascii")
                self.content[address] = content
                self.wire.count_served(i, len(content))
                self._push(self.now + self.work.fetch_rounds, i, _Result(job, address))
            case Get(job, address):
                found = self.content.get(address)
                if found is not None:
                    self.wire.count_served(i, len(found))
                self._push(self.now + self.work.fetch_rounds, i, _Result(job, found))
            case Record() | Request() | FetchData() | Compute() | Persist() | StartTimer() | Broadcast():
                raise TypeError(f"{type(effect).__name__} is carried out by _execute, not here")
            case _:
                assert_never(effect)

    def _compute(self, i: int, effect: Compute) -> None:
        op = effect.op
        if self.pool is not None:
            self._push(self.now + self.work.rounds(op), i, _Result(effect.job, self.pool.submit(i, op)))
            return
        train = self._training_data(i, op) if isinstance(op, TrainModel) else None
        result = executor.execute(self.worker, op, self.datasets, train, self.private.get(i))
        self._push(self.now + self.work.rounds(op), i, _Result(effect.job, result))

    def _broadcast(self, i: int, effect: Broadcast) -> None:
        sender = self.nodes[i].node_id
        # Keyed like the sidecar's: the same message draws the same hop times in sim and live.
        wire_id = message_id(sender, self.codec.encode_message(effect.message))
        arrivals = self.network.broadcast(i, effect.size_mb, self.now, wire_id)
        self.wire.count(i, effect.size_mb, effect.payload_mb, len(arrivals))
        self._flood(sender, effect.message, arrivals)

    def _flood(self, sender: bytes, message: object, arrivals: Mapping[int, int]) -> None:
        """Deliveries by round, each round's in node order: the order one push per node would give, since nothing
        else is pushed between them."""
        by_round: dict[int, list[int]] = {}
        for dst, at in arrivals.items():
            by_round.setdefault(at, []).append(dst)
        for at, nodes in by_round.items():
            self._push(at, -1, _Flood(sender, message, tuple(nodes)))

    def _send(self, i: int, peer: bytes, message: object, size_mb: float) -> bool:
        """Point to point along the shortest up route; lost (False) if the peer is unknown, itself or unreachable."""
        dst = self._index.get(peer)
        if dst is None or dst == i:
            return False
        sender = self.nodes[i].node_id
        wire_id = message_id(sender, b"send:" + peer + self.codec.encode_message(message))
        at = self.network.unicast(i, dst, size_mb, self.now, wire_id)
        if at is None:
            return False
        self._push(at, dst, _Deliver(sender, message))
        return True

    def _training_data(self, i: int, op: TrainModel) -> Dataset:
        """D_Ti, assembled once per data (nodes that share a private set share it)."""
        private = self.private.get(i)
        key = (op.datasets, op.with_private, id(private))
        if key not in self._train_data:
            self._train_data[key] = executor.training_data(op, self.datasets, private)
        return self._train_data[key]

    def _mine(self, i: int, step: _Mining) -> None:
        """Real nonce search, q trials per round, searched _MINE_STEP_ROUNDS rounds ahead at a time: the nonce and the
        round it lands in are those of one search to the end, but a search given up (its block superseded, as most
        are) stops within a step instead of running to a nonce nobody will use."""
        effect, q = step.effect, self.work.hash_trials_per_round
        budget = min(_MINE_STEP_ROUNDS * q, _MAX_MINE_TRIALS - step.trials)
        nonce, used = search_nonce(effect.prefix, fixed64_suffix(effect.nonce_tag), effect.target, step.trials, budget)
        trials = step.trials + used
        if nonce is not None:
            self._push(step.started + max(1, math.ceil(trials / q)), i, _Result(step.job, nonce))
        elif trials >= _MAX_MINE_TRIALS:
            self.records.append(Observation(self.now, i, "mining_gave_up", {"trials": trials}))
        else:
            self._push(step.started + trials // q, i, dataclasses.replace(step, trials=trials))

    def _fetch(self, i: int, effect: Request | FetchData) -> None:
        """Point to point, fetch_rounds each way when the network can route it (section II-D)."""
        dst = self._index.get(effect.peer)
        request_id = message_id(self.nodes[i].node_id, b"fetch:%d" % effect.job)
        reachable = dst is not None and dst != i and self.network.unicast(i, dst, 0.0, self.now, request_id) is not None
        if dst is None or not reachable:
            failed: JobResult = None if isinstance(effect, Request) else False
            self._push(self.now + self.work.fetch_rounds, i, _Result(effect.job, failed))
            return
        self._push(self.now + self.work.fetch_rounds, dst, _Serve(i, effect))

    def _answer(self, server: int, sender: bytes, request: object) -> Answer:
        """The server's answer to a point-to-point request, timed as a protocol step."""
        return self._timed(self.nodes[server].on_request, sender, request, self.now)

    def _serve(self, server: int, event: _Serve) -> None:
        client, effect = event.client, event.effect
        sender = self.nodes[client].node_id
        result: JobResult
        if isinstance(effect, FetchData):
            answer = self._answer(server, sender, DataRequest(effect.commitment))
            result = isinstance(answer, DataGrant) and answer.commitment in self.datasets
            if result:
                granted = self.datasets[effect.commitment]
                self.wire.count_served(server, granted.X.nbytes + granted.y.nbytes)
        else:
            answer = self._answer(server, sender, effect.request)
            result = answer if isinstance(answer, bytes) else None
            if result is not None:
                self.wire.count_served(server, len(result))
        self._push(self.now, client, _Result(effect.job, result))
