"""The seam between a protocol core and its drivers: the node interface, wire codec, statuses and records.

Drivers (sim, live), the CLI, metrics and results type against these and never import a protocol package.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar, Protocol, runtime_checkable

from chainlab.protocols.effects import Effect, JobResult, Persist

RecordValue = str | int | float | bool | None
"""What a record, and so a log line or a metric label, may carry."""


class Timer:
    """Base of every protocol's timers: each protocol subclasses it with frozen dataclasses.

    A driver only stores a timer and hands it back; it never looks inside.
    """


@dataclass(frozen=True)
class DataRequest:
    """A neutral request for the dataset whose commitment (Hash(D)) is given, from a node that holds it."""

    commitment: bytes


@dataclass(frozen=True)
class DataGrant:
    """An answer to DataRequest: serve the dataset the driver holds for this node under this commitment."""

    commitment: bytes


Answer = bytes | DataGrant | None
"""on_request's answer: content to serve, a grant to serve a held dataset, or None (refused or not held)."""


@dataclass(frozen=True)
class NodeStatus:
    """What any node says of itself: for progress bars, health, "is the run done" and tip agreement."""

    role: str
    height: int  # of the node's best chain
    tip: bytes  # the hash of the best chain's head
    forks: int = 0  # blocks this node accepted that are off its best chain
    votes: bool = True  # whether its tip counts when drivers ask if the network agrees (a light client's does not)
    done: bool = False  # the node has done all the experiment asked of it (protocols whose runs end by node)
    syncing: bool = False  # behind its peers and catching up: health says NOT_SERVING, queries "not ready"


@dataclass(frozen=True)
class Observation:
    """A Record effect with when (round) and where (node index in the deployment) it happened."""

    round: int
    node: int
    event: str
    data: Mapping[str, RecordValue] = field(default_factory=dict)


class ProtocolNode(Protocol):
    """A sans-IO protocol node. Drivers feed it inputs one at a time and carry out the effects it returns.

    Contract: every method returns at once, touches no clock, socket, file or thread, and is deterministic
    given its inputs. Job IDs are chosen by the node and unique per node; the driver reports each job's result
    once through on_result (never for a cancelled job). Timers come back through on_timer as the same object.
    """

    role: ClassVar[str]

    @property
    def node_id(self) -> bytes:
        """This node's ID (the hash of its public key)."""
        ...

    def start(self, now: int) -> list[Effect]:
        """Begin taking part; the first effects."""
        ...

    def on_message(self, sender: bytes, message: object, now: int) -> list[Effect]:
        """A message decoded by the protocol's codec arrived from a peer."""
        ...

    def on_timer(self, timer: Timer, now: int) -> list[Effect]:
        """A timer started with StartTimer fired."""
        ...

    def on_result(self, job: int, result: JobResult, now: int) -> list[Effect]:
        """A job (Compute, Mine, Request, FetchData) finished."""
        ...

    def on_request(self, sender: bytes, request: object, now: int) -> Answer:
        """A peer's point-to-point request (a protocol request or a DataRequest); changes no state."""
        ...

    def status(self) -> NodeStatus:
        """Role, height, tip."""
        ...


@runtime_checkable
class Restorable(Protocol):
    """A node that persists its state through Persist effects and can be rebuilt from them.

    Drivers call restore() on a freshly built node, before start(), with every record its store holds, in the
    order written. Nodes of protocols that persist nothing are not Restorable: a restart rebuilds them fresh.
    """

    persisting: bool
    """Whether the node emits Persist effects (True when built). A driver that keeps none (a simulation in which
    nothing restarts) sets it False before start(), sparing the node building records nobody reads: at 1,000
    miners they are over half of all effects."""

    def restore(self, records: Iterable[Persist]) -> None:
        """Take back the state the records describe (the node's own earlier decisions); no effects."""
        ...


@runtime_checkable
class Recorder(Protocol):
    """A node that can leave out the Record effects its driver does not keep."""

    kept_events: frozenset[str] | None
    """The Record events the driver keeps (None when built: all). A driver that keeps a few sets it before start(),
    and the node then builds no other Record: at 1,000 miners every node records a verdict on every block, millions
    of records that a simulation's results never read."""


class DecodeError(ValueError):
    """Bytes from a peer that do not form a message or request of the protocol."""


class WireCodec(Protocol):
    """Messages and requests to bytes and back. decode_* raise DecodeError on anything malformed."""

    def encode_message(self, message: object) -> bytes:
        """Gossip bytes of a message."""
        ...

    def decode_message(self, data: bytes) -> object:
        """A message from gossip bytes."""
        ...

    def encode_request(self, request: object) -> bytes:
        """Bytes of a point-to-point request."""
        ...

    def decode_request(self, data: bytes) -> object:
        """A request from bytes."""
        ...


def tips_agree(statuses: Sequence[NodeStatus]) -> bool:
    """Whether every voting node reports the same tip."""
    return len({s.tip for s in statuses if s.votes}) <= 1
