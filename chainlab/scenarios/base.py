"""The protocol spec: everything protocol-specific that drivers, the launcher, the CLI, metrics and results need.

A protocol registers one ProtocolSpec (see registry.py). Nothing outside the protocol's own packages (its core
under chainlab/protocols/<name>, its spec under chainlab/scenarios/<name>, its gRPC adapter under
chainlab/live/adapters/<name>.py) may name it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar, Literal

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.identity import Identity
from chainlab.protocols.base import NodeStatus, Observation, ProtocolNode, RecordValue, WireCodec

if TYPE_CHECKING:
    from chainlab.scenarios.experiment import Experiment


@dataclass(frozen=True)
class NodeSlot:
    """A node's place in a deployment: its name (miner-0), role, index within the role, and ID."""

    name: str
    role: str
    index: int
    node_id: bytes


@dataclass
class Deployment:
    """A built network. Slot i is vertex i of the network graph in both drivers.

    data names every dataset; holdings says which of them each node holds from the start (by slot name), and
    private which one is its private data D_Mi. payload is what every service process needs besides the config to
    rebuild its node (BagChain: genesis and signed tasks); it travels in the network plan.
    """

    slots: list[NodeSlot]
    nodes: list[ProtocolNode]
    data: dict[str, Dataset]
    holdings: dict[str, tuple[str, ...]]
    private: dict[str, str]
    payload: dict[str, str] = field(default_factory=dict)

    def by_name(self) -> dict[str, ProtocolNode]:
        """Every node by its slot name."""
        return {slot.name: node for slot, node in zip(self.slots, self.nodes, strict=True)}

    def slot(self, name: str) -> NodeSlot:
        """The slot called name."""
        for slot in self.slots:
            if slot.name == name:
                return slot
        raise ValueError(f"no node {name!r} (known: {', '.join(s.name for s in self.slots)})")


def participant_slots(node_ids: Sequence[bytes]) -> list[NodeSlot]:
    """The peers of a protocol without roles (DFL, BFLC, LearningChain): miner-0..miner-(N-1), slot i holding
    node_ids[i]."""
    return [NodeSlot(f"miner-{i}", "miner", i, node_id) for i, node_id in enumerate(node_ids)]


def check_slot_identity(slot: NodeSlot, identity: Identity) -> Identity:
    """identity, once checked to be the key pair of slot's node ID (a plan and a config from different runs)."""
    if identity.node_id != slot.node_id:
        raise ValueError(f"{slot.name}: node ID does not match its key")
    return identity


@dataclass(frozen=True)
class MetricFamily:
    """A protocol's own Prometheus metric, declared as data (the live observer creates it)."""

    name: str  # chainlab_<protocol>_...
    kind: Literal["counter", "gauge", "histogram"]
    help: str
    labels: tuple[str, ...] = ()


@dataclass(frozen=True)
class MetricUpdate:
    """One change to a declared metric: inc (counter), set (gauge) or observe (histogram)."""

    name: str
    value: float
    labels: tuple[str, ...] = ()


FigureFormat = Literal["pct", "num", "count", "rounds", "seconds", "id", "range", "ratio"]


@dataclass(frozen=True)
class Figure:
    """One figure of a run as tables show it: where it is, its label and its format.

    path is dotted, into results.json with protocol_results merged in (run figures) or into one row (row figures).
    Formats: pct (0.92 -> 92.00%), num, count, rounds (as seconds where the live table has a round length),
    seconds, id (short hex), range (a list of fractions -> min~max %), ratio (path over `other`: used/generated).
    """

    label: str
    path: str
    format: FigureFormat = "num"
    other: str = ""  # ratio: the second figure's path
    compact: bool = True  # shown in the narrow live table
    full: bool = True  # shown in the full (simulation) table


@dataclass(frozen=True)
class Curve:
    """A run's figure over time as a line chart: x and each y are dotted paths to equal-length lists, or, with
    rows, keys of each mapping in that list of protocol_results (BFLC: its per-round rows)."""

    x: str
    x_label: str
    ys: tuple[Figure, ...]  # their label names the line; format pct plots percent
    title: str = ""
    rows: str = ""


@dataclass(frozen=True)
class ReportLayout:
    """How tables show a protocol's results: headline figures per run, and per-row figures of its rows."""

    headline: tuple[Figure, ...] = ()  # empty: every scalar of protocol_results, as it is named
    rows: str = ""  # the key of protocol_results holding one mapping per row (BagChain: heights)
    row_columns: tuple[Figure, ...] = ()
    plotted: tuple[str, ...] = ()  # the figures a sweep plots against its parameter (default: first two headline)
    curve: Curve | None = None  # results.png (and a sweep's curves.png, every point's first y) where given


