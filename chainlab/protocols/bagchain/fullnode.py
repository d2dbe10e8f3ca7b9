"""A BagChain full node: validates all three block kinds (Algorithms 2.1-2.3) and keeps the best chain."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sized
from functools import lru_cache
from typing import Any, ClassVar, ParamSpec, TypeVar

from chainlab.ledger import encoding
from chainlab.ledger.chain import ChainEntry, ChainIndex
from chainlab.ledger.hashing import sha256, short
from chainlab.ledger.identity import Identity, node_id_of
from chainlab.ledger.pow import meets_target
from chainlab.protocols.bagchain import persist, rules, sync
from chainlab.protocols.bagchain.messages import (
    MESSAGE_TYPES,
    DatasetKind,
    DatasetRelease,
    EnsembleBlock,
    KeyBlock,
    Message,
    MiniBlock,
    ModelRequest,
    RankedEnsemble,
    SyncReply,
    SyncRequest,
    Task,
    author_key,
    model_hash,
)
from chainlab.protocols.bagchain.params import BagChainParams
from chainlab.protocols.bagchain.reasons import Reason, Rejected
from chainlab.protocols.bagchain.timers import ExpireKeyBlock, RetryDataset, SyncDue, SyncProbe
from chainlab.protocols.base import Answer, NodeStatus, RecordValue, Timer
from chainlab.protocols.effects import (
    Compute,
    Effect,
    EvaluateEnsemble,
    EvaluationFailed,
    FetchData,
    JobFailed,
    JobResult,
    Persist,
    Record,
    Request,
    StartTimer,
)


class Waiting(Exception):
    """Validation needs data that has been asked for; `reason` applies if it never comes. `on` names what it waits
    for (see FullNode._wake): the block is checked again when one of them arrives, not after every event."""

    def __init__(self, reason: Reason, *on: Hashable) -> None:
        super().__init__(reason)
        self.reason = reason
        self.on = on

    def __str__(self) -> str:
        return str(self.reason)  # formatted when read: raised by the million (see Rejected)


class ModelKey(tuple[bytes, ...]):
    """An ensemble's sorted ModelHashes, hashed and compared in O(1): metrics and waits are keyed by it several
    times per delivered Ensemble Block, and a plain tuple of N hashes costs O(N) to hash and to compare each time
    (at 1,000 miners, the N^3 term). Equal to the plain tuple of the same hashes, and hashed alike."""

    def __hash__(self) -> int:
        cached: int | None = self.__dict__.get("hash")
        if cached is None:
            cached = self.__dict__["hash"] = tuple.__hash__(self)
        return cached

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, ModelKey):
            return hash(self) == hash(other) and self.digest == other.digest
        return tuple.__eq__(self, other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    @staticmethod
    def of(model_hashes: Iterable[bytes]) -> ModelKey:
        """The key of these ModelHashes (sorted here), one object per ensemble while it is in use: the Ensemble
        Blocks of a height mostly list the same models, and equal keys that are one object compare by identity."""
        return _model_key(tuple(sorted(model_hashes)))

    @property
    def digest(self) -> bytes:
        """SHA-256 of the hashes in order, each after its length, computed once: equal digests are equal keys."""
        cached: bytes | None = self.__dict__.get("digest")
        if cached is None:
            cached = self.__dict__["digest"] = sha256(*(len(h).to_bytes(4, "big") + h for h in self))
        return cached


@lru_cache(maxsize=1 << 10)
def _model_key(sorted_hashes: tuple[bytes, ...]) -> ModelKey:
    return ModelKey(sorted_hashes)


P = ParamSpec("P")
_Checked = TypeVar("_Checked", MiniBlock, EnsembleBlock)  # what _settle checks
MetricKey = tuple[tuple[bytes, ...], bytes]  # (sorted ModelHashes, dataset commitment)
_RETRY_ROUNDS = 5  # back-off before asking again for a dataset whose fetch failed
_UNAUTHENTICATED = frozenset({Reason.BAD_SIGNATURE, Reason.UNAUTHORIZED_RELEASE})
# A verdict that depends on this node's view of the chain may change as the chain grows: not held against a hash.
# What a pending Key Block may wait for that only a peer can supply: asked for by catch-up (sync.py).
_ASK_FOR = frozenset({Reason.UNKNOWN_PARENT, Reason.UNKNOWN_ENSEMBLE_BLOCK, Reason.WRONG_TASK_QUEUE})
# Verdicts that said what this node lacked when a block came, not what is wrong with it: a catch-up answer, which
# brings the blocks of a stretch this node missed in their order, may admit the block again.
_LACKED = frozenset({Reason.AFTER_VALIDATION_RELEASE, Reason.UNKNOWN_MINIBLOCK, Reason.UNKNOWN_TASK})
_VIEW_DEPENDENT = frozenset({Reason.INSUFFICIENT_FUNDS, Reason.TOO_FAR_AHEAD, Reason.TOO_MANY_PENDING})
_NOT_HELD_AGAINST = _UNAUTHENTICATED | _VIEW_DEPENDENT


class FullNode:
    """Validates everything it receives and follows the longest chain, best Metric_best first; mines nothing."""

    role: ClassVar[str] = "validator"

    def __init__(
        self,
        identity: Identity,
        params: BagChainParams,
        genesis: KeyBlock,
        *,
        seed: int = 0,
        held: frozenset[bytes] = frozenset(),
        peers: tuple[bytes, ...] = (),
    ) -> None:
        """held: commitments of the datasets the node's driver holds from the start (a miner's D_T of planned tasks);
        peers: full nodes to ask for the chain when it starts behind (restarted, or started late)."""
        self.identity = identity
        self.params = params
        self.seed = seed
        self.genesis = genesis
        self.chain = ChainIndex(ChainEntry(genesis.hash, b"", 0, 0.0))
        self.key_blocks: dict[bytes, KeyBlock] = {genesis.hash: genesis}
        self.tasks: dict[bytes, Task] = {}
        self.releases: dict[tuple[int, bytes, DatasetKind], DatasetRelease] = {}
        self.datasets: set[bytes] = set(held)
        self.miniblocks: dict[bytes, MiniBlock] = {}
        self.ensembles: dict[bytes, EnsembleBlock] = {}
        # Verdicts: absent = pending, None = valid, a Reason = rejected.
        self.mb_verdict: dict[bytes, Reason | None] = {}
        self.eb_verdict: dict[bytes, Reason | None] = {}
        self.models: dict[bytes, bytes] = {}
        self.metrics: dict[MetricKey, float] = {}
        self.rejected: dict[bytes, Reason] = {}
        self._mb_at: defaultdict[tuple[int, bytes], list[bytes]] = defaultdict(list)
        self._eb_at: defaultdict[tuple[int, bytes], list[bytes]] = defaultdict(list)
        self._pending_mbs: set[bytes] = set()  # stored, no verdict yet
        self._pending_ebs: set[bytes] = set()
        self._pending_kbs: dict[bytes, KeyBlock] = {}
        # Event-driven validation: a pending block that must wait is filed under what it waits for (_waiters) and
        # comes back to _dirty when that arrives (_wake); _progress checks only the dirty ones.
        self._dirty: set[bytes] = set()
        self._waiters: defaultdict[Hashable, set[bytes]] = defaultdict(set)
        self._valid_mbs: set[bytes] = set()  # MiniBlocks with a valid verdict
        self._all_valid: set[bytes] = set()  # digests of MiniBlock lists (see _members_digest) found all valid here
        self._all_held: set[bytes] = set()  # and found all held here
        # Counts what a miner acts on (see _after_progress): Key Blocks accepted, tasks and releases admitted, verdicts,
        # timers and job results other than a fetched model's. A MiniBlock or a model arriving changes none of it.
        self._changes = 0
        self._unsettled: Counter[tuple[int, bytes, bytes | None]] = Counter()  # MiniBlocks without a verdict, by
        # (height, task, parent) and by (height, task, None)
        self._by_model: defaultdict[bytes, list[bytes]] = defaultdict(list)  # ModelHash -> MiniBlock hashes
        self._executed: dict[bytes, frozenset[bytes]] = {genesis.hash: frozenset({genesis.task_id})}
        self._waiting_on: dict[bytes, Reason] = {}
        self._model_failures: dict[bytes, Reason] = {}  # by MiniBlock hash
        self._metric_failures: dict[MetricKey, str] = {}
        self._dataset_retry_at: dict[bytes, int] = {}
        self._jobs: dict[int, tuple[str, Any]] = {}
        self._inflight: defaultdict[str, set[Any]] = defaultdict(set)  # keys of the jobs under way, by kind
        self._next_job = 0
        self._out: list[Effect] = []
        self.persisting = True  # see Restorable.persisting
        self.kept_events: frozenset[str] | None = None  # see Recorder.kept_events
        self.now = 0
        # Catch-up (see sync.py): who to ask, what is asked for, and who has answered (they serve models too).
        self.peers = tuple(p for p in peers if p != identity.node_id)
        self._sender = b""
        self._source: dict[bytes, bytes] = {}  # pending Key Block -> the peer it came from
        self._wanted: dict[bytes, bytes] = {}  # pending Key Block that lacks blocks -> the peer to ask
        self._synced_kbs: set[bytes] = set()  # pending Key Blocks that came in a catch-up answer
        self._synced: bool = False  # admitting a catch-up answer: its MiniBlocks may predate releases held
        self._start_sync: bool = False  # restarted or late: behind until its first catch-up has settled
        self._start_peers: list[bytes] = []
        self._continue: tuple[bytes, bytes, int] | None = None  # (peer, to_hash, from_height) once the tip is there
        self._helpers: list[bytes] = []  # peers that answered catch-up: second sources of models
        self._model_tries: dict[bytes, int] = {}  # MiniBlock -> model sources tried
        self._restored = False
        self._probes: set[tuple[bytes, bytes, int]] = set()  # catch-up requests asked by SyncProbe

    # ----- driver interface -------------------------------------------------------------------------------

    @property
    def node_id(self) -> bytes:
        """This node's ID: the hash of its public key."""
        return self.identity.node_id

    @property
    def tip(self) -> KeyBlock:
        """The Key Block at the head of the chain chosen by fork choice."""
        return self.key_blocks[self.chain.tip.block_hash]

    def start(self, now: int) -> list[Effect]:
        """Begin taking part; returns the first effects. A node restored from its store, or started after round 0,
        first asks a peer for the chain above its tip."""
        self.now = now
        if (self._restored or now > 0) and self.peers:
            self._start_sync = True
            self._start_peers = list(self.peers)
            self._sync_from_tip()
            if self.params.sync_probes > 0:
                self._emit(StartTimer(SyncProbe(self.params.sync_probes), self.params.sync_probe_rounds))
        self._progress()
        return self._flush()

    def restore(self, records: Iterable[Persist]) -> None:
        """Load what this node persisted before a restart (see persist.py): its chain, blocks and their verdicts,
        releases, checked models and computed metrics. Blocks without a verdict are validated again as usual."""
        self._restored = True
        verdicts: dict[bytes, Reason | None] = {}
        for record in records:
            if persist.is_block(record):
                self._load(persist.read_block(record))
            elif record.kind == persist.VERDICT:
                verdicts[record.key] = persist.read_verdict(record)
            elif record.kind == persist.MODEL:
                self.models[record.key] = record.payload
            elif record.kind == persist.METRIC:
                hashes, dataset, value = persist.read_metric(record)
                self.metrics[(hashes, dataset)] = value
        for block_hash, verdict in verdicts.items():
            self._record_verdict(block_hash, verdict)
            self._pending_mbs.discard(block_hash)
            self._pending_ebs.discard(block_hash)
            if verdict is not None:
                self.rejected[block_hash] = verdict
        self._after_restore()
        self._out.clear()  # restoring announces nothing: these records were acted on before

    def _load(self, block: persist.Block) -> None:
        if isinstance(block, Task):
            self.tasks[block.task_id] = block
        elif isinstance(block, DatasetRelease):
            self.releases[(block.height, block.task_id, block.kind)] = block
        elif isinstance(block, MiniBlock):
            self._store_miniblock(block)
        elif isinstance(block, EnsembleBlock):
            self._store_ensemble(block)
        elif block.hash not in self.key_blocks and block.prehash in self.key_blocks:
            self.key_blocks[block.hash] = block
            self._executed[block.hash] = self._executed[block.prehash] | {block.task_id}
            self.chain.add(ChainEntry(block.hash, block.prehash, block.height, block.metric_best))

    def _after_restore(self) -> None:
        """Subclass hook: rebuild what a miner derives from its own blocks."""

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A message arrived from a peer."""
        self.now = now
        if not isinstance(message, MESSAGE_TYPES):
            self._record("rejected", kind=type(message).__name__, reason=str(Reason.MALFORMED), sender=sender.hex())
            return self._flush()
        self._sender = sender
        try:
            self._admit(message)
        except Rejected as exc:
            # A hash leaves the signature out, so a copy with a garbled signature shares the genuine block's
            # hash: failed authentication is counted but never held against the hash.
            remember = exc.reason not in _NOT_HELD_AGAINST
            self._reject(type(message).__name__, message.hash, exc.reason, exc.detail, sender, remember=remember)
        self._progress()
        return self._flush()

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """A timer started by StartTimer fired."""
        self.now = now
        self._changes += 1
        if isinstance(timer, ExpireKeyBlock):
            block = self._pending_kbs.pop(timer.block_hash, None)
            if block is not None:
                reason = self._waiting_on.pop(timer.block_hash, Reason.UNKNOWN_PARENT)
                self._reject("KeyBlock", timer.block_hash, reason, "gave up waiting")
                self._source.pop(timer.block_hash, None)
                self._synced_kbs.discard(timer.block_hash)
        elif isinstance(timer, SyncDue):
            if not self._on_sync_due(timer):
                return self._flush()  # the parent came by gossip: nothing changed
        elif isinstance(timer, SyncProbe):
            self._on_sync_probe(timer)
        elif isinstance(timer, RetryDataset):
            self._wake(("dataset", timer.commitment))
        else:
            self._on_own_timer(timer)
        self._progress()
        return self._flush()

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A Compute, Mine, Request or FetchData job finished."""
        self.now = now
        entry = self._jobs.pop(job, None)
        if entry is None:
            return []
        kind, key = entry
        self._inflight[kind].discard(key)
        self._changes += kind != "model"
        if isinstance(result, JobFailed):
            # The driver failed, not the peer: nothing is held against any block, and the job is asked for
            # again when validation next needs it.
            self._record("job_failed", job=kind, detail=result.detail)
            if kind in ("model", "metric"):
                self._wake((kind, key))
            if kind == "dataset":
                self._retry_dataset(key)
            elif kind == "sync":
                self._probes.discard(key)
                self._on_sync_failed(*key)
            elif kind not in ("model", "metric"):
                self._on_own_failure(kind, key)
        elif kind == "dataset":
            if result is True:
                self.datasets.add(key)
                self._wake(("dataset", key))
            else:
                self._retry_dataset(key)
        elif kind == "model":
            self._on_model(self.miniblocks[key], result)
            self._wake(("model", key))
        elif kind == "metric":
            if isinstance(result, EvaluationFailed):
                self._metric_failures[key] = result.detail
            elif isinstance(result, float | int) and not isinstance(result, bool):
                self.metrics[key] = self.params.round_metric(float(result))
                self._persist(persist.of_metric, key[0], key[1], self.metrics[key])
            self._wake(("metric", key))
        elif kind == "sync":
            self._on_sync_answer(key, result)
        else:
            self._on_own_result(kind, key, result)
        self._progress()
        return self._flush()

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """Answer a peer's point-to-point request: a ModelRequest is Fetch(M_i, ModelHash), a SyncRequest asks for
        part of the chain (see sync.py)."""
        if isinstance(request, ModelRequest):
            return self.serve_model(request, now)
        if isinstance(request, SyncRequest):
            return encoding.encode(self.serve_sync(request))
        return None

    def status(self) -> NodeStatus:
        """Role, height and tip of the best chain; forks are accepted Key Blocks off it; syncing while catching up."""
        tip = self.chain.tip
        return NodeStatus(self.role, tip.height, tip.block_hash, forks=self.chain.stale_count(), syncing=self.syncing)

    @property
    def syncing(self) -> bool:
        """Behind and catching up: a first catch-up after a restart, an answer awaited, or its blocks unsettled."""
        # A probe's question is routine: only an answer that brings blocks (pending below) says the node is behind.
        asked = any(key not in self._probes for key in self._inflight["sync"])
        return self._start_sync or asked or bool(self._synced_kbs & self._pending_kbs.keys())

    def serve_model(self, request: ModelRequest, now: int) -> bytes | None:
        """Answer Fetch(M_i, ModelHash) for a node catching up: a model this node checked, of a MiniBlock it holds
        valid whose D_V is out (from then on models are public, section VI-B)."""
        model = self.models.get(request.model_hash)
        if model is None:
            return None
        for mb_hash in self._miniblocks_of_model(request.model_hash):
            mb = self.miniblocks[mb_hash]
            if self.mb_verdict.get(mb_hash, False) is None and (
                (mb.height, mb.task_id, DatasetKind.VALIDATION) in self.releases
            ):
                return model
        return None

    def _miniblocks_of_model(self, digest: bytes) -> list[bytes]:
        return self._by_model.get(digest, [])

    def serve_sync(self, request: SyncRequest) -> SyncReply:
        """The part of the accepted chain a SyncRequest asks for, with what checking it needs."""
        valid_ebs = {
            at: [self.ensembles[h] for h in hs if self.eb_verdict.get(h, False) is None]
            for at, hs in self._eb_at.items()
        }
        valid_mbs = {
            at: [self.miniblocks[h] for h in hs if self.mb_verdict.get(h, False) is None]
            for at, hs in self._mb_at.items()
        }
        return sync.answer(
            request, self.params, self.chain, self.key_blocks, self.tasks, self.releases, valid_ebs, valid_mbs
        )

    # ----- hooks for miners ---------------------------------------------------------------------------------

    def _on_own_timer(self, timer: Timer) -> None:
        """Timers of subclasses."""

    def _on_own_result(self, kind: str, key: Any, result: JobResult) -> None:
        """Job results of subclasses."""

    def _on_own_failure(self, kind: str, key: Any) -> None:
        """A job of a subclass failed inside the driver; it should be asked for again."""

    def _after_progress(self) -> None:
        """Called after validation settles: where a miner produces blocks."""

    def _on_valid_ensemble(self, eb: EnsembleBlock) -> None:
        """An Ensemble Block was found valid (a miner ranks it in Phase III)."""

    # ----- admission: the checks a message passes on arrival -----------------------------------------------------

    def _admit(self, message: Message) -> None:
        # Authentication comes before any de-duplication: a hash leaves the signature out, so a copy re-signed with
        # another key shares the genuine message's hash and would otherwise pass as a duplicate of it.
        self._authenticate(message)
        earlier = self.rejected.get(message.hash)
        if earlier is not None and not (self._synced and earlier in _LACKED):
            return
        if isinstance(message, Task):
            self._admit_task(message)
        elif isinstance(message, DatasetRelease):
            self._admit_release(message)
        elif isinstance(message, MiniBlock):
            self._admit_miniblock(message)
        elif isinstance(message, EnsembleBlock):
            self._admit_ensemble(message)
        else:
            self._admit_key_block(message)

    def _authenticate(self, message: Message) -> None:
        """The signature must verify under the stated author's key (a release's: its task's requester's)."""
        if isinstance(message, DatasetRelease):
            if not message.signature_valid(self._task(message.task_id).requester_key):
                raise Rejected(Reason.UNAUTHORIZED_RELEASE, "not signed by the task's requester")
            return
        held = self._held(message)
        if held is not None and held.signature == message.signature:
            return  # the very copy this node checked on arrival: a gossip duplicate costs no verification
        key = author_key(message)
        if not key or not message.signature_valid(key):
            author = short(node_id_of(key)) if key else "no author"
            raise Rejected(Reason.BAD_SIGNATURE, f"{type(message).__name__} not signed by its stated author ({author})")

    def _held(self, message: Task | MiniBlock | EnsembleBlock | KeyBlock) -> Message | None:
        """The copy of a message with this hash that this node already holds, if any."""
        if isinstance(message, Task):
            return self.tasks.get(message.task_id)
        if isinstance(message, MiniBlock):
            return self.miniblocks.get(message.hash)
        if isinstance(message, EnsembleBlock):
            return self.ensembles.get(message.hash)
        return self.key_blocks.get(message.hash) or self._pending_kbs.get(message.hash)

    def _check_room(self, height: int | None, pending: Sized) -> None:
        """A block waits (for its parent, release or models) in memory: refuse one the node cannot check soon
        (more than max_heights_ahead above its tip) and any beyond max_pending_blocks of its kind."""
        ahead = None if height is None else height - self.chain.tip.height
        if ahead is not None and ahead > self.params.max_heights_ahead:
            limit = self.params.max_heights_ahead
            raise Rejected(Reason.TOO_FAR_AHEAD, f"height {height} is {ahead} above the tip (at most {limit})")
        if len(pending) >= self.params.max_pending_blocks:
            raise Rejected(Reason.TOO_MANY_PENDING, f"{len(pending)} of its kind already wait")

    def _admit_task(self, task: Task) -> None:
        if task.task_id in self.tasks:
            return
        rules.check_task_terms(task, self.params)
        rules.check_funds(task, self.best_chain(), self.tasks)
        self.tasks[task.task_id] = task
        self._changes += 1
        self._persist(persist.of_block, task)
        self._wake(("task", task.task_id))

    def _admit_release(self, release: DatasetRelease) -> None:
        task = self._task(release.task_id)  # _authenticate checked the requester's signature
        expected = task.validation_commitment if release.kind is DatasetKind.VALIDATION else task.test_commitment
        if release.dataset != expected:
            raise Rejected(Reason.WRONG_DATASET, "does not match the task's commitment")
        key = (release.height, release.task_id, release.kind)
        if key not in self.releases:
            self.releases[key] = release
            self._persist(persist.of_block, release)
            self._record("release", kind=release.kind.name.lower(), height=release.height)
            self._wake(("release", release.height, release.task_id, release.kind))
            self._changes += 1
            self._on_release(release)

    def _on_release(self, release: DatasetRelease) -> None:
        """Subclass hook when a dataset is first released."""

    def _admit_miniblock(self, mb: MiniBlock) -> None:
        if mb.hash in self.miniblocks:
            return
        self._task(mb.task_id)
        # The two-stage submitting scheme (section VI-B): nothing new is accepted once D_V is out. A catch-up answer
        # is exempt: it brings the blocks of heights whose releases came first here (the node was away), and the
        # ModelHash still binds each model to its miner.
        if not self._synced and (mb.height, mb.task_id, DatasetKind.VALIDATION) in self.releases:
            raise Rejected(Reason.AFTER_VALIDATION_RELEASE)
        self._check_room(mb.height, self._pending_mbs)
        self._store_miniblock(mb)

    def _store_miniblock(self, mb: MiniBlock) -> None:
        self.rejected.pop(mb.hash, None)  # an earlier verdict said what was lacked then (see _LACKED)
        self.miniblocks[mb.hash] = mb
        self._mb_at[(mb.height, mb.task_id)].append(mb.hash)
        self._by_model[mb.model_hash].append(mb.hash)
        self._pending_mbs.add(mb.hash)
        self._dirty.add(mb.hash)
        if mb.hash not in self.mb_verdict:
            self._unsettled[(mb.height, mb.task_id, mb.prehash)] += 1
            self._unsettled[(mb.height, mb.task_id, None)] += 1
        self._persist(persist.of_block, mb)

    def _admit_ensemble(self, eb: EnsembleBlock) -> None:
        if eb.hash in self.ensembles:
            return
        self._task(eb.task_id)
        # Before its MiniBlocks are looked up: those of a height far ahead were refused, not known.
        self._check_room(eb.height, self._pending_ebs)
        if not eb.miniblocks:
            raise Rejected(Reason.EMPTY_ENSEMBLE)
        if len(self._member_set(eb)) != len(eb.miniblocks):
            raise Rejected(Reason.DUPLICATE_MODEL, "a MiniBlock is listed twice")
        digest = self._members_digest(eb)
        if digest not in self._all_held:
            if not self.miniblocks.keys() >= self._member_set(eb):  # one C pass; the loop only names the culprit
                missing = next(h for h in eb.miniblocks if h not in self.miniblocks)
                raise Rejected(Reason.UNKNOWN_MINIBLOCK, short(missing))
            self._all_held.add(digest)  # MiniBlocks are never dropped: held once, held for good
        self._store_ensemble(eb)

    def _store_ensemble(self, eb: EnsembleBlock) -> None:
        self.rejected.pop(eb.hash, None)  # an earlier verdict said what was lacked then (see _LACKED)
        self.ensembles[eb.hash] = eb
        self._eb_at[(eb.height, eb.task_id)].append(eb.hash)
        self._pending_ebs.add(eb.hash)
        self._dirty.add(eb.hash)
        self._persist(persist.of_block, eb)
        self._wake(("eb", eb.hash))

    def _admit_key_block(self, kb: KeyBlock) -> None:
        if kb.hash in self.key_blocks or kb.hash in self._pending_kbs:
            return
        if not meets_target(kb.hash, self.params.target):
            raise Rejected(Reason.BAD_POW)
        # A Key Block far ahead is how a node learns it is behind (it asks for the missing chain), so only the
        # number waiting is bounded; each also expires after pending_rounds.
        self._check_room(None, self._pending_kbs)
        self._pending_kbs[kb.hash] = kb
        self._dirty.add(kb.hash)
        self._source[kb.hash] = self._sender
        if self._synced:
            self._synced_kbs.add(kb.hash)
        self._emit(StartTimer(ExpireKeyBlock(kb.hash), self.params.pending_rounds))

    # ----- validation: Algorithms 2.1, 2.2 and 2.3 -------------------------------------------------------------

    def _progress(self) -> None:
        """Check the pending blocks whose wait is over until none is left, then let a miner act.

        A block is checked when it is stored and again only when something it waited for arrives (a release, a
        dataset, a model, a metric, a verdict, a parent, an Ensemble Block, a task): the work is proportional to
        what changed, not to what is pending. MiniBlocks go first, then Ensemble Blocks, then Key Blocks (in
        arrival order), each in hash order, so every run takes the same steps."""
        while self._dirty:
            dirty, self._dirty = self._dirty, set()
            # A competing Key Block may still arrive for a recent height, so its blocks stay under review
            # for Q heights below the tip; older pending blocks can no longer matter.
            floor = self.chain.tip.height - self.params.queue_length
            mbs, ebs = dirty & self._pending_mbs, dirty & self._pending_ebs
            for mb_hash in sorted(mbs) if len(mbs) > 1 else mbs:
                mb = self.miniblocks[mb_hash]
                if mb.height <= floor or self._settle("MiniBlock", mb_hash, self._check_miniblock, mb):
                    self._pending_mbs.discard(mb_hash)
            for eb_hash in sorted(ebs) if len(ebs) > 1 else ebs:
                eb = self.ensembles[eb_hash]
                if eb.height <= floor or self._settle("EnsembleBlock", eb_hash, self._check_ensemble, eb):
                    self._pending_ebs.discard(eb_hash)
            for kb_hash in [h for h in self._pending_kbs if h in dirty] if self._pending_kbs else ():
                kb = self._pending_kbs[kb_hash]
                try:
                    self._check_key_block(kb)
                except Waiting as wait:
                    self._waiting_on[kb_hash] = wait.reason
                    self._wait(kb_hash, wait)
                    if wait.reason in _ASK_FOR:
                        self._want(kb)
                    continue
                except Rejected as exc:
                    del self._pending_kbs[kb_hash]
                    self._reject("KeyBlock", kb_hash, exc.reason, exc.detail)
                    self._wake(("kb", kb_hash))  # its children are invalid
                else:
                    del self._pending_kbs[kb_hash]
                    self._accept_key_block(kb)
                self._source.pop(kb_hash, None)
                self._synced_kbs.discard(kb_hash)
        self._continue_sync()
        self._after_progress()

    def _wait(self, block_hash: bytes, wait: Waiting) -> None:
        """File a pending block under what it waits for."""
        for key in wait.on:
            self._waiters[key].add(block_hash)

    def _wake(self, key: Hashable) -> None:
        """What `key` names has arrived: the blocks waiting for it are checked again at the next _progress."""
        waiting = self._waiters.pop(key, None)
        if waiting:
            self._dirty |= waiting

    def _prune(self) -> None:
        """The tip moved: forget pending blocks too old to matter, and the waits of blocks no longer pending."""
        floor = self.chain.tip.height - self.params.queue_length
        self._pending_mbs = {h for h in self._pending_mbs if self.miniblocks[h].height > floor}
        self._pending_ebs = {h for h in self._pending_ebs if self.ensembles[h].height > floor}
        pending = self._pending_mbs | self._pending_ebs | self._pending_kbs.keys()
        for key in list(self._waiters):
            self._waiters[key] &= pending
            if not self._waiters[key]:
                del self._waiters[key]

    def _settle(self, kind: str, block_hash: bytes, check: Callable[[_Checked], None], block: _Checked) -> bool:
        try:
            check(block)
        except Waiting as wait:
            self._wait(block_hash, wait)
            return False
        except Rejected as exc:
            self._record_verdict(block_hash, exc.reason)
            self._persist(persist.of_verdict, block_hash, exc.reason)
            self._reject(kind, block_hash, exc.reason, exc.detail)
            return True
        self._record_verdict(block_hash, None)
        self._persist(persist.of_verdict, block_hash, None)
        if self._keeps("accepted"):
            self._record("accepted", kind=kind, block=block_hash.hex(), height=block.height)
        return True

    def _record_verdict(self, block_hash: bytes, verdict: Reason | None) -> None:
        """A MiniBlock's or Ensemble Block's verdict, settled once; the blocks that waited for it are woken."""
        self._changes += 1
        mb = self.miniblocks.get(block_hash)
        if mb is not None:
            if block_hash not in self.mb_verdict:
                self._unsettled[(mb.height, mb.task_id, mb.prehash)] -= 1
                self._unsettled[(mb.height, mb.task_id, None)] -= 1
            self.mb_verdict[block_hash] = verdict
            if verdict is None:
                self._valid_mbs.add(block_hash)
        else:
            self.eb_verdict[block_hash] = verdict
            if verdict is None:
                self._on_valid_ensemble(self.ensembles[block_hash])
        self._wake(("verdict", block_hash))

    def _check_miniblock(self, mb: MiniBlock) -> None:
        """Algorithm 2.1, after checking that the MiniBlock works on the task its height executes."""
        task = self._task(mb.task_id)
        self._check_miniblock_task(mb)
        release = self._release(mb.height, mb.task_id, DatasetKind.VALIDATION)
        self._model(mb, release)
        value = self._metric((mb.model_hash,), task, release.dataset)
        if not value > task.metric_min:
            raise Rejected(Reason.BELOW_METRIC_MIN, f"{value} <= {task.metric_min}")

    def _check_miniblock_task(self, mb: MiniBlock) -> None:
        """The parent's queue head must be the MiniBlock's task.

        With CFS the parent may be a fork this node has not seen yet (Algorithm 2.1 never looks at it, and
        section V lifts the prehash rule); the task queue makes every fork run the same task at a height,
        so the node's own chain can vouch for the task instead.
        """
        parent = self.key_blocks.get(mb.prehash)
        if parent is None and self.params.cfs and mb.prehash not in self.rejected:
            own = self.chain.main_at(mb.height - 1)
            if own is None:
                raise Waiting(Reason.UNKNOWN_PARENT, ("kb", mb.prehash), "tip")
            parent = self.key_blocks[own.block_hash]
        if parent is None:
            parent = self._parent(mb.prehash)
        if parent.height + 1 != mb.height:
            raise Rejected(Reason.WRONG_HEIGHT)
        if not parent.task_queue or parent.task_queue[0] != mb.task_id:
            raise Rejected(Reason.TASK_MISMATCH, "not the head of the parent's task queue")

    def _check_ensemble(self, eb: EnsembleBlock) -> None:
        """Algorithm 2.2 (with CFS, section V, when enabled)."""
        task = self._task(eb.task_id)
        release = self._release(eb.height, eb.task_id, DatasetKind.VALIDATION)
        self._valid_members(eb)
        value = self._metric(self._model_key(eb), task, release.dataset)
        if value != eb.metric_v:
            raise Rejected(Reason.FALSE_METRIC_V, f"claimed {eb.metric_v}, computed {value}")
        if not eb.metric_v > task.metric_min:
            raise Rejected(Reason.BELOW_METRIC_MIN, f"ensemble {eb.metric_v}")

    def _member_set(self, eb: EnsembleBlock) -> frozenset[bytes]:
        """Its MiniBlock hashes as a set."""
        return eb.derived("member_set", lambda: frozenset(eb.miniblocks))

    def _members_digest(self, eb: EnsembleBlock) -> bytes:
        """A digest of its MiniBlock list: Ensemble Blocks of one height usually list the same MiniBlocks."""
        return eb.derived("members_digest", lambda: sha256(b"".join(eb.miniblocks)))

    def _members(self, eb: EnsembleBlock) -> tuple[MiniBlock, ...]:
        """An Ensemble Block's MiniBlocks (all held: admission checks it), looked up once per block object."""
        return eb.derived("members", lambda: tuple(self.miniblocks[h] for h in eb.miniblocks))

    def _model_key(self, eb: EnsembleBlock) -> tuple[bytes, ...]:
        """Its members' ModelHashes, sorted: what its metrics are keyed by (see _metric)."""
        return eb.derived("model_key", lambda: ModelKey.of(mb.model_hash for mb in self._members(eb)))

    def _parents(self, eb: EnsembleBlock) -> frozenset[bytes]:
        """The Key Blocks its members point to."""
        return eb.derived("parents", lambda: frozenset(mb.prehash for mb in self._members(eb)))

    def _valid_members(self, eb: EnsembleBlock) -> tuple[MiniBlock, ...]:
        members = self._members(eb)
        if not eb.derived(
            "members_fit", lambda: all(mb.height == eb.height and mb.task_id == eb.task_id for mb in members)
        ):
            raise Rejected(Reason.TASK_MISMATCH, "MiniBlock of another height or task")
        digest = self._members_digest(eb)
        if digest in self._all_valid:
            pass  # these MiniBlocks were all found valid here before (verdicts are final)
        elif self._valid_mbs.issuperset(eb.miniblocks):  # one C-level pass in the usual case: all are valid
            self._all_valid.add(digest)
        else:
            for mb in members:
                if mb.hash not in self.mb_verdict:
                    raise Waiting(Reason.INVALID_MINIBLOCK, ("verdict", mb.hash))
                verdict = self.mb_verdict[mb.hash]
                if verdict is not None:
                    raise Rejected(Reason.INVALID_MINIBLOCK, f"{short(mb.hash)}: {verdict}")
        if not self.params.cfs and len(self._parents(eb)) != 1:
            raise Rejected(Reason.MINIBLOCK_WRONG_PARENT, "MiniBlocks point to different Key Blocks")
        # One model counts once, with or without CFS: a duplicate would take two shares of the reward.
        if not eb.derived("distinct_models", lambda: len(set(self._model_key(eb))) == len(members)):
            raise Rejected(Reason.DUPLICATE_MODEL)
        return members

    def _check_key_block(self, kb: KeyBlock) -> None:
        """Algorithm 2.3: structure first, then every ranked Ensemble Block re-evaluated on D_E."""
        parent = self._parent(kb.prehash)
        if kb.height != parent.height + 1:
            raise Rejected(Reason.WRONG_HEIGHT)
        if not parent.task_queue or kb.task_id != parent.task_queue[0]:
            raise Rejected(Reason.TASK_MISMATCH, "not the head of the parent's task queue")
        task = self._task(kb.task_id)
        self._check_queue(kb, parent)
        if not kb.derived("ranking_sorted", lambda: rules.rank(kb.ranking) == kb.ranking):
            raise Rejected(Reason.RANKING_NOT_SORTED)
        best = kb.ranking[0].metric_e if kb.ranking else 0.0
        if kb.metric_best != best:
            raise Rejected(Reason.FALSE_METRIC_BEST, f"claimed {kb.metric_best}, ranking says {best}")
        ranked = [self._ranked_ensemble(entry, kb) for entry in kb.ranking]
        winners = list(self._members(ranked[0][1])) if ranked else []
        if self.params.cfs:
            if winners and kb.prehash not in rules.majority_parents(winners):
                raise Rejected(Reason.WRONG_PARENT, "not the majority vote of the winning MiniBlocks")
        elif any(self._parents(eb) != {kb.prehash} for _, eb in ranked):
            raise Rejected(Reason.MINIBLOCK_WRONG_PARENT, "a ranked MiniBlock points elsewhere")
        # The payments follow from the block and its ranked Ensemble Block alone: worked out once per block object.
        reward = self.params.key_block_reward
        wrong = kb.derived(("rewards", task.fee, reward), lambda: rules.rewards_error(kb, task.fee, winners, reward))
        if wrong is not None:
            raise Rejected(wrong)
        if kb.ranking:
            release = self._release(kb.height, kb.task_id, DatasetKind.TEST)
            for entry, eb in ranked:
                value = self._metric(self._model_key(eb), task, release.dataset)
                if value != entry.metric_e:
                    raise Rejected(Reason.FALSE_METRIC_E, f"claimed {entry.metric_e}, computed {value}")

    def _ranked_ensemble(self, entry: RankedEnsemble, kb: KeyBlock) -> tuple[RankedEnsemble, EnsembleBlock]:
        eb = self.ensembles.get(entry.ensemble_block)
        if eb is None:
            raise Waiting(Reason.UNKNOWN_ENSEMBLE_BLOCK, ("eb", entry.ensemble_block))
        if eb.height != kb.height or eb.task_id != kb.task_id:
            raise Rejected(Reason.TASK_MISMATCH, "ranked Ensemble Block of another height or task")
        if eb.hash not in self.eb_verdict:
            raise Waiting(Reason.INVALID_ENSEMBLE_BLOCK, ("verdict", eb.hash))
        if self.eb_verdict[eb.hash] is not None:
            raise Rejected(Reason.INVALID_ENSEMBLE_BLOCK, f"{short(eb.hash)}: {self.eb_verdict[eb.hash]}")
        return entry, eb

    def _check_queue(self, kb: KeyBlock, parent: KeyBlock) -> None:
        """The queue must be the parent's minus its head, plus at most one new, not yet scheduled task."""
        rest = parent.task_queue[1:]
        if kb.task_queue[: len(rest)] != rest or len(kb.task_queue) - len(rest) not in (0, 1):
            raise Rejected(Reason.WRONG_TASK_QUEUE, "not a rotation of the parent's queue")
        if len(kb.task_queue) > len(rest):
            appended = kb.task_queue[-1]
            if appended not in self.tasks:
                raise Waiting(Reason.WRONG_TASK_QUEUE, ("task", appended))
            if appended in self.scheduled_tasks(parent):
                raise Rejected(Reason.WRONG_TASK_QUEUE, "appended task was already scheduled")

    def scheduled_tasks(self, block: KeyBlock) -> frozenset[bytes]:
        """Tasks executed on the chain ending at block (an accepted Key Block), or waiting in its queue."""
        return self._executed[block.hash] | set(block.task_queue)

    # ----- what validation needs ------------------------------------------------------------------------------

    def _task(self, task_id: bytes) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            raise Rejected(Reason.UNKNOWN_TASK, short(task_id))
        return task

    def _parent(self, prehash: bytes) -> KeyBlock:
        parent = self.key_blocks.get(prehash)
        if parent is not None:
            return parent
        if prehash in self.rejected:
            raise Rejected(Reason.INVALID_PARENT, short(prehash))
        raise Waiting(Reason.UNKNOWN_PARENT, ("kb", prehash))

    def _release(self, height: int, task_id: bytes, kind: DatasetKind) -> DatasetRelease:
        release = self.releases.get((height, task_id, kind))
        if release is None:
            raise Waiting(Reason.MISSING_RELEASE, ("release", height, task_id, kind))
        self._dataset(release.dataset, self.tasks[task_id].requester_id)
        return release

    def _dataset(self, commitment: bytes, peer: bytes) -> None:
        if commitment in self.datasets:
            return
        if self.now >= self._dataset_retry_at.get(commitment, 0):
            self._start_job("dataset", commitment, lambda job: FetchData(job, peer, commitment))
        raise Waiting(Reason.MISSING_DATASET, ("dataset", commitment))

    def _retry_dataset(self, commitment: bytes) -> None:
        """A fetch of a dataset failed: ask again after a back-off (the timer wakes what waits for it)."""
        self._dataset_retry_at[commitment] = self.now + _RETRY_ROUNDS
        self._emit(StartTimer(RetryDataset(commitment), _RETRY_ROUNDS))

    def _model(self, mb: MiniBlock, release: DatasetRelease) -> bytes:
        if mb.hash in self._model_failures:
            raise Rejected(self._model_failures[mb.hash])
        model = self.models.get(mb.model_hash)
        if model is not None:
            # Bytes held under this ModelHash (this node's own model, or one fetched for the original) prove the
            # hash binds them to their owner: a copy under another miner's ID fails Section VI-B's check here.
            if model_hash(model, mb.miner_id) != mb.model_hash:
                self._model_failures[mb.hash] = Reason.MODEL_HASH_MISMATCH
                raise Rejected(Reason.MODEL_HASH_MISMATCH, "the model held under this ModelHash is another miner's")
            return model

        def fetch(job: int) -> Effect:
            peer = self._model_sources(mb)[self._model_tries.get(mb.hash, 0)]
            return Request(job, peer, ModelRequest(mb.model_hash, release))

        self._start_job("model", mb.hash, fetch)
        raise Waiting(Reason.MODEL_UNAVAILABLE, ("model", mb.hash))

    def _model_sources(self, mb: MiniBlock) -> list[bytes]:
        """Its miner first; then the peers that answered this node's catch-up (they serve models they checked)."""
        return [mb.miner_id, *(p for p in self._helpers if p != mb.miner_id)]

    def _on_model(self, mb: MiniBlock, result: object) -> None:
        # Failures belong to the MiniBlock, not the ModelHash: a plagiarist's copy must not sink the original.
        tried = self._model_tries.get(mb.hash, 0)
        from_miner = tried == 0
        if isinstance(result, bytes) and model_hash(result, mb.miner_id) == mb.model_hash:
            self.models[mb.model_hash] = result
            self._persist(persist.of_model, mb.model_hash, result)
        elif isinstance(result, bytes) and from_miner:
            # Section VI-B: a copied ModelHash under another miner's ID fails here.
            self._model_failures[mb.hash] = Reason.MODEL_HASH_MISMATCH
        elif tried + 1 < len(self._model_sources(mb)):
            self._model_tries[mb.hash] = tried + 1  # ask the next source; a second source's miss proves nothing
        else:
            self._model_failures[mb.hash] = Reason.MODEL_UNAVAILABLE

    def _metric(self, model_hashes: tuple[bytes, ...], task: Task, dataset: bytes) -> float:
        """The task's metric of the ensemble of model_hashes (sorted: see _model_key) on dataset, once computed."""
        key: MetricKey = (model_hashes, dataset)
        if key in self.metrics:
            return self.metrics[key]
        if key in self._metric_failures:
            raise Rejected(Reason.MODEL_UNDECODABLE, self._metric_failures[key])

        def evaluate(job: int) -> Effect:
            # O(models): built only when the job starts, not on every check that finds it under way.
            models = tuple(zip(model_hashes, map(self.models.__getitem__, model_hashes), strict=True))
            return Compute(job, EvaluateEnsemble(models, task.train, dataset, task.aggregate, task.metric))

        self._start_job("metric", key, evaluate)
        raise Waiting(Reason.EVALUATION_UNFINISHED, ("metric", key))

    def _start_job(self, kind: str, key: Any, effect: Callable[[int], Effect]) -> None:
        """Emit effect(job) unless the same job is already under way: effect is called only then, and before the job
        counts as under way, so one that raises leaves nothing waiting on it."""
        if key in self._inflight[kind]:
            return
        self._emit(effect(self._new_job(kind, key)))
        self._inflight[kind].add(key)

    def _new_job(self, kind: str, key: Any) -> int:
        self._next_job += 1
        self._jobs[self._next_job] = (kind, key)
        return self._next_job

    # ----- chain -----------------------------------------------------------------------------------------------

    def _accept_key_block(self, kb: KeyBlock) -> None:
        self.key_blocks[kb.hash] = kb
        self._executed[kb.hash] = self._executed[kb.prehash] | {kb.task_id}
        self._changes += 1
        self._persist(persist.of_block, kb)
        self._waiting_on.pop(kb.hash, None)
        old_tip = self.chain.tip.block_hash
        self.chain.add(ChainEntry(kb.hash, kb.prehash, kb.height, kb.metric_best))
        self._record("accepted", kind="KeyBlock", block=kb.hash.hex(), height=kb.height)
        self._wake(("kb", kb.hash))
        if self.chain.tip.block_hash != old_tip:
            self._wake("tip")
            self._prune()
            winner = self.ensembles.get(kb.ranking[0].ensemble_block) if kb.ranking else None
            self._record(
                "tip",
                block=kb.hash.hex(),
                height=kb.height,
                task=kb.task_id.hex(),
                metric_best=kb.metric_best,
                miniblocks_seen=len(self._mb_at.get((kb.height, kb.task_id), ())),
                miniblocks_used=len(winner.miniblocks) if winner else 0,
            )

    def best_chain(self) -> list[KeyBlock]:
        """The Key Blocks of the best chain, genesis first."""
        return [self.key_blocks[e.block_hash] for e in self.chain.main_chain()]

    def balances(self) -> dict[bytes, int]:
        """Account balances along the best chain: genesis allocations and rewards, minus the fees paid."""
        return rules.balances(self.best_chain(), self.tasks)

    # ----- catch-up (sync.py) ------------------------------------------------------------------------------------

    def _sync(self, peer: bytes, to_hash: bytes, from_height: int) -> bool:
        """Ask peer for sync_max_blocks Key Blocks from from_height on the chain ending at to_hash (its tip if
        empty); False if sync_max_outstanding requests are already in flight."""
        key = (peer, to_hash, max(1, from_height))
        if key in self._inflight["sync"]:
            return True
        if len(self._inflight["sync"]) >= self.params.sync_max_outstanding:
            return False
        request = SyncRequest(to_hash, key[2], self.params.sync_max_blocks)
        self._start_job("sync", key, lambda job: Request(job, peer, request))
        self._record("sync_requested", peer=peer.hex(), to=to_hash.hex(), from_height=key[2])
        return True

    def _sync_from_tip(self) -> None:
        """The first catch-up after a (re)start: the next start peer's chain above this node's tip."""
        if not self._start_peers:
            self._start_sync = False
            self._record("sync_gave_up", height=self.chain.tip.height)
            return
        self._sync(self._start_peers[0], b"", self.chain.tip.height + 1)

    def _on_sync_probe(self, timer: SyncProbe) -> None:
        """Ask a peer (in turn, by probe) for the chain above the tip; again later while probes remain."""
        peer = self.peers[timer.count % len(self.peers)]
        key = (peer, b"", max(1, self.chain.tip.height + 1))
        if key not in self._inflight["sync"] and self._sync(*key):
            self._probes.add(key)
        if timer.count > 1:
            self._emit(StartTimer(SyncProbe(timer.count - 1), self.params.sync_probe_rounds))

    def _want(self, kb: KeyBlock) -> None:
        """A Key Block lacks its parent or a ranked Ensemble Block: unless gossip brings them within
        sync_wait_rounds, ask the peer it came from for its chain up to it."""
        source = self._source.get(kb.hash, b"")
        if kb.hash in self._wanted or not source or source == self.node_id:
            return
        self._wanted[kb.hash] = source
        self._emit(StartTimer(SyncDue(kb.hash), self.params.sync_wait_rounds))

    def _on_sync_due(self, timer: SyncDue) -> bool:
        """Whether asking was needed; what is lacking is asked for from the bottom up (this node's tip)."""
        peer = self._wanted.pop(timer.block_hash, b"")
        kb = self._pending_kbs.get(timer.block_hash)
        if not peer or kb is None or self._waiting_on.get(kb.hash) not in _ASK_FOR:
            return False
        if not self._sync(peer, kb.hash, min(self.chain.tip.height + 1, kb.height)):
            self._wanted[kb.hash] = peer  # at the limit of requests in flight: try again later
            self._emit(StartTimer(timer, self.params.sync_wait_rounds))
        return True

    def _on_sync_answer(self, key: tuple[bytes, bytes, int], result: JobResult) -> None:
        self._probes.discard(key)
        peer, to_hash, from_height = key
        if not isinstance(result, bytes):
            self._on_sync_failed(peer, to_hash, from_height)
            return
        request = SyncRequest(to_hash, from_height, self.params.sync_max_blocks)
        try:
            messages = sync.read(result, request, self.params)
        except Rejected as exc:
            self._reject("SyncReply", b"", exc.reason, exc.detail, peer, remember=False)
            self._on_sync_failed(peer, to_hash, from_height)
            return
        if peer not in self._helpers:
            self._helpers.append(peer)
        self._synced, self._sender = True, peer
        try:
            for message in messages:
                try:
                    self._admit(message)
                except Rejected as exc:
                    remember = exc.reason not in _NOT_HELD_AGAINST
                    self._reject(type(message).__name__, message.hash, exc.reason, exc.detail, peer, remember=remember)
        finally:
            self._synced = False
        key_blocks = [m for m in messages if isinstance(m, KeyBlock)]
        self._record("sync_answered", peer=peer.hex(), key_blocks=len(key_blocks), blocks=len(messages))
        if not key_blocks:
            self._start_sync = False  # nothing above this node's tip there: caught up with that peer
            return
        lowest, top = key_blocks[0], key_blocks[-1]
        below = max(1, lowest.height - self.params.sync_max_blocks)
        if lowest.prehash not in self.key_blocks and lowest.prehash not in self._pending_kbs and below < from_height:
            # The asked chain forks below what was asked: go down first (always lower, so this ends).
            self._sync(peer, to_hash or top.hash, below)
        if len(key_blocks) == self.params.sync_max_blocks and top.hash != to_hash:
            # There may be more above: asked once the tip has reached these (blocks far above it are refused).
            self._continue = (peer, to_hash, top.height + 1)
        else:
            self._start_sync = False

    def _on_sync_failed(self, peer: bytes, to_hash: bytes, from_height: int) -> None:
        if self._start_sync and not to_hash and self._start_peers and self._start_peers[0] == peer:
            self._start_peers.pop(0)
            self._sync_from_tip()

    def _continue_sync(self) -> None:
        """Ask for the next Key Blocks once the tip has reached the last answer's top."""
        if self._continue is None:
            return
        peer, to_hash, from_height = self._continue
        if self.chain.tip.height + 1 >= from_height:
            self._continue = None
            self._sync(peer, to_hash, from_height)
        elif not self._synced_kbs & self._pending_kbs.keys() and not self._inflight["sync"]:
            self._continue, self._start_sync = None, False  # the answer's blocks settled without reaching it

    # ----- effects ---------------------------------------------------------------------------------------------

    def _reject(
        self,
        kind: str,
        block_hash: bytes,
        reason: Reason,
        detail: str = "",
        sender: bytes = b"",
        *,
        remember: bool = True,
    ) -> None:
        if remember:
            self.rejected[block_hash] = reason
        data = {
            "kind": kind,
            "reason": str(reason),
            "block": block_hash.hex(),
            "detail": detail,
            "sender": sender.hex(),
        }
        self._record("rejected", **data)

    def _record(self, event: str, **data: RecordValue) -> None:
        if self._keeps(event):
            self._out.append(Record(event, data))

    def _keeps(self, event: str) -> bool:
        """Whether the driver keeps Records of event (see Recorder.kept_events); hot callers ask before building."""
        return self.kept_events is None or event in self.kept_events

    def _emit(self, effect: Effect) -> None:
        self._out.append(effect)

    def _persist(self, record: Callable[P, Persist], *args: P.args, **kwargs: P.kwargs) -> None:
        """Emit record(*args), a Persist effect, unless the driver keeps none (see Restorable.persisting)."""
        if self.persisting:
            self._out.append(record(*args, **kwargs))

    def _flush(self) -> list[Effect]:
        out, self._out = self._out, []
        return out

    def _seed_for(self, *parts: bytes) -> int:
        """A per-job seed derived from the node's seed, so runs are reproducible."""
        return int.from_bytes(sha256(self.seed.to_bytes(8, "big"), self.node_id, *parts)[:4], "big")
