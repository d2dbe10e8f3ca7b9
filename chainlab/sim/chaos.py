"""The chaos scenario in virtual rounds: kill, restart, partition, heal, set-link and byzantine, deterministically.

A killed node stops receiving and acting: messages reaching it are lost, its timers and jobs die with it, and a
peer's fetch from it fails. Its relay stays (live, its sidecar outlives it). A restarted node is a new incarnation:
built again by `rebuild` (the spec's node from the deployment's payload), restored from the store the simulation
kept of what it persisted (Simulation.restored), and started; nothing addressed to the old incarnation reaches it.
Network actions go through the network model (a fully connected network becomes the equal complete mesh the
sidecars run, which can be cut).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import cast

from chainlab.network.graphs import from_edges
from chainlab.protocols.base import ProtocolNode, Timer
from chainlab.protocols.effects import FetchData, JobResult
from chainlab.scenarios.base import Deployment, ProtocolSpec
from chainlab.scenarios.chaos import (
    Byzantine,
    ChaosClock,
    Heal,
    Kill,
    Partition,
    Restart,
    SetLink,
    TimedAction,
    check_names,
)
from chainlab.scenarios.experiment import Experiment
from chainlab.sim.engine import Simulation, _Deliver, _Event, _Mining, _Result, _Serve
from chainlab.sim.network import FullyConnected, TopologyNetwork


@dataclass(frozen=True)
class _Wake:
    """A chaos action may be due this round."""


@dataclass(frozen=True)
class _Life:
    """An event for one incarnation of a node (a timer, a job result, a fetch it made)."""

    life: int
    event: _Event


NETWORK_ACTIONS = (Partition, Heal, SetLink)


def cuttable(exp: Experiment, n: int) -> TopologyNetwork:
    """The experiment's network as a mesh whose links can be cut and changed: a fully connected network is the
    complete graph with its constant delay, unlimited bandwidth and no loss (the sidecars' topology for it)."""
    config = exp.network
    spec = config.link_spec()
    graph = from_edges(n, config.graph_edges(n, exp.seed))
    for u, v in graph.edges:
        graph.edges[u, v].update(delay=spec.latency_rounds, bandwidth=spec.bandwidth_mb_per_round, loss=spec.loss)
    return TopologyNetwork(graph, seed=exp.seed)


@dataclass
class ChaosSimulation(Simulation):
    """A Simulation that runs a chaos scenario (see the module docstring)."""

    actions: Sequence[TimedAction] = ()
    names: Sequence[str] = ()  # slot names: node i is names[i]
    clock: ChaosClock | None = None
    rebuild: Callable[[int], ProtocolNode] | None = None  # node i's next incarnation
    byzantine: Callable[[ProtocolNode, str], ProtocolNode] | None = None
    down: set[int] = field(default_factory=set)
    _lives: list[int] = field(default_factory=list)
    _woken: set[int] = field(default_factory=set)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.nodes = list(self.nodes)
        self._lives = [0] * len(self.nodes)

    def run(self) -> int:
        """As Simulation.run, with the scenario's actions due at round 0 taken first."""
        self._chaos_step()
        return super().run()

    def _push(self, at: int, node: int, event: _Event) -> None:
        if isinstance(event, Timer | _Result | _Mining):
            event = _Life(self._lives[node], event)  # type: ignore[assignment]
        elif isinstance(event, _Serve):
            event = _Life(self._lives[event.client], event)  # type: ignore[assignment]
        super()._push(at, node, event)

    def _dispatch(self, i: int, event: _Event) -> None:
        wrapped: object = event
        if isinstance(wrapped, _Wake):
            self._chaos_step()
            return
        if isinstance(wrapped, _Life):
            inner = wrapped.event
            owner = inner.client if isinstance(inner, _Serve) else i
            if wrapped.life != self._lives[owner] or owner in self.down:
                return  # for an incarnation that is gone
            if isinstance(inner, _Result | _Mining) and (i, inner.job) in self._cancelled:
                return
            if isinstance(inner, _Serve) and i in self.down:
                failed: JobResult = False if isinstance(inner.effect, FetchData) else None
                self._push(self.now, inner.client, _Result(inner.effect.job, failed))
                return
            event = inner
        elif isinstance(event, _Deliver):
            self._deliver(i, event.sender, event.message)
            return
        super()._dispatch(i, event)  # a flood's deliveries come through _deliver
        self._chaos_step()

    def _deliver(self, i: int, sender: bytes, message: object) -> None:
        if i in self.down:
            return  # lost: nothing listens
        super()._deliver(i, sender, message)
        self._chaos_step()

    def report(self) -> list[dict[str, object]]:
        """results.json's `chaos` section, with each watched node's standing at the end."""
        return self.clock.report(self.heights()) if self.clock is not None else []

    def heights(self) -> dict[str, int]:
        """The height of every running node, by name."""
        return {self.names[i]: node.status().height for i, node in enumerate(self.nodes) if i not in self.down}

    def _chaos_step(self) -> None:
        """Take the actions due now, note catch-ups, and wake up when the next action is due."""
        clock = self.clock
        if clock is None or not (clock.pending or clock.watching()):
            return
        heights = self.heights()
        for timed in clock.due(self.now, heights):
            self.apply(timed)
            clock.took_effect(timed, self.now, heights)
            heights = self.heights()
        clock.observe(self.now, heights)
        upcoming = clock.next_round()
        if upcoming is not None and upcoming > self.now and upcoming not in self._woken:
            self._woken.add(upcoming)
            Simulation._push(self, upcoming, -1, _Wake())  # type: ignore[arg-type]

    def apply(self, timed: TimedAction) -> None:
        """Carry out one action now."""
        index = {name: i for i, name in enumerate(self.names)}
        match timed.action:
            case Kill(node):
                i = index[node]
                self.down.add(i)
                self._lives[i] += 1
            case Restart(node):
                i = index[node]
                self.down.discard(i)
                self._lives[i] += 1
                self._cancelled = {(n, job) for n, job in self._cancelled if n != i}  # job IDs start again
                assert self.rebuild is not None
                fresh = self.restored(i, self.rebuild(i))  # on what it persisted, where its protocol persists
                self.configure(fresh)
                cast(list[ProtocolNode], self.nodes)[i] = fresh
                self._step(i, fresh.start, self.now)
            case Byzantine(node, behaviour):
                i = index[node]
                assert self.byzantine is not None
                cast(list[ProtocolNode], self.nodes)[i] = self.byzantine(self.nodes[i], behaviour)
            case Partition(groups):
                self._mesh().cut([[index[n] for n in group] for group in groups])
            case Heal():
                self._mesh().heal()
            case SetLink(a, b, latency_rounds, bandwidth, loss, up):
                mesh = self._mesh()
                u, v = index[a], index[b]
                if not mesh.has_link(u, v):
                    raise ValueError(f"{timed.describe()}: {a} and {b} are not linked in this network")
                mesh.set_link(u, v, bandwidth=bandwidth, delay=latency_rounds, loss=loss, up=up)

    def _mesh(self) -> TopologyNetwork:
        if not isinstance(self.network, TopologyNetwork):
            raise TypeError("network actions need a cuttable network (chaos_simulation builds one)")
        return self.network


def chaos_simulation(
    base: Simulation, spec: ProtocolSpec, exp: Experiment, deployment: Deployment, actions: Sequence[TimedAction]
) -> ChaosSimulation:
    """The simulation `base` with the scenario: names checked, a cuttable network where the actions need one, and
    restarts rebuilt by the spec from the deployment's payload, then restored from the node's store."""
    names = [slot.name for slot in deployment.slots]
    check_names(actions, names)
    network = base.network
    if any(isinstance(t.action, NETWORK_ACTIONS) for t in actions) and isinstance(network, FullyConnected):
        network = cuttable(exp, len(names))
    observer = spec.observer(deployment.slots).name

    def rebuild(i: int) -> ProtocolNode:
        return spec.node(exp, deployment.payload, deployment.slots[i])

    return ChaosSimulation(
        nodes=base.nodes,
        codec=base.codec,
        network=network,
        worker=base.worker,
        datasets=base.datasets,
        private=base.private,
        work=base.work,
        max_rounds=base.max_rounds,
        durable=any(isinstance(t.action, Restart) for t in actions),  # a restarted node reads what it persisted
        pool=base.pool,
        actions=actions,
        names=names,
        clock=ChaosClock(actions, lambda phase: spec.phase_start(exp, phase), observer),
        rebuild=rebuild,
        byzantine=spec.byzantine,
    )
