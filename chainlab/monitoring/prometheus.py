"""Run the Debian `prometheus` binary for one run on loopback, feed it targets, and query its HTTP API."""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO

import requests
import yaml

DEPLOY_DIR: Path = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
TEMPLATE = DEPLOY_DIR / "prometheus.yml"
RULES_GLOB = "rules/*.yml"
JOB_NAME = "chainlab"
TARGETS_FILE = "chainlab.json"
STOP_GRACE_SECONDS = 10.0
INSTALL_HINT = "install it with `make install-monitoring` (apt-get install prometheus)"


class PrometheusError(RuntimeError):
    """The Prometheus process or its HTTP API failed."""


@dataclass(frozen=True)
class ScrapeTarget:
    """One /metrics endpoint ("127.0.0.1:PORT") and its target labels (service, protocol, role, node, run)."""

    address: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Sample:
    """One instant-vector element: its labels and value."""

    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class Series:
    """One range-vector element: its labels and (unix time, value) points."""

    labels: dict[str, str]
    points: list[tuple[float, float]]


def duration(seconds: float) -> str:
    """A Prometheus duration string for a number of seconds, to the millisecond ("1s", "250ms")."""
    millis = max(1, round(seconds * 1000))
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on host now (the binary is told the number: it cannot report a port 0 back)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def render_config(targets_dir: Path, scrape_interval_seconds: float, template: Path = TEMPLATE) -> dict[str, object]:
    """The template config for one run: absolute rule paths, the run's file_sd glob and intervals."""
    config = yaml.safe_load(template.read_text())
    if not isinstance(config, dict):
        raise PrometheusError(f"{template} is not a YAML mapping")
    interval = duration(scrape_interval_seconds)
    global_section = dict(config.get("global") or {})
    global_section["scrape_interval"] = interval
    global_section["evaluation_interval"] = interval
    # A scrape may take at most one interval (Prometheus refuses a timeout longer than the interval).
    global_section["scrape_timeout"] = interval
    config["global"] = global_section
    config["rule_files"] = [str(template.parent / rule) for rule in config.get("rule_files") or [RULES_GLOB]]
    jobs = [job for job in config.get("scrape_configs") or [] if job.get("job_name") == JOB_NAME]
    if not jobs:
        raise PrometheusError(f"{template} has no scrape job {JOB_NAME!r}")
    for job in jobs:
        job.pop("scrape_interval", None)
        job.pop("scrape_timeout", None)
        for sd in job.get("file_sd_configs") or []:
            sd["files"] = [str(targets_dir / "*.json")]
    return config


def targets_document(targets: Sequence[ScrapeTarget]) -> list[dict[str, object]]:
    """The file_sd JSON document for targets: one group per target, since each has its own labels."""
    return [{"targets": [t.address], "labels": dict(t.labels)} for t in targets]


def write_atomically(path: Path, text: str) -> None:
    """Replace path's content in one step, so a reader (file_sd's watcher) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")  # not *.json: the file_sd glob must not match it
    temporary.write_text(text)
    os.replace(temporary, path)


class PrometheusServer:
    """A Debian `prometheus` child process on loopback for one run (config, TSDB and log in workdir)."""

    def __init__(
        self,
        workdir: Path,
        *,
        port: int = 0,
        scrape_interval_seconds: float = 1.0,
        binary: str = "prometheus",
    ) -> None:
        self.workdir = Path(workdir).resolve()  # the server runs in it: relative paths would resolve twice
        self.port = port
        self.scrape_interval_seconds = scrape_interval_seconds
        self.binary = binary
        self._targets: list[ScrapeTarget] = []
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._url: str | None = None

    @property
    def config_path(self) -> Path:
        """The rendered config this run's server loads."""
        return self.workdir / "prometheus.yml"

    @property
    def log_path(self) -> Path:
        """Where the server's own log goes."""
        return self.workdir / "prometheus.log"

    @property
    def targets_path(self) -> Path:
        """The file_sd file the server watches."""
        return self.workdir / "targets" / TARGETS_FILE

    @property
    def url(self) -> str:
        """The base URL of the running server's HTTP API."""
        if self._url is None:
            raise PrometheusError("Prometheus is not running: call start() first")
        return self._url

    @property
    def pid(self) -> int | None:
        """The server process's ID while it runs."""
        return self._process.pid if self._process is not None and self._process.poll() is None else None

    def set_targets(self, targets: Sequence[ScrapeTarget]) -> None:
        """Replace the scrape targets (before or after start: file_sd picks changes up within its refresh)."""
        self._targets = list(targets)
        write_atomically(self.targets_path, json.dumps(targets_document(self._targets), indent=2) + "\n")

    def add_target(self, target: ScrapeTarget) -> None:
        """Scrape one more target."""
        self.set_targets([*self._targets, target])

    def write_config(self) -> Path:
        """Write the run's config (and an empty targets file if none yet); returns its path."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        if not self.targets_path.exists():
            self.set_targets(self._targets)
        config = render_config(self.targets_path.parent, self.scrape_interval_seconds)
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        return self.config_path

    def start(self, timeout_seconds: float = 30.0) -> str:
        """Start the binary, wait until /-/ready answers, and return the base URL."""
        if self._process is not None:
            return self.url
        executable = shutil.which(self.binary)
        if executable is None:
            raise PrometheusError(f"the Prometheus binary {self.binary!r} is not on PATH: {INSTALL_HINT}")
        config = self.write_config()
        port = self.port or free_port()
        address = f"127.0.0.1:{port}"
        args = [
            executable,
            f"--config.file={config}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address={address}",
            "--log.level=info",
        ]
        self._log = self.log_path.open("ab")
        self._process = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, cwd=self.workdir)
        self._url = f"http://{address}"
        try:
            self._wait_ready(timeout_seconds)
        except PrometheusError:
            self.stop()
            raise
        self.port = port
        return self._url

    def _wait_ready(self, timeout_seconds: float) -> None:
        assert self._process is not None and self._url is not None
        deadline = time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            code = self._process.poll()
            if code is not None:
                raise PrometheusError(f"prometheus exited with code {code} while starting; {self._log_tail()}")
            with contextlib.suppress(requests.RequestException):
                if requests.get(f"{self._url}/-/ready", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.1)
        raise PrometheusError(f"prometheus not ready at {self._url} after {timeout_seconds:.0f} s; {self._log_tail()}")

    def _log_tail(self, chars: int = 2000) -> str:
        text = self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""
        return f"see {self.log_path}:\n{text}"

    def stop(self) -> None:
        """SIGTERM, wait up to a grace period, then kill."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        self._url = None

    def __enter__(self) -> PrometheusServer:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _float(value: object) -> float:
    # The API sends sample values as strings, including "NaN", "+Inf" and "-Inf", which float() reads.
    return float(str(value))


