"""`chainlab k8s status`: a release's pods, their readiness, and each node's chain height read from its metrics
through the API server's pod proxy."""

from __future__ import annotations

import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace

import urllib3
from kubernetes.client import ApiException, V1Pod
from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from chainlab.k8s.api import COMPONENT, INSTANCE, METRICS_PORT, NODE_ROLES, POD_INDEX, Kube

_ORDER = {role: rank for rank, role in enumerate((*NODE_ROLES, "storage", "kubo"))}
_ORDINAL = re.compile(r"-(\d+)$")
_PROXY_WORKERS = 8  # a 25-miner release answers in a few seconds; a dead pod costs one timeout, not 25


@dataclass(frozen=True)
class NodeMetrics:
    """What a node's /metrics says about its chain."""

    height: int | None = None
    round: int | None = None
    tip: str | None = None
    node: str | None = None  # chainlab_node_info's node label: the name the plan gave this node


@dataclass(frozen=True)
class PodRow:
    """One pod of the release as `status` shows it."""

    pod: str
    component: str
    node: str  # the chainlab node name (miner-0), "" for pods that are not nodes
    status: str  # like kubectl's STATUS column: a waiting container's reason, else the phase
    phase: str
    ready: int
    containers: int
    restarts: int
    height: int | None = None
    round: int | None = None
    tip: str | None = None
    error: str | None = None  # why a node's metrics could not be read

    @property
    def ok(self) -> bool:
        """Running with every container ready, or a finished Job's pod (the loader, a helm test)."""
        if self.phase == "Succeeded":
            return True
        return self.phase == "Running" and self.containers > 0 and self.ready == self.containers


def parse_metrics(text: str) -> NodeMetrics:
    """Height, round, tip and node name from a Prometheus text exposition; absent metrics stay None."""
    height = round_ = None
    tip = node = None
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "chainlab_chain_height":
                height = int(sample.value)
            elif sample.name == "chainlab_round":
                round_ = int(sample.value)
            elif sample.name == "chainlab_chain_tip" and sample.value == 1:
                tip = sample.labels.get("tip")
            elif sample.name == "chainlab_node_info":
                node = sample.labels.get("node")
    return NodeMetrics(height, round_, tip, node)


def _node_name(pod: V1Pod, component: str) -> str:
    """The plan's name for a node pod: role-ordinal, the ordinal from the pod-index label (or the StatefulSet's
    name suffix on clusters older than 1.28); the requester Deployment's single pod is requester-0."""
    if component not in NODE_ROLES:
        return ""
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    index = labels.get(POD_INDEX)
    if index is None and component != "requester" and pod.metadata and pod.metadata.name:
        found = _ORDINAL.search(pod.metadata.name)
        index = found.group(1) if found else None
    return f"{component}-{index or 0}"


def _status(pod: V1Pod) -> str:
    """kubectl's STATUS: Terminating, a waiting or failed container's reason, or the phase."""
    if pod.metadata and pod.metadata.deletion_timestamp:
        return "Terminating"
    phase = pod.status.phase if pod.status and pod.status.phase else "Unknown"
    statuses = (pod.status.container_statuses if pod.status else None) or []
    for container in statuses:
        state = container.state
        if state and state.waiting and state.waiting.reason:
            return state.waiting.reason
        if state and state.terminated and state.terminated.reason and phase != "Succeeded":
            return state.terminated.reason
    return "Completed" if phase == "Succeeded" else phase


def pod_row(pod: V1Pod) -> PodRow:
    """A row from a pod object alone (no metrics yet)."""
    labels = (pod.metadata.labels if pod.metadata else None) or {}
    component = labels.get(COMPONENT, "")
    statuses = (pod.status.container_statuses if pod.status else None) or []
    containers = len(pod.spec.containers) if pod.spec else len(statuses)
    return PodRow(
        pod=(pod.metadata.name if pod.metadata else None) or "",
        component=component,
        node=_node_name(pod, component),
        status=_status(pod),
        phase=(pod.status.phase if pod.status else None) or "Unknown",
        ready=sum(1 for s in statuses if s.ready),
        containers=containers,
        restarts=sum(s.restart_count or 0 for s in statuses),
    )


