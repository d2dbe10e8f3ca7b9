"""The real-time driver: runs a sans-IO node on asyncio with a wall clock, one round = round_seconds."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

from chainlab import mlwork
from chainlab.learning.codec import ModelCodecError
from chainlab.learning.datasets import Dataset, decode_dataset, encode_dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.pow import search_nonce
from chainlab.live.transport import ContentStore, Transport
from chainlab.protocols.bagchain.fullnode import EvaluationFailed
from chainlab.protocols.bagchain.messages import ModelRequest, from_wire, nonce_suffix, to_wire
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.effects import (
    Broadcast,
    CancelJob,
    Effect,
    Evaluate,
    FetchDataset,
    FetchModel,
    Mine,
    Record,
    StartTimer,
    Train,
)
from chainlab.scenario import Observation

log = logging.getLogger("chainlab.live")


class RoundClock:
    """Maps wall time to protocol rounds, counted from `epoch` (Unix time; default: now)."""

    def __init__(self, round_seconds: float, epoch: float | None = None) -> None:
        self.round_seconds = round_seconds
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> int:
        """The current round."""
        return max(0, int((time.time() - self.epoch) / self.round_seconds))


class BadRequest(ValueError):
    """A peer's request this node cannot parse or does not serve; the servicer maps it to a status."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


