"""A tiny HTTP server on 127.0.0.1 that answers the Kubernetes API calls of a test from recorded responses, so
the real `kubernetes` client (URL building, query parameters, serialisation, deserialisation, errors) runs
end to end; every request is kept for assertions."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kubernetes import client

from chainlab.k8s.api import Kube

RECORDED = Path(__file__).parent / "recorded"


@dataclass(frozen=True)
class Reply:
    """One recorded response."""

    status: int
    body: bytes
    content_type: str = "application/json"


def recorded(name: str, status: int = 200) -> Reply:
    """A reply whose body is tests/k8s/recorded/<name>; .txt files are text/plain, like pod logs and /metrics."""
    body = (RECORDED / name).read_bytes()
    if name.startswith("metrics_"):
        return Reply(status, body, "text/plain; version=0.0.4; charset=utf-8")
    return Reply(status, body, "text/plain" if name.endswith(".txt") else "application/json")


@dataclass(frozen=True)
class Seen:
    """One request the client made."""

    method: str
    raw_path: str  # as sent, percent-encoding included
    path: str  # decoded
    query: dict[str, list[str]]
    body: Any
    authorization: str | None = None


@dataclass
class FakeApiServer:
    """Routes (method, decoded path) to replies; a route with several replies gives them in turn, then repeats
    its last. Anything else is answered 404 with a Status object, as the API server does."""

    routes: dict[tuple[str, str], list[Reply]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0

    def add(self, method: str, path: str, *replies: Reply) -> None:
        """Answer method+path with replies, in order."""
        self.routes[(method, path)] = list(replies)

    def answer(self, method: str, raw: str, body: bytes, authorization: str | None = None) -> Reply:
        """Record the request and pick its reply."""
        parts = urlsplit(raw)
        decoded = json.loads(body) if body else None
        self.seen.append(Seen(method, parts.path, unquote(parts.path), parse_qs(parts.query), decoded, authorization))
        queue = self.routes.get((method, unquote(parts.path)))
        if not queue:
            status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": f"the server could not find the requested resource ({method} {parts.path})",
                      "reason": "NotFound", "details": {}, "code": 404}  # fmt: skip
            return Reply(404, json.dumps(status).encode())
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def requests(self, method: str, path: str) -> list[Seen]:
        """The requests made to method+path (decoded)."""
        return [s for s in self.seen if s.method == method and s.path == path]

    @contextmanager
    def running(self) -> Iterator[Kube]:
        """Serve on 127.0.0.1 and yield the API groups of a real ApiClient pointed at it."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _reply(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                reply = fake.answer(self.command, self.path, body, self.headers.get("Authorization"))
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.content_type)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)

            do_GET = do_POST = do_DELETE = do_PATCH = do_PUT = _reply

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: pytest shows the assertions, not an access log."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        configuration = client.Configuration()
        configuration.host = f"http://127.0.0.1:{self.port}"
        try:
            with client.ApiClient(configuration) as api_client:
                yield Kube.of(api_client)
        finally:
            server.shutdown()
            server.server_close()
            thread.join()
