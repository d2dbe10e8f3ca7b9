"""The toy chain's ProtocolSpec, registered by name from tests (CHAINLAB_PROTOCOLS or registry.register)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from chainlab.learning.datasets import Dataset
from chainlab.learning.worker import Worker
from chainlab.ledger.hashing import sha256
from chainlab.protocols.base import NodeStatus, ProtocolNode, tips_agree
from chainlab.scenarios.base import Deployment, NodeSlot, ProtocolSpec
from chainlab.scenarios.experiment import Experiment
from tests.toyproto.node import ToyCodec, ToyMiner

TARGET = 2**250  # one hash in 64 meets it


class ToySpec(ProtocolSpec):
    """Miners only; done when every miner's chain holds `blocks` blocks and they agree on the tip."""

    name = "toychain"
    roles = ("miner",)
    config_keys = frozenset({"miners", "blocks"})
    codec = ToyCodec()

    def validate(self, exp: Experiment) -> None:
        """miners >= 1 and blocks >= 1."""
        for key in ("miners", "blocks"):
            value = exp.get(key, 1)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        if exp.protocol_params:
            raise ValueError(f"unknown protocol parameter(s): {', '.join(exp.protocol_params)}")

    def build(self, exp: Experiment) -> Deployment:
        """miner-0 .. miner-(N-1), no data."""
        slots = [self._slot(exp, i) for i in range(int(exp.get("miners", 1)))]
        nodes = [self.node(exp, {}, slot) for slot in slots]
        return Deployment(slots, nodes, {}, {}, {})

    def _slot(self, exp: Experiment, index: int) -> NodeSlot:
        return NodeSlot(f"miner-{index}", "miner", index, sha256(f"toy:{exp.seed}:{index}".encode()))

    def node(self, exp: Experiment, payload: Mapping[str, str], slot: NodeSlot) -> ProtocolNode:
        """A ToyMiner for the slot."""
        if slot.node_id != self._slot(exp, slot.index).node_id:
            raise ValueError(f"{slot.name}: node ID does not match")
        return ToyMiner(slot.node_id, TARGET, int(exp.get("blocks", 1)))

    def progress_total(self, exp: Experiment) -> int:
        """The chain's goal length."""
        return int(exp.get("blocks", 1))

    def finished(self, exp: Experiment, statuses: Sequence[NodeStatus]) -> bool:
        """Every miner at the goal, on one tip."""
        return bool(statuses) and all(s.height >= self.progress_total(exp) for s in statuses) and tips_agree(statuses)

    def observer(self, slots: Sequence[NodeSlot]) -> NodeSlot:
        """miner-0."""
        return slots[0]

    def sim_view(self, observer: ProtocolNode, nodes: Mapping[str, ProtocolNode]) -> NodeStatus:
        """The observer's status."""
        return observer.status()

    def summarise(
        self, exp: Experiment, view: object, data: Mapping[str, Dataset], worker: Worker
    ) -> dict[str, object]:
        """The observer's chain length and tip."""
        if not isinstance(view, NodeStatus):
            raise TypeError(f"expected a NodeStatus, got {type(view).__name__}")
        return {"height": view.height, "tip": view.tip.hex()}


SPEC = ToySpec()
