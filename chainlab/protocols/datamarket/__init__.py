"""Seed 004: a data marketplace with DRT's Deposit, Refund and Take rules, a PoA sealer and an on-chain perceptron."""

from chainlab.protocols.datamarket.node import ContributorNode, Genesis, MarketNode, OwnerNode, SealerNode
from chainlab.protocols.datamarket.params import AgentParams, MarketParams

__all__ = ["AgentParams", "ContributorNode", "Genesis", "MarketNode", "MarketParams", "OwnerNode", "SealerNode"]