def _labels(raw: object) -> dict[str, str]:
    return {str(k): str(v) for k, v in raw.items()} if isinstance(raw, dict) else {}


class PrometheusClient:
    """The Prometheus HTTP API (v1) over `requests`."""

    def __init__(self, url: str, timeout_seconds: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout_seconds = timeout_seconds
        self.session = requests.Session()

    def _get(self, path: str, params: Mapping[str, str] | None = None, what: str = "") -> object:
        """GET an API path and return its `data`; a clear error (naming `what`) on any failure."""
        label = what or path
        try:
            response = self.session.get(f"{self.url}{path}", params=params, timeout=self.timeout_seconds)
        except requests.RequestException as exc:
            raise PrometheusError(f"Prometheus at {self.url} unreachable for {label}: {exc}") from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise PrometheusError(f"Prometheus answered {response.status_code} without JSON for {label}") from exc
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error", "?") if isinstance(body, dict) else body
            kind = body.get("errorType", "error") if isinstance(body, dict) else "error"
            raise PrometheusError(f"Prometheus {kind} for {label}: {error}")
        return body.get("data")

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """Evaluate an instant query (now, or at a unix time); scalars come back as one unlabelled sample."""
        params = {"query": expr} | ({"time": repr(at)} if at is not None else {})
        data = self._get("/api/v1/query", params, what=f"query {expr!r}")
        if not isinstance(data, dict):
            raise PrometheusError(f"unexpected answer to query {expr!r}: {data!r}")
        result = data.get("result")
        if data.get("resultType") in ("scalar", "string") and isinstance(result, list):
            return [Sample({}, _float(result[1]))]
        if not isinstance(result, list):
            raise PrometheusError(f"unexpected answer to query {expr!r}: {data!r}")
        return [Sample(_labels(item.get("metric")), _float(item["value"][1])) for item in result]

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        """Evaluate a range query from start to end (unix times) every step seconds."""
        params = {"query": expr, "start": repr(start), "end": repr(end), "step": repr(step)}
        data = self._get("/api/v1/query_range", params, what=f"range query {expr!r}")
        result = data.get("result") if isinstance(data, dict) else None
        if not isinstance(result, list):
            raise PrometheusError(f"unexpected answer to range query {expr!r}: {data!r}")
        return [
            Series(_labels(item.get("metric")), [(float(t), _float(v)) for t, v in item.get("values", [])])
            for item in result
        ]

    def targets(self) -> list[dict[str, object]]:
        """The active scrape targets, as the API reports them (labels, health, lastError, ...)."""
        data = self._get("/api/v1/targets", {"state": "active"})
        active = data.get("activeTargets") if isinstance(data, dict) else None
        return [dict(t) for t in active] if isinstance(active, list) else []

    def wait_for_targets(self, count: int, timeout_seconds: float) -> None:
        """Block until at least `count` targets are up; TimeoutError naming their states otherwise."""
        deadline = time.monotonic() + timeout_seconds
        states: list[str] = []
        while True:
            targets = self.targets()
            up = sum(1 for t in targets if t.get("health") == "up")
            if up >= count:
                return
            states = [f"{t.get('scrapeUrl')}: {t.get('health')} {t.get('lastError') or ''}".strip() for t in targets]
            if time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        raise TimeoutError(f"{count} targets not up after {timeout_seconds:.0f} s; targets: {states}")

    def alerts(self) -> list[dict[str, object]]:
        """The alerts now pending or firing (labels, annotations, state, activeAt, value)."""
        data = self._get("/api/v1/alerts")
        alerts = data.get("alerts") if isinstance(data, dict) else None
        return [dict(a) for a in alerts] if isinstance(alerts, list) else []

    def rule_groups(self, kind: str | None = None) -> list[dict[str, object]]:
        """The loaded rule groups with each rule's health and last evaluation; kind "record" or "alert" filters."""
        data = self._get("/api/v1/rules", {"type": kind} if kind else None)
        groups = data.get("groups") if isinstance(data, dict) else None
        return [dict(g) for g in groups] if isinstance(groups, list) else []

    def wait_for_series(self, expr: str, timeout_seconds: float) -> list[Sample]:
        """Poll an instant query until it returns at least one finite sample; TimeoutError otherwise."""
        deadline = time.monotonic() + timeout_seconds
        while True:
            samples = [s for s in self.query(expr) if math.isfinite(s.value)]
            if samples:
                return samples
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no finite samples for {expr!r} after {timeout_seconds:.0f} s")
            time.sleep(0.2)