@dataclass(frozen=True)
class Analysis:
    """A computed, not simulated, result of a protocol (a closed form, a Monte-Carlo check of its own code):
    rows for tables and JSON, run-level figures, and which row keys a plot draws (one line per y, per series)."""

    rows: list[dict[str, RecordValue]]
    summary: dict[str, RecordValue]
    x: str
    ys: tuple[str, ...]
    series: str = ""  # the row key that splits rows into lines (Fig. 3: the committee share)


class ProtocolSpec(ABC):
    """One protocol's plug: config keys, roles, codec, how nodes are built, when a run is done, its summary."""

    name: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]  # the start order of live services: who must listen before whom
    config_keys: ClassVar[frozenset[str]]  # the protocol's own top-level config keys
    codec: ClassVar[WireCodec]
    live_adapter: ClassVar[str | None] = None  # module with register() and read_view(): see chainlab.live.adapters
    metric_families: ClassVar[tuple[MetricFamily, ...]] = ()
    summary_data: ClassVar[tuple[str, ...]] = ()  # the named datasets summarise() reads (live: from storage)
    # What progress_total counts: the best tip's height, or rounds (protocols whose runs last a set time).
    progress_unit: ClassVar[Literal["height", "round"]] = "height"
    report: ClassVar[ReportLayout] = ReportLayout()
    analyses: ClassVar[tuple[str, ...]] = ()  # what an experiment's `analysis:` may name
    max_message_mb: ClassVar[float] = 1.0  # the largest message a live node accepts (weights travel via storage)
    behaviours: ClassVar[tuple[str, ...]] = ()  # misbehaviours a chaos `byzantine` action may switch a node to

    @abstractmethod
    def validate(self, exp: Experiment) -> None:
        """Check the protocol's keys and parameters; ValueError naming what is wrong."""

    @abstractmethod
    def build(self, exp: Experiment) -> Deployment:
        """Data, identities and nodes of the whole network (deterministic in exp.seed)."""

    @abstractmethod
    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """One node rebuilt in a service process from the plan's payload; it must equal build()'s."""

    @abstractmethod
    def progress_total(self, exp: Experiment) -> int:
        """The height (or round, by progress_unit) at which the run is done; progress bars count towards it."""

    @abstractmethod
    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Whether the live or simulated network has done what the experiment asked."""

    @abstractmethod
    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """The full node whose view of the chain the results are read from (the same node in sim and live)."""

    def observers(self, slots: Sequence[NodeSlot]) -> list[NodeSlot]:
        """Full nodes whose view results may be read from, best first: live reads the first that answers (a node
        may be down at the end). The observer alone by default."""
        return [self.observer(slots)]

    @abstractmethod
    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> object:
        """The summary's input read straight from node state (simulation): the observer's, or every node's
        (by slot name) where the protocol has no single view (the live adapter's read_view then asks each node)."""

    @abstractmethod
    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """protocol_results: the protocol's figures, from a view (sim_view, or the live adapter's) and named data."""

    def progress(self, height: int, round_: int) -> int:
        """How far a run is, in progress_unit, from the best tip's height and the current round."""
        return round_ if self.progress_unit == "round" else height

    def analyse(self, name: str, exp: Experiment) -> Analysis:
        """The analysis `name` (one of analyses) for exp; specs without analyses have none."""
        raise ValueError(f"protocol {self.name} has no analysis {name!r}")

    def warm_up(self, exp: Experiment, worker: Worker, held: Sequence[Dataset]) -> None:
        """Pay one-off costs (importing model code) before a live node joins the network; nothing by default."""
        return None

    def metric_updates(self, obs: Observation) -> Sequence[MetricUpdate]:
        """The protocol's metric changes for one record (pure); none by default."""
        return ()

    def phase_start(self, exp: Experiment, phase: int) -> int | None:
        """Rounds after a chain reaches height h - 1 at which phase `phase` of the work on height h begins (what a
        chaos `at: {height: h, phase: p}` waits for); None where the protocol has no such phase (the default)."""
        return None

    def byzantine(self, node: ProtocolNode, behaviour: str) -> ProtocolNode:
        """The node as it acts from now on with one of `behaviours` (a chaos `byzantine` action); none by default."""
        known = ", ".join(self.behaviours) or "none"
        raise ValueError(f"protocol {self.name} has no behaviour {behaviour!r} (known: {known})")


def participant_deployment(
    spec: ProtocolSpec,
    exp: Experiment,
    slots: list[NodeSlot],
    data: dict[str, Dataset],
    payload: dict[str, str],
    private: Callable[[int], str],
    held: Callable[[int], tuple[str, ...]] = lambda _: (),
) -> Deployment:
    """The deployment of spec's nodes on slots (each built by spec.node from payload): slot i's private data is
    data[private(i)] and it holds data[held(i)] from the start."""
    nodes = [spec.node(exp, payload, slot) for slot in slots]
    holdings = {slot.name: held(slot.index) for slot in slots}
    return Deployment(slots, nodes, data, holdings, {slot.name: private(slot.index) for slot in slots}, payload)
