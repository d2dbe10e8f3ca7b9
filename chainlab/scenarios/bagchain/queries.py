"""BagChain's transport-free answers to chain queries (any full node) and the requester's task API.

The gRPC adapter (chainlab/live/adapters/bagchain.py) decodes, calls these, and encodes; they raise neutral
refusals that the one interceptor maps to status codes."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.bagchain import FullNode, Requester
from chainlab.protocols.bagchain.messages import DatasetKind, EnsembleBlock, KeyBlock, MiniBlock, Task
from chainlab.protocols.bagchain.requester import TaskResult
from chainlab.protocols.errors import invalid, not_found, not_ready

HASH_BYTES = 32


@dataclass(frozen=True)
class Outcome:
    """A finished task: where it finished, its winner and the winner's base models (when known)."""

    result: TaskResult
    model_hashes: tuple[bytes, ...]


@dataclass(frozen=True)
class TaskState:
    """Where one of the requester's tasks stands."""

    task: Task
    state: str  # queued, training, validating, testing, done
    outcome: Outcome | None


def check_hash(value: bytes, what: str) -> bytes:
    """A 32-byte hash or node ID; INVALID_ARGUMENT naming `what` otherwise."""
    if len(value) != HASH_BYTES:
        raise invalid(f"bad_{what}", f"expected {HASH_BYTES} bytes, got {len(value)}")
    return value


def chain_from(node: FullNode, from_height: int) -> list[KeyBlock]:
    """The best chain's Key Blocks from a height on."""
    return [node.key_blocks[e.block_hash] for e in node.chain.main_chain()[from_height:]]


def block(node: FullNode, block_hash: bytes) -> MiniBlock | EnsembleBlock | KeyBlock:
    """Any block this node accepted or holds, by hash."""
    check_hash(block_hash, "hash")
    found = node.key_blocks.get(block_hash) or node.ensembles.get(block_hash) or node.miniblocks.get(block_hash)
    if found is None:
        raise not_found("unknown_block", block_hash.hex())
    return found


def height(node: FullNode, at: int) -> tuple[KeyBlock, list[MiniBlock], list[EnsembleBlock]]:
    """The best chain's Key Block at a height, and the MiniBlocks and Ensemble Blocks of its task there."""
    main = node.chain.main_chain()
    if not 0 < at < len(main):
        raise not_found("unknown_height", f"best chain has heights 1..{len(main) - 1}")
    kb = node.key_blocks[main[at].block_hash]
    mbs = sorted((mb for mb in node.miniblocks.values() if (mb.height, mb.task_id) == (at, kb.task_id)), key=_hash)
    ebs = sorted((eb for eb in node.ensembles.values() if (eb.height, eb.task_id) == (at, kb.task_id)), key=_hash)
    return kb, mbs, ebs


def _hash(block: MiniBlock | EnsembleBlock) -> bytes:
    return block.hash


def model(node: FullNode, model_hash: bytes) -> bytes:
    """A base model's weights that this node fetched and checked while validating."""
    found = node.models.get(check_hash(model_hash, "model_hash"))
    if found is None:
        raise not_found("unknown_model", model_hash.hex())
    return found


def task_result(node: FullNode, task_id: bytes) -> Outcome:
    """The Key Block on the best chain that finished a task, and its winning ensemble."""
    check_hash(task_id, "task_id")
    for entry in node.chain.main_chain()[1:]:
        kb = node.key_blocks[entry.block_hash]
        if kb.task_id == task_id:
            winner = node.ensembles.get(kb.ranking[0].ensemble_block) if kb.ranking else None
            hashes = tuple(node.miniblocks[h].model_hash for h in winner.miniblocks) if winner else ()
            result = TaskResult(task_id, kb.height, kb.hash, winner.hash if winner else None, kb.metric_best)
            return Outcome(result, hashes)
    if task_id in node.tasks:
        raise not_ready("task_not_finished", task_id.hex())
    raise not_found("unknown_task", task_id.hex())


def balance(node: FullNode, account: bytes) -> int:
    """An account's balance along the best chain (0 for accounts never paid)."""
    return node.balances().get(check_hash(account, "account"), 0)


def task_states(node: Requester, task_id: bytes = b"") -> list[TaskState]:
    """Every task of the requester (or the one named), with its state."""
    if task_id:
        check_hash(task_id, "task_id")
        if task_id not in node.tasks:
            raise not_found("unknown_task", task_id.hex())
    finished = {r.task_id: r for r in node.results()}
    released = {(r.task_id, r.kind) for r in node.released.values()}
    head = node.key_blocks[node.chain.tip.block_hash].task_queue[:1]
    states = []
    for task in sorted(node.tasks.values(), key=lambda t: t.sequence):
        if task_id and task.task_id != task_id:
            continue
        result = finished.get(task.task_id)
        if result is not None:
            members = node.winning_models(result) or []
            states.append(TaskState(task, "done", Outcome(result, tuple(m.model_hash for m in members))))
            continue
        if (task.task_id, DatasetKind.TEST) in released:
            state = "testing"
        elif (task.task_id, DatasetKind.VALIDATION) in released:
            state = "validating"
        else:
            state = "training" if task.task_id in head else "queued"
        states.append(TaskState(task, state, None))
    return states


def finished_task(node: Requester, task_id: bytes) -> tuple[TaskResult, list[MiniBlock]]:
    """A finished task's result and its winning ensemble's MiniBlocks, for predictions."""
    # An empty ID means "every task" to task_states: here it is a malformed request, refused by name.
    (state,) = task_states(node, check_hash(task_id, "task_id"))
    if state.outcome is None:
        raise not_ready("task_not_finished", f"{task_id.hex()} is {state.state}")
    result = state.outcome.result
    if result.winning_ensemble is None:
        raise not_ready("no_winning_ensemble", "no Ensemble Block qualified for this task")
    members = node.winning_models(result)
    if members is None:
        raise not_ready("ensemble_not_seen", "the winning Ensemble Block or its MiniBlocks have not arrived")
    return result, members
