"""DFL's gRPC adapter: no services of its own; the results view asks every node for its report.

A node answers a ReportRequest through the Peer service's Serve like any point-to-point request: the driver puts
the encoded report in storage and answers its address, which this reader then fetches.
"""

from __future__ import annotations

import grpc

from chainlab.ledger.encoding import EncodingError
from chainlab.live.driver import FETCH_REQUEST, LiveNode
from chainlab.live.plan import NetworkPlan, NodeEntry
from chainlab.live.server import insecure_channel
from chainlab.live.storage_client import StorageClient
from chainlab.proto.v1 import netem_pb2, node_pb2_grpc
from chainlab.protocols.dfl.messages import NodeReport, ReportRequest
from chainlab.protocols.dfl.wire import CODEC
from chainlab.scenarios.dfl.summary import DflView

CALL_TIMEOUT_SECONDS = 30.0


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
    payload = CODEC.encode_request(ReportRequest())
    target = bytes.fromhex(entry.node_id)
    request = netem_pb2.FetchRequest(origin=b"", target=target, kind=FETCH_REQUEST, payload=payload)
    async with insecure_channel(entry.listen) as channel:
        try:
            reply = await node_pb2_grpc.PeerStub(channel).Serve(request, timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError:
            return None
    if not reply.found:
        return None
    try:
        report = NodeReport.decode(await storage.get(reply.answer.decode("ascii")))
    except (EncodingError, UnicodeDecodeError, grpc.aio.AioRpcError):
        return None
    # The report must be the node's own: a mixed-up address would credit one node's model to another.
    return report if report.node_id == target else None
