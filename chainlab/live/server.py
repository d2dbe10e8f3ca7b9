"""gRPC server plumbing shared by every service: size limits, health, one error-mapping interceptor, SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from chainlab.live import metrics
from chainlab.live.errors import STATUS_OF, Refusal

log = logging.getLogger("chainlab.server")

# The transport's ceiling for node and sidecar traffic. Weights and datasets travel through storage in chunks;
# only protocols that carry weights in their messages (DFL's transactions and drafts) come near it, and their
# spec bounds them lower (ProtocolSpec.max_message_mb).
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024
# Storage streams objects in CHUNK_BYTES pieces, so none of its messages needs more than this.
STORAGE_MESSAGE_BYTES = 4 * 1024 * 1024
GRACE_SECONDS = 2.0


def channel_options(max_message_bytes: int = MAX_MESSAGE_BYTES) -> list[tuple[str, int]]:
    """Explicit message-size limits, the same for servers and clients."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def insecure_channel(address: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.aio.Channel:
    """A client channel to another chainlab service (loopback or pod network: no TLS in the testbed)."""
    return grpc.aio.insecure_channel(address, options=channel_options(max_message_bytes))


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Maps a Refusal to its status code, anything unexpected to INTERNAL; counts, times and logs every call."""

    def __init__(self, service: str) -> None:
        self.service = service

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        """Wrap the handler of one call."""
        handler = await continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._streaming(handler.unary_stream, method),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler

    def _unary(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Awaitable[Any]]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                return await behaviour(request, context)
            except Exception as exc:
                code = await self._abort(exc, method, context)
            finally:
                self._observe(method, code, started)

        return wrapper

    def _streaming(self, behaviour: Callable[..., Any], method: str) -> Callable[..., Any]:
        async def wrapper(request: Any, context: grpc.aio.ServicerContext) -> Any:
            started = time.perf_counter()
            code = grpc.StatusCode.OK
            try:
                async for item in behaviour(request, context):
                    yield item
            except Exception as exc:
                code = await self._abort(exc, method, context)
            finally:
                self._observe(method, code, started)

        return wrapper

    async def _abort(self, exc: Exception, method: str, context: grpc.aio.ServicerContext) -> grpc.StatusCode:
        if isinstance(exc, asyncio.CancelledError):
            raise exc
        if isinstance(exc, Refusal):
            code, reason, detail = STATUS_OF[exc.kind], exc.reason, str(exc)
            log.warning("refused %s", method, extra={"method": method, "code": code.name, "reason": reason})
        elif context.code() not in (None, grpc.StatusCode.OK):
            raise exc  # the handler aborted the call itself
        else:
            code, reason, detail = grpc.StatusCode.INTERNAL, "internal", f"internal error: {exc!r}"
            log.exception("handler %s failed", method, extra={"method": method})
        metrics.GRPC_REFUSALS.labels(self.service, method, code.name, reason).inc()
        await context.abort(code, detail)
        return code  # not reached: abort raises

    def _observe(self, method: str, code: grpc.StatusCode, started: float) -> None:
        metrics.GRPC_SECONDS.labels(self.service, method, code.name).observe(time.perf_counter() - started)


def new_server(service: str, max_message_bytes: int = MAX_MESSAGE_BYTES) -> grpc.aio.Server:
    """An asyncio gRPC server with the error interceptor and explicit size limits."""
    return grpc.aio.server(interceptors=[ErrorInterceptor(service)], options=channel_options(max_message_bytes))


def add_health(server: grpc.aio.Server) -> health.aio.HealthServicer:
    """Serve grpc.health.v1; mark_serving reports the services SERVING once they are ready."""
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    return servicer


async def mark_serving(servicer: health.aio.HealthServicer, services: Iterable[str]) -> None:
    """Report the server and its services as SERVING."""
    for name in ("", *services):
        await servicer.set(name, health_pb2.HealthCheckResponse.SERVING)


async def mark_stopping(servicer: health.aio.HealthServicer) -> None:
    """Report NOT_SERVING for every service while shutting down, so clients and probes look elsewhere."""
    await servicer.enter_graceful_shutdown()


def bind(server: grpc.aio.Server, address: str) -> int:
    """Listen on host:port (port 0: any free one); returns the port, or raises if it cannot bind."""
    port = int(server.add_insecure_port(address))
    if port == 0:
        raise OSError(f"cannot listen on {address}")
    return port


def stop_event_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT, so `await event.wait()` then a graceful stop replaces the default kill."""
    event = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, event.set)
    return event


class Running:
    """A started server: its bound port and health servicer."""

    def __init__(self, server: grpc.aio.Server, port: int, health_servicer: health.aio.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.health = health_servicer


@contextlib.asynccontextmanager
async def running_server(
    service: str,
    listen: str,
    register: Callable[[grpc.aio.Server], Iterable[str]],
    max_message_bytes: int = MAX_MESSAGE_BYTES,
) -> AsyncIterator[Running]:
    """Start a server with `register`'s servicers (it returns their full names) and health; stop it gracefully."""
    server = new_server(service, max_message_bytes)
    names = list(register(server))
    health_servicer = add_health(server)
    port = bind(server, listen)
    await server.start()
    await mark_serving(health_servicer, names)
    log.info("serving", extra={"listen": listen, "port": port, "services": names})
    try:
        yield Running(server, port, health_servicer)
    finally:
        await mark_stopping(health_servicer)
        await server.stop(GRACE_SECONDS)
        log.info("stopped", extra={"port": port})


def add_service_arguments(parser: argparse.ArgumentParser, *, default_listen: str | None = "127.0.0.1:0") -> None:
    """The flags every service takes; each defaults from a CHAINLAB_* environment variable."""
    env = os.environ.get
    parser.add_argument("--listen", default=env("CHAINLAB_LISTEN", default_listen), help="gRPC host:port (port 0: any)")
    parser.add_argument(
        "--metrics-port", type=int, default=int(env("CHAINLAB_METRICS_PORT", "0")), help="Prometheus port (0: any)"
    )
    parser.add_argument("--metrics-host", default=env("CHAINLAB_METRICS_HOST", "127.0.0.1"))
    parser.add_argument("--log-level", default=env("CHAINLAB_LOG_LEVEL", "INFO"))