class LiveNode:
    """Feeds one node its messages, timers and job results in order, and carries out its effects."""

    def __init__(
        self,
        node: Any,
        index: int,
        transport: Transport,
        store: ContentStore,
        clock: RoundClock,
        *,
        datasets: Mapping[bytes, Dataset],
        private: Dataset | None,
        hash_trials_per_round: int,
        observe: Callable[[Observation], None],
    ) -> None:
        self.node = node
        self.index = index
        self.transport = transport
        self.store = store
        self.clock = clock
        self.datasets = dict(datasets)  # the datasets this node holds, by commitment
        self.private = private
        self.q = hash_trials_per_round
        self.observe = observe
        self.worker = Worker()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._jobs: dict[int, asyncio.Task[None]] = {}
        self._published: dict[bytes, str] = {}  # what this node has put in the store: key -> address

    async def run(self) -> None:
        """Process timers and job results until cancelled; messages arrive through deliver()."""
        self._execute(self.node.start(self.clock.now()))
        try:
            while True:
                kind, payload = await self._inbox.get()
                now = self.clock.now()
                if kind == "timer":
                    effects = self.node.on_timer(payload, now)
                else:
                    job, result = payload
                    if self._jobs.pop(job, None) is None:
                        continue  # cancelled
                    effects = self.node.on_result(job, result, now)
                self._execute(effects)
        finally:
            for task in self._jobs.values():
                task.cancel()

    def deliver(self, sender: bytes, data: bytes) -> list[Mapping[str, Any]]:
        """Hand the node one message from the wire now; returns the rejections it caused (empty if none)."""
        try:
            message = from_wire(data)
        except encoding.EncodingError as exc:
            # A peer's bad bytes are counted and dropped; they never reach (or crash) the node.
            return [self.observe_rejection("message", str(Reason.MALFORMED), str(exc))]
        effects = self.node.on_message(sender, message, self.clock.now())
        self._execute(effects)
        return [e.data for e in effects if isinstance(e, Record) and e.event == "rejected"]

    def observe_rejection(self, kind: str, reason: str, detail: str = "") -> Mapping[str, Any]:
        """Record input dropped before it reached the node (malformed, oversized); returns the record's data."""
        rejection = {"kind": kind, "reason": reason, "detail": detail}
        self._record("rejected", rejection)
        return rejection

    async def serve(self, kind: str, payload: bytes) -> bytes | None:
        """Answer a peer's Fetch with the address of the object in the store, or None if this node refuses."""
        if kind == "dataset":
            serve_dataset = getattr(self.node, "serve_dataset", None)
            dataset = self.datasets.get(payload)
            if serve_dataset is None or dataset is None or not serve_dataset(payload):
                return None
            return await self.publish(payload, lambda: encode_dataset(dataset))
        if kind != "model":
            raise BadRequest("unknown_fetch_kind", kind)
        try:
            request = encoding.decode(ModelRequest, payload)
        except encoding.EncodingError as exc:
            raise BadRequest(str(Reason.MALFORMED), str(exc)) from exc
        serve_model = getattr(self.node, "serve_model", None)
        model: bytes | None = None if serve_model is None else serve_model(request, self.clock.now())
        if model is None:
            return None
        return await self.publish(request.model_hash, lambda: model)

    async def publish(self, key: bytes, data: Callable[[], bytes]) -> bytes:
        """Put an object in the store once per key; its address as bytes."""
        ref = self._published.get(key)
        if ref is None:
            ref = self._published[key] = await self.store.put(await asyncio.to_thread(data))
        return ref.encode()

    def _execute(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        for effect in effects:
            if isinstance(effect, Broadcast):
                self.transport.broadcast(self.node.node_id, to_wire(effect.message), effect.size_mb)
            elif isinstance(effect, StartTimer):
                seconds = effect.after * self.clock.round_seconds
                loop.call_later(seconds, self._inbox.put_nowait, ("timer", effect.timer))
            elif isinstance(effect, Record):
                self._record(effect.event, effect.data)
            elif isinstance(effect, CancelJob):
                task = self._jobs.pop(effect.job, None)
                if task is not None:
                    task.cancel()
            else:
                self._jobs[effect.job] = asyncio.create_task(self._job(effect))

    async def _job(self, effect: Train | Evaluate | Mine | FetchModel | FetchDataset) -> None:
        """Run one job; whatever happens, the node hears back, so it never waits on a dead job."""
        started = time.perf_counter()
        try:
            result = await self._work(effect)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s failed", type(effect).__name__)
            self._record("job_failed", {"job": type(effect).__name__, "error": repr(exc)})
            result = EvaluationFailed(repr(exc)) if isinstance(effect, Evaluate) else None
        else:
            self._record("job_done", {"job": type(effect).__name__, "seconds": time.perf_counter() - started})
        self._inbox.put_nowait(("result", (effect.job, result)))

    async def _work(self, effect: Train | Evaluate | Mine | FetchModel | FetchDataset) -> object:
        result: object
        if isinstance(effect, Train):
            data = mlwork.local_data(self.datasets[effect.train_commitment], self.private)
            result = await asyncio.to_thread(mlwork.train, self.worker, effect, data)
        elif isinstance(effect, Evaluate):
            result = await asyncio.to_thread(mlwork.evaluate, self.worker, effect, self.datasets)
        elif isinstance(effect, Mine):
            result = await self._mine(effect)
        elif isinstance(effect, FetchModel):
            result = await self.fetch(effect.peer, "model", encoding.encode(effect.request))
        else:
            result = await self._fetch_dataset(effect)
        return result

    async def fetch(self, peer: bytes, kind: str, payload: bytes) -> bytes | None:
        """Fetch: ask the peer for the object's address, then read it from the store."""
        answer = await self.transport.request(self.node.node_id, peer, kind, payload)
        if answer is None:
            return None
        return await self.store.get(answer.decode("ascii"))

    async def _fetch_dataset(self, effect: FetchDataset) -> bool:
        """A released dataset, checked against its commitment Hash(D) before the node may use it."""
        if effect.commitment in self.datasets:
            return True
        data = await self.fetch(effect.peer, "dataset", effect.commitment)
        if data is None:
            return False
        try:
            dataset = await asyncio.to_thread(decode_dataset, data)
        except (ModelCodecError, ValueError) as exc:
            self.observe_rejection("dataset", str(Reason.MALFORMED), str(exc))
            return False
        if await asyncio.to_thread(dataset.commitment) != effect.commitment:
            self.observe_rejection("dataset", "dataset_commitment_mismatch")
            return False
        self.datasets[effect.commitment] = dataset
        return True

    async def _mine(self, effect: Mine) -> int:
        """q hash trials per round, in real time, until one meets the target."""
        start = 0
        while True:
            nonce, _ = search_nonce(effect.prefix, nonce_suffix, effect.target, start, self.q)
            if nonce is not None:
                return nonce
            start += self.q
            await asyncio.sleep(self.clock.round_seconds)

    def _record(self, event: str, data: Mapping[str, Any]) -> None:
        now = self.clock.now()
        self.observe(Observation(now, self.index, event, data))
        log.info(event, extra={"round": now, "node": self.index, "role": self.node.role, **data})
