"""BFLC (seed 002): committee consensus for federated learning, with the Basic FL and CwMed baselines."""

from chainlab.protocols.bflc.node import BflcNode
from chainlab.protocols.bflc.params import BflcParams

__all__ = ["BflcNode", "BflcParams"]
