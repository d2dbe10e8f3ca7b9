"""LearningChain (seed 003): DP gradients from pseudonymous holders, l-nearest aggregation by the PoW winner."""

from chainlab.protocols.learningchain.node import LearningChainNode
from chainlab.protocols.learningchain.params import LearningChainParams

__all__ = ["LearningChainNode", "LearningChainParams"]
