"""`chainlab-storage`: IPFS behind gRPC, with Kubo embedded (default) or a Kubo daemon's HTTP RPC (--ipfs-api)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence

from chainlab.live.ipfs import EmbeddedKubo, IpfsBackend, KuboRpc, StorageError
from chainlab.live.logs import configure_logging
from chainlab.live.metrics import serve_metrics
from chainlab.live.server import STORAGE_MESSAGE_BYTES, add_service_arguments, running_server, stop_event_on_signals
from services.storage.servicer import DEFAULT_MAX_OBJECT_BYTES, StorageServicer, registrar

SERVICE = "storage"
log = logging.getLogger("chainlab.storage")


def build_parser() -> argparse.ArgumentParser:
    """The service's flags; each defaults from a CHAINLAB_* environment variable."""
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="chainlab-storage", description=__doc__)
    add_service_arguments(parser)
    parser.add_argument(
        "--repo", default=env("CHAINLAB_STORAGE_REPO"), help="embedded Kubo repo (default: a temp dir, removed at exit)"
    )
    parser.add_argument(
        "--ipfs-api",
        default=env("CHAINLAB_IPFS_API"),
        help="use a Kubo daemon's HTTP RPC at this multiaddr (e.g. /ip4/127.0.0.1/tcp/5001/http) instead of embedding",
    )
    parser.add_argument(
        "--max-object-bytes",
        type=int,
        default=int(env("CHAINLAB_MAX_OBJECT_BYTES", str(DEFAULT_MAX_OBJECT_BYTES))),
        help="largest object Put accepts",
    )
    return parser


@contextlib.contextmanager
def open_backend(args: argparse.Namespace) -> Iterator[IpfsBackend]:
    """The backend the flags choose, closed (and a temporary repo removed) on exit."""
    backend: IpfsBackend
    with contextlib.ExitStack() as stack:
        if args.ipfs_api:
            backend = KuboRpc(args.ipfs_api)
        else:
            repo = args.repo or stack.enter_context(tempfile.TemporaryDirectory(prefix="chainlab-ipfs-repo-"))
            backend = EmbeddedKubo(repo)
        try:
            yield backend
        finally:
            backend.close()


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGTERM or SIGINT: stop taking calls, finish in-flight ones, then close the backend."""
    metrics_port = serve_metrics(args.metrics_port, args.metrics_host)
    with open_backend(args) as backend:
        # Embedded Kubo's Go runtime claims SIGTERM and SIGINT when it loads; take them back after it has.
        stop = stop_event_on_signals()
        servicer = StorageServicer(backend, max_object_bytes=args.max_object_bytes)
        async with running_server(SERVICE, args.listen, registrar(servicer), STORAGE_MESSAGE_BYTES) as running:
            log.info(
                "ready",
                extra={"port": running.port, "metrics_port": metrics_port, "backend": backend.name},
            )
            await stop.wait()
            log.info("stopping")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point `chainlab-storage`."""
    args = build_parser().parse_args(argv)
    if args.max_object_bytes <= 0:
        print("--max-object-bytes must be positive", file=sys.stderr)
        return 2
    configure_logging(SERVICE, args.log_level)
    try:
        asyncio.run(serve(args))
    except StorageError as exc:
        log.error("cannot start", extra={"error": str(exc)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
