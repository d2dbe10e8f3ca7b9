"""DFL (seed 001): gossip "partial consensus" with reputation-weighted FedAvg and per-node chains."""

from chainlab.protocols.dfl.node import DflNode
from chainlab.protocols.dfl.params import DflParams

__all__ = ["DflNode", "DflParams"]
