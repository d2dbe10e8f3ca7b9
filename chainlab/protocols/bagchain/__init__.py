"""BagChain (seed 000) as sans-IO state machines: requester, miner and non-mining full node."""

from chainlab.protocols.bagchain.fullnode import FullNode
from chainlab.protocols.bagchain.miner import Miner
from chainlab.protocols.bagchain.params import BagChainParams
from chainlab.protocols.bagchain.reasons import Reason
from chainlab.protocols.bagchain.requester import Requester, TaskResult

__all__ = ["BagChainParams", "FullNode", "Miner", "Reason", "Requester", "TaskResult"]
