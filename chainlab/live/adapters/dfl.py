"""DFL's gRPC adapter: no services of its own; the results view asks every node for its report.

A node answers a ReportRequest through the Peer service's Serve like any point-to-point request: the driver puts
the encoded report in storage and answers its address, which this reader then fetches.
"""

from __future__ import annotations

import grpc

from chainlab.ledger.encoding import EncodingError
from chainlab.live.adapters import ask
from chainlab.live.driver import LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.storage_client import StorageClient
from chainlab.protocols.dfl.messages import NodeReport, ReportRequest
from chainlab.protocols.dfl.wire import CODEC
from chainlab.scenarios.dfl.summary import DflView


def register(server: grpc.aio.Server, live: LiveNode) -> list[str]:
    """DFL adds no servicers: reports travel through the Peer service every node has."""
    return []


async def read_view(plan: NetworkPlan, observer: NodeEntry, storage: StorageClient) -> DflView:
    """Every node's report, fetched through its Peer.Serve and read from storage; a node that cannot answer is
    left out (its accuracy is then missing from the summary)."""
    reports: dict[str, NodeReport] = {}
    for entry in plan.nodes:
        report = await _report(entry, storage)
        if report is not None:
            reports[entry.name] = report
    return DflView(reports)


async def _report(entry: NodeEntry, storage: StorageClient) -> NodeReport | None:
    data = await ask(entry, storage, CODEC.encode_request(ReportRequest()))
    if data is None:
        return None
    try:
        report = NodeReport.decode(data)
    except EncodingError:
        return None
    # The report must be the node's own: a mixed-up address would credit one node's model to another.
    return report if report.node_id == bytes.fromhex(entry.node_id) else None