def metrics_port(pod: V1Pod) -> int:
    """The port named `metrics` in the pod's spec (the node container's), else the contract's 9000."""
    for container in pod.spec.containers if pod.spec else []:
        for port in container.ports or []:
            if port.name == "metrics":
                return int(port.container_port)
    return METRICS_PORT


def read_metrics(kube: Kube, namespace: str, pod: str, port: int, timeout: float) -> NodeMetrics:
    """GET /metrics of one pod through the API server's pod proxy (`<pod>:<port>`); raises on any failure."""
    text = kube.core.connect_get_namespaced_pod_proxy_with_path(
        f"{pod}:{port}", namespace, "metrics", _request_timeout=timeout
    )
    return parse_metrics(text)


def _with_metrics(kube: Kube, namespace: str, pod: V1Pod, timeout: float) -> PodRow:
    """The pod's row with the node's height, round and tip, or with why they could not be read (never raises)."""
    row = pod_row(pod)
    if row.component not in NODE_ROLES:
        return row
    if row.phase != "Running":
        return replace(row, error=f"not running ({row.status})")
    try:
        found = read_metrics(kube, namespace, row.pod, metrics_port(pod), timeout)
    except ApiException as exc:
        return replace(row, error=f"no answer: HTTP {exc.status} {exc.reason or ''}".rstrip())
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        return replace(row, error=f"no answer: {type(exc).__name__}")
    except ValueError as exc:  # prometheus_client's parser on a body that is not an exposition
        return replace(row, error=f"bad metrics: {exc}")
    return replace(row, height=found.height, round=found.round, tip=found.tip, node=found.node or row.node)


def _sort_key(row: PodRow) -> tuple[int, int, str]:
    ordinal = _ORDINAL.search(row.node)
    return (_ORDER.get(row.component, len(_ORDER)), int(ordinal.group(1)) if ordinal else 0, row.pod)


def collect(kube: Kube, release: str, namespace: str, timeout: float = 5.0) -> list[PodRow]:
    """Every pod of the release (label app.kubernetes.io/instance), node pods with their chain metrics."""
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"{INSTANCE}={release}").items
    with ThreadPoolExecutor(max_workers=_PROXY_WORKERS) as pool:
        done = list(pool.map(lambda pod: _with_metrics(kube, namespace, pod, timeout), pods))
    return sorted(done, key=_sort_key)


def tips(rows: Sequence[PodRow]) -> set[str]:
    """The distinct tips the nodes that answered hold (one when they agree)."""
    return {row.tip for row in rows if row.tip}


def status_table(rows: Sequence[PodRow], title: str) -> Table:
    """A rich table, one row per pod."""
    table = Table(title=title)
    for column in ("pod", "component", "node", "status", "ready", "restarts", "height", "round", "tip"):
        table.add_column(column, justify="right" if column in ("restarts", "height", "round") else "left")
    for row in rows:
        ready = f"{row.ready}/{row.containers}"
        chain = (
            (str(row.height) if row.height is not None else "—", str(row.round) if row.round is not None else "—")
            if row.error is None
            else (f"[red]{row.error}[/red]", "")
        )
        table.add_row(
            row.pod,
            row.component,
            row.node,
            row.status if row.ok else f"[red]{row.status}[/red]",
            ready if row.ok else f"[red]{ready}[/red]",
            str(row.restarts),
            *chain,
            (row.tip or "")[:8],
        )
    return table


def to_json(rows: Sequence[PodRow]) -> list[dict[str, object]]:
    """The rows as JSON-ready mappings (with `ok`)."""
    return [{**asdict(row), "ok": row.ok} for row in rows]
