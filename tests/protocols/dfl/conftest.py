"""Identities, parameters and helpers that drive DFL nodes synchronously, with opaque weight bytes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from chainlab.ledger.identity import Identity
from chainlab.protocols.dfl import DflNode, DflParams
from chainlab.protocols.dfl.messages import Receipt, Transaction, genesis_block
from chainlab.protocols.effects import Compute, Effect, InitModel, Record, Send
from chainlab.protocols.spec import ModelSpec

SPEC = ModelSpec("softmax", "{}")
GENESIS = genesis_block('{"family":"softmax"}')
LOCAL_TEST = b"\x01" * 32
IDS = [Identity.from_seed(f"dfl-test:{i}".encode()) for i in range(4)]
T = TypeVar("T")


def node(
    index: int = 0,
    neighbours: Sequence[int] = (1, 2),
    poison_model: bool = False,
    initial: bytes = b"",
    **params: object,
) -> DflNode:
    """Node `index` of IDS with the given neighbours (indices), w0 (b"": from the seed) and parameters."""
    return DflNode(
        IDS[index],
        DflParams(**params),  # type: ignore[arg-type]
        SPEC,
        GENESIS,
        tuple(IDS[i].node_id for i in neighbours),
        LOCAL_TEST,
        seed=7,
        attacker=poison_model,
        poison_model=poison_model,
        initial=initial,
    )


def tx(generator: int = 1, now: int = 0, model: bytes = b"model", ttl: int = 1, expire: int = 60) -> Transaction:
    """A signed transaction by IDS[generator]."""
    identity = IDS[generator]
    return Transaction(identity.node_id, identity.public_key, now, now + expire, model, ttl).signed_by(identity)


def receipt(creator: int, on: Transaction, now: int = 0, accuracy: str = "0.5000", at_ttl: int = 0) -> Receipt:
    """A signed receipt by IDS[creator] on a transaction."""
    identity = IDS[creator]
    return Receipt(identity.node_id, identity.public_key, now, at_ttl, accuracy, on.digest).signed_by(identity)


def of_type(effects: Sequence[Effect], kind: type[T]) -> list[T]:
    """The effects of one type."""
    return [e for e in effects if isinstance(e, kind)]


def computes(effects: Sequence[Effect], op: type[T]) -> list[tuple[int, T]]:
    """(job, op) of every Compute of one op type."""
    return [(e.job, e.op) for e in effects if isinstance(e, Compute) and isinstance(e.op, op)]


def sends(effects: Sequence[Effect]) -> list[Send]:
    """Every Send."""
    return of_type(effects, Send)


def rejections(effects: Sequence[Effect]) -> list[str]:
    """kind.reason of every rejection record."""
    return [f"{e.data['kind']}.{e.data['reason']}" for e in of_type(effects, Record) if e.event == "rejected"]


def started(n: DflNode, weights: bytes = b"w0") -> DflNode:
    """A started node whose initial model is `weights`."""
    effects = n.start(0)
    ((job, _),) = computes(effects, InitModel)
    n.on_result(job, weights, 0)
    return n
