"""The real-time driver: runs one sans-IO node on asyncio with a wall clock, one round = round_seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any, assert_never

from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset, decode_dataset, encode_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.hashing import sha256
from chainlab.ledger.pow import fixed64_suffix, search_nonce
from chainlab.ledger.store import BlockStore, MemoryBlockStore
from chainlab.live.transport import ContentStore, Transport
from chainlab.network.wire_bytes import WireBytes
from chainlab.protocols.base import (
    DataGrant,
    DataRequest,
    DecodeError,
    Observation,
    ProtocolNode,
    RecordValue,
    Restorable,
    Timer,
    WireCodec,
)
from chainlab.protocols.effects import (
    RECORD_INTERNAL_ERROR,
    RECORD_REJECTED,
    Broadcast,
    CancelJob,
    Compute,
    Effect,
    FetchData,
    Get,
    JobFailed,
    JobResult,
    Mine,
    Persist,
    Put,
    Record,
    Request,
    Send,
    StartTimer,
    TrainModel,
    WorkOp,
    persist_first,
)
from chainlab.protocols.errors import invalid
from chainlab.work import executor

log = logging.getLogger("chainlab.live")

MALFORMED = "malformed"
FETCH_DATA, FETCH_REQUEST = "data", "request"  # the two kinds of point-to-point fetch a transport carries
JOB_ATTEMPTS = 3  # an internal failure is retried this many times in all before the node hears JobFailed
EMPTY_ANSWER = b""  # the address a fetch answers with for content of no bytes (storage keeps no empty object)

Job = Compute | Mine | Request | FetchData | Put | Get


class RoundClock:
    """Maps wall time to protocol rounds, counted from `epoch` (Unix time; default: now)."""

    def __init__(self, round_seconds: float, epoch: float | None = None) -> None:
        self.round_seconds = round_seconds
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> int:
        """The current round."""
        return max(0, int((time.time() - self.epoch) / self.round_seconds))


class LiveNode:
    """Feeds one node its messages, timers and job results in order, and carries out its effects.

    ML runs in worker threads, each with its own Worker (a Worker is not thread-safe). An internal failure of a
    job (an exception in this process) is recorded as internal_error and retried; it never becomes a verdict on
    a peer's block.
    """

    def __init__(
        self,
        node: ProtocolNode,
        index: int,
        codec: WireCodec,
        transport: Transport,
        store: ContentStore,
        clock: RoundClock,
        *,
        datasets: Mapping[bytes, Dataset],
        private: Dataset | None,
        hash_trials_per_round: int,
        observe: Callable[[Observation], None],
        state: BlockStore | None = None,
    ) -> None:
        """state: the node's block store (--state DIR's SQLite file); in memory when not given."""
        self.node = node
        self.index = index
        self.codec = codec
        self.transport = transport
        self.store = store
        self.clock = clock
        self.datasets = dict(datasets)  # the datasets this node holds, by commitment
        self.private = private
        self.hash_trials_per_round = hash_trials_per_round
        self.observe = observe
        self.state: BlockStore = state if state is not None else MemoryBlockStore(node.node_id)
        self._local = threading.local()
        self._workers: list[Worker] = []
        self._workers_lock = threading.Lock()
        self._train_data: dict[tuple[tuple[bytes, ...], bool], Dataset] = {}
        self._inbox: asyncio.Queue[Timer | tuple[int, JobResult]] = asyncio.Queue()
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._published: dict[bytes, str] = {}  # what this node has put in the store: key -> address
        self.wire: WireBytes[str] = WireBytes()  # what reached this node, by kind and sender's hex ID
        self._background: list[Coroutine[Any, Any, None]] = []
        self.started = asyncio.Event()
        self.protocol_seconds = 0.0  # CPU time in the protocol core (the "blockchain share" of seed 001)
        self.codec_seconds = 0.0  # CPU time encoding and decoding wire messages
        self.pow_seconds = 0.0  # CPU time of proof-of-work trials (the Mine job's wall time is mostly waiting)
        self.cpu_at_start = 0.0  # the process's CPU time when the node started (imports and set-up come before)

    @property
    def ml_seconds(self) -> float:
        """ML time spent by every worker thread of this node."""
        with self._workers_lock:
            return sum(w.ml_seconds for w in self._workers)

    def worker(self) -> Worker:
        """This thread's Worker."""
        worker: Worker | None = getattr(self._local, "worker", None)
        if worker is None:
            worker = self._local.worker = Worker()
            with self._workers_lock:
                self._workers.append(worker)
        return worker

    @contextlib.contextmanager
    def _protocol_time(self, codec: bool = False) -> Iterator[None]:
        """Count this thread's CPU time as the protocol core's (hashing, signing, checking: seed 001's "blockchain")
        or, with codec, as the wire codec's (seed 001 counts serialising among "network tasks"); the driver's
        records, logs and task bookkeeping around them count as neither."""
        start = time.thread_time()
        try:
            yield
        finally:
            spent = time.thread_time() - start
            if codec:
                self.codec_seconds += spent
            else:
                self.protocol_seconds += spent

    @property
    def process_seconds(self) -> float:
        """CPU time of the whole process, every thread, since the node started."""
        return time.process_time() - self.cpu_at_start

    def restore(self) -> int:
        """Give the node what its store holds (before run()); how many records it was given."""
        records = [Persist(r.kind, r.key, r.payload) for r in self.state.records()]
        if records and isinstance(self.node, Restorable):
            with self._protocol_time():
                self.node.restore(records)
            self._record("restored", {"records": len(records), "height": self.node.status().height})
        return len(records)

    async def run(self) -> None:
        """Process timers and job results until cancelled; messages arrive through deliver()."""
        self.cpu_at_start = time.process_time()
        with self._protocol_time():
            effects = self.node.start(self.clock.now())
        self._execute(effects)
        self.started.set()
        side = [asyncio.create_task(work) for work in self._background]
        try:
            while True:
                item = await self._inbox.get()
                now = self.clock.now()
                if not isinstance(item, Timer) and self._jobs.pop(item[0], None) is None:
                    continue  # cancelled
                with self._protocol_time():
                    if isinstance(item, Timer):
                        effects = self.node.on_timer(item, now)
                    else:
                        effects = self.node.on_result(item[0], item[1], now)
                self._execute(effects)
        finally:
            for task in [*self._jobs.values(), *side]:
                task.cancel()

    def deliver(self, sender: bytes, data: bytes, size_mb: float, payload_mb: float) -> list[Mapping[str, RecordValue]]:
        """Hand the node one message from the wire now, declared size_mb with payload_mb of it payload (counted in
        `wire` as received); returns the rejections it caused (empty if none)."""
        self.wire.count(sender.hex(), size_mb, payload_mb, 1)
        try:
            with self._protocol_time(codec=True):
                message = self.codec.decode_message(data)
        except DecodeError as exc:
            # A peer's bad bytes are counted and dropped; they never reach (or crash) the node.
            return [self.observe_rejection("message", MALFORMED, str(exc))]
        with self._protocol_time():
            effects = self.node.on_message(sender, message, self.clock.now())
        self._execute(effects)
        return [e.data for e in effects if isinstance(e, Record) and e.event == RECORD_REJECTED]

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run work beside the node from its start until it stops (an adapter's periodic duty)."""
        self._background.append(work)

    def apply(self, step: Callable[[int], list[Effect]]) -> None:
        """Run one call into the node from outside its inputs (a client's request, e.g. a task submitted at run
        time) at the current round, and execute the effects it returns; exceptions propagate to the caller."""
        with self._protocol_time():
            effects = step(self.clock.now())
        self._execute(effects)

    def record(self, event: str, data: Mapping[str, RecordValue]) -> None:
        """Record an event measured outside the protocol core (logged, and turned into metrics by the observer)."""
        self._record(event, data)

    def observe_rejection(self, kind: str, reason: str, detail: str = "") -> Mapping[str, RecordValue]:
        """Record input dropped before it reached the node (malformed, oversized); returns the record's data."""
        rejection: dict[str, RecordValue] = {"kind": kind, "reason": reason, "detail": detail}
        self._record(RECORD_REJECTED, rejection)
        return rejection

    async def serve(self, sender: bytes, kind: str, payload: bytes) -> bytes | None:
        """Answer a peer's fetch with the address of the object in the store, or None if this node refuses.

        Raises Refusal (invalid) for a request this node cannot parse.
        """
        if kind == FETCH_DATA:
            answer = self.node.on_request(sender, DataRequest(payload), self.clock.now())
            dataset = self.datasets.get(payload)
            if not isinstance(answer, DataGrant) or answer.commitment != payload or dataset is None:
                return None
            return await self.publish(payload, lambda: encode_dataset(dataset))
        if kind != FETCH_REQUEST:
            raise invalid("unknown_fetch_kind", kind)
        try:
            request = self.codec.decode_request(payload)
        except DecodeError as exc:
            raise invalid(MALFORMED, str(exc)) from exc
        with self._protocol_time():
            content = self.node.on_request(sender, request, self.clock.now())
        if not isinstance(content, bytes):
            return None
        if not content:
            # An answer with nothing in it (a catch-up answer with no blocks encodes to no bytes) needs no storage,
            # which holds no empty objects: the empty address stands for it.
            return EMPTY_ANSWER
        return await self.publish(sha256(content), lambda: content)

    async def publish(self, key: bytes, data: Callable[[], bytes]) -> bytes:
        """Put an object in the store once per key; its address as bytes."""
        ref = self._published.get(key)
        if ref is None:
            ref = self._published[key] = await self.store.put(await asyncio.to_thread(data))
        return ref.encode()

    async def fetch(self, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Ask the peer for the object's address, then read it from the store."""
        answer = await self.transport.request(self.node.node_id, peer, kind, payload)
        if answer is None:
            return None
        if answer == EMPTY_ANSWER:
            return b""
        content = await self.store.get(answer.decode("ascii"))
        self.wire.count_served(peer.hex(), len(content))
        return content

    def _encode(self, message: object) -> bytes:
        with self._protocol_time(codec=True):
            return self.codec.encode_message(message)

    def _execute(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        # As raft's Ready: a step's records are durable before anything it announces leaves this process.
        for effect in persist_first(effects):
            match effect:
                case Broadcast(message, size_mb, payload_mb):
                    self.transport.broadcast(self.node.node_id, self._encode(message), size_mb, payload_mb)
                case Send(peer, message, size_mb, payload_mb):
                    self.transport.send(self.node.node_id, peer, self._encode(message), size_mb, payload_mb)
                case StartTimer(timer, after):
                    loop.call_later(after * self.clock.round_seconds, self._inbox.put_nowait, timer)
                case Persist(kind, key, payload):
                    self.state.put(kind, key, payload)
                case Record(event, data):
                    self._record(event, data)
                case CancelJob(job):
                    task = self._jobs.pop(job, None)
                    if task is not None:
                        task.cancel()
                case Compute() | Mine() | Request() | FetchData() | Put() | Get():
                    self._jobs[effect.job] = asyncio.create_task(self._job(effect))
                case _:
                    assert_never(effect)

    async def _job(self, effect: Job) -> None:
        """Run one job, retrying internal failures; whatever happens the node hears back once."""
        name = _job_name(effect)
        result: JobResult = None
        for attempt in range(1, JOB_ATTEMPTS + 1):
            started = time.perf_counter()
            try:
                result = await self._work(effect)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.exception("job %s failed (attempt %d of %d)", name, attempt, JOB_ATTEMPTS)
                self._record(RECORD_INTERNAL_ERROR, {"job": name, "error": repr(exc), "attempt": attempt})
                result = JobFailed(f"{name}: {exc!r}")
                await asyncio.sleep(attempt * self.clock.round_seconds)
            else:
                self._record("job_done", {"job": name, "seconds": time.perf_counter() - started})
                break
        self._inbox.put_nowait((effect.job, result))

    async def _work(self, effect: Job) -> JobResult:
        match effect:
            case Compute(_, op):
                train = self._training_data(op) if isinstance(op, TrainModel) else None
                return await asyncio.to_thread(self._compute, op, train)
            case Mine():
                return await self._mine(effect)
            case Request(_, peer, request):
                return await self.fetch(peer, FETCH_REQUEST, self.codec.encode_request(request))
            case FetchData():
                return await self._fetch_data(effect)
            case Put(_, content):
                address = await self.store.put(content)
                self.wire.count_served(self.node.node_id.hex(), len(content))
                return address.encode("ascii")
            case Get(_, address):
                found = await self.store.find(address.decode("ascii", errors="replace"))
                if found is not None:
                    self.wire.count_served(self.node.node_id.hex(), len(found))
                return found
            case _:
                assert_never(effect)

    def _compute(self, op: WorkOp, train: Dataset | None) -> JobResult:
        return executor.execute(self.worker(), op, self.datasets, train, self.private)

    def _training_data(self, op: TrainModel) -> Dataset:
        key = (op.datasets, op.with_private)
        if key not in self._train_data:
            self._train_data[key] = executor.training_data(op, self.datasets, self.private)
        return self._train_data[key]

    async def _fetch_data(self, effect: FetchData) -> bool:
        """A released dataset, checked against its commitment Hash(D) before the node may use it."""
        if effect.commitment in self.datasets:
            return True
        data = await self.fetch(effect.peer, FETCH_DATA, effect.commitment)
        if data is None:
            return False
        try:
            dataset = await asyncio.to_thread(decode_dataset, data)
        except (ModelCodecError, ValueError) as exc:
            self.observe_rejection("dataset", MALFORMED, str(exc))
            return False
        if await asyncio.to_thread(dataset.commitment) != effect.commitment:
            self.observe_rejection("dataset", "dataset_commitment_mismatch")
            return False
        self.datasets[effect.commitment] = dataset
        return True

    async def _mine(self, effect: Mine) -> int:
        """q hash trials per round, in real time, until one meets the target."""
        start, q = 0, self.hash_trials_per_round
        suffix = fixed64_suffix(effect.nonce_tag)
        while True:
            began = time.thread_time()
            nonce, _ = search_nonce(effect.prefix, suffix, effect.target, start, q)
            self.pow_seconds += time.thread_time() - began
            if nonce is not None:
                return nonce
            start += q
            await asyncio.sleep(self.clock.round_seconds)

    def _record(self, event: str, data: Mapping[str, RecordValue]) -> None:
        now = self.clock.now()
        self.observe(Observation(now, self.index, event, data))
        log.info(event, extra={"round": now, "node": self.index, "role": self.node.role, **data})


def _job_name(effect: Job) -> str:
    """A Compute op's name (TrainModel, EvaluateEnsemble, ...), else Mine, Request, FetchData, Put or Get: the label of
    job metrics and logs."""
    return type(effect.op).__name__ if isinstance(effect, Compute) else type(effect).__name__
