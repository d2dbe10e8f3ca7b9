"""The real-time driver: runs a sans-IO node on asyncio with a wall clock, one round = round_seconds."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any

from chainlab import mlwork
from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger import encoding
from chainlab.ledger.pow import search_nonce
from chainlab.live.transport import InMemoryTransport
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
    """Maps wall time to protocol rounds."""

    def __init__(self, round_seconds: float) -> None:
        self.round_seconds = round_seconds
        self._start = asyncio.get_running_loop().time()

    def now(self) -> int:
        """The current round."""
        return int((asyncio.get_running_loop().time() - self._start) / self.round_seconds)


class LiveNode:
    """Feeds one node its messages, timers and job results in order, and carries out its effects."""

    def __init__(
        self,
        node: Any,
        index: int,
        transport: InMemoryTransport,
        clock: RoundClock,
        *,
        datasets: Mapping[bytes, Dataset],
        private: Dataset | None,
        hash_trials_per_round: int,
        records: list[Observation],
    ) -> None:
        self.node = node
        self.index = index
        self.transport = transport
        self.clock = clock
        self.datasets = datasets
        self.private = private
        self.q = hash_trials_per_round
        self.records = records
        self.worker = Worker()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._jobs: dict[int, asyncio.Task[None]] = {}
        transport.register(node.node_id, self._on_wire, self._serve)

    async def run(self) -> None:
        """Process events until cancelled."""
        self._execute(self.node.start(self.clock.now()))
        try:
            while True:
                kind, payload = await self._inbox.get()
                now = self.clock.now()
                if kind == "message":
                    effects = self.node.on_message(*payload, now)
                elif kind == "timer":
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

    def _on_wire(self, sender: bytes, data: bytes) -> None:
        try:
            message = from_wire(data)
        except encoding.EncodingError as exc:
            # A peer's bad bytes are counted and dropped; they never reach (or crash) the node.
            self._record("rejected", {"kind": "message", "reason": str(Reason.MALFORMED), "detail": str(exc)})
            return
        self._inbox.put_nowait(("message", (sender, message)))

    def _serve(self, kind: str, payload: bytes) -> bytes | None:
        now = self.clock.now()
        if kind == "dataset":
            serve_dataset = getattr(self.node, "serve_dataset", None)
            return b"\x01" if serve_dataset is not None and serve_dataset(payload) else None
        serve_model = getattr(self.node, "serve_model", None)
        if serve_model is None:
            return None
        try:
            request = encoding.decode(ModelRequest, payload)
        except encoding.EncodingError:
            return None
        answer: bytes | None = serve_model(request, now)
        return answer

    def _execute(self, effects: list[Effect]) -> None:
        loop = asyncio.get_running_loop()
        for effect in effects:
            if isinstance(effect, Broadcast):
                self.transport.broadcast(self.node.node_id, to_wire(effect.message))
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
        try:
            result = await self._work(effect)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("job %s failed", type(effect).__name__)
            self._record("job_failed", {"job": type(effect).__name__, "error": repr(exc)})
            result = EvaluationFailed(repr(exc)) if isinstance(effect, Evaluate) else None
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
            result = await self.transport.request(effect.peer, "model", encoding.encode(effect.request))
        else:
            result = await self.transport.request(effect.peer, "dataset", effect.commitment) == b"\x01"
        return result

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
        self.records.append(Observation(now, self.index, event, data))
        log.info(json.dumps({"round": now, "node": self.index, "role": self.node.role, "event": event, **data}))
