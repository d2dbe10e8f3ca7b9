"""A Requester service that does no work, on the same plumbing as the real one: the baseline of `bench-load`.

running_server (the one ErrorInterceptor, health, the same channel options and size limits) serves a Requester whose
TaskStatus reports one finished task and whose Predict answers an empty PredictReply at once, so that a locust run
against it measures the gRPC stack and the load generator alone. Run: python -m chainlab.live.noop_requester.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from collections.abc import Sequence

import grpc

from chainlab.live.server import running_server, stop_event_on_signals
from chainlab.proto.v1 import queries_pb2, queries_pb2_grpc

SERVICE = "requester"
NOOP_TASK_ID = bytes(32)  # the one task the no-op requester reports as done


class NoopRequester(queries_pb2_grpc.RequesterServicer):
    """TaskStatus: one done task; Predict: an empty reply; SubmitTask: UNIMPLEMENTED (it takes no tasks)."""

    async def SubmitTask(
        self, request: queries_pb2.SubmitTaskRequest, context: grpc.aio.ServicerContext
    ) -> queries_pb2.SubmitTaskReply:
        """Refused: the no-op requester runs no network."""
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "the no-op requester takes no tasks")
        raise AssertionError("abort raises")

    async def TaskStatus(
        self, request: queries_pb2.TaskStatusRequest, context: grpc.aio.ServicerContext
    ) -> queries_pb2.TaskStatusReply:
        """One finished task, so that load generators predict with it."""
        return queries_pb2.TaskStatusReply(tasks=[queries_pb2.TaskState(task_id=NOOP_TASK_ID, state="done")])

    async def Predict(
        self, request: queries_pb2.PredictRequest, context: grpc.aio.ServicerContext
    ) -> queries_pb2.PredictReply:
        """Nothing predicted, at once."""
        return queries_pb2.PredictReply()


def register(server: grpc.aio.Server) -> list[str]:
    """The no-op Requester."""
    queries_pb2_grpc.add_RequesterServicer_to_server(NoopRequester(), server)
    return ["chainlab.v1.Requester"]


async def serve(listen: str) -> None:
    """Serve until SIGTERM or SIGINT."""
    stop = stop_event_on_signals()
    async with running_server(SERVICE, listen, register):
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--listen", default="127.0.0.1:0", help="gRPC host:port")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    asyncio.run(serve(args.listen))


if __name__ == "__main__":
    main()
