"""An experiment's chaos scenario as Chaos Mesh objects for the Helm release, and applying them.

`render` turns the timed actions into one Workflow: a Parallel entry whose every branch is a Serial of a Suspend
(the action's start, rounds -> seconds by live.round_seconds) and one PodChaos or NetworkChaos lasting until the
action that ends it. kill then restart of a node is a pod-failure for the time between (the pod keeps its volume,
so the node comes back on its state); a kill never followed by a restart is a pod-kill (the StatefulSet brings the
pod back at once, on its claim); a partition lasts until the heal (or the next partition), a set-link until the
next set-link of the same pair. Pods are picked by the chart's labels: app.kubernetes.io/instance (the release),
app.kubernetes.io/component (the role) and apps.kubernetes.io/pod-index (the StatefulSet ordinal).

Chaos Mesh schedules by time, not by height: an action `at` a height needs rounds_per_height (how long a height
takes, e.g. from a simulation's key_block_interval_rounds) to be placed; a byzantine action has no equivalent.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chainlab.k8s.api import COMPONENT, INSTANCE, POD_INDEX
from chainlab.scenarios.base import NodeSlot, ProtocolSpec
from chainlab.scenarios.chaos import Byzantine, Heal, Kill, Partition, Restart, SetLink, TimedAction
from chainlab.scenarios.experiment import Experiment

if TYPE_CHECKING:
    from chainlab.k8s.api import Kube

GROUP = "chaos-mesh.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
PLURALS = {"Workflow": "workflows", "PodChaos": "podchaos", "NetworkChaos": "networkchaos", "Schedule": "schedules"}
SINGLE_POD_ROLES = ("requester",)  # a Deployment: no pod-index label, one pod
DEFAULT_HOLD_SECONDS = 3600.0  # how long chaos that nothing ends lasts (a partition never healed)
BANDWIDTH_LIMIT_BYTES = 20_971_520  # tbf queue and bucket sizes Chaos Mesh requires beside the rate
BANDWIDTH_BUFFER_BYTES = 10_000

Obj = dict[str, object]


def fullname(release: str) -> str:
    """The chart's fullname for a release (no nameOverride): the release, or <release>-chainlab."""
    return release if "chainlab" in release else f"{release}-chainlab"


def _duration(seconds: float) -> str:
    """A Go duration Chaos Mesh parses, in whole milliseconds (at least 1 ms)."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class Placed:
    """An action placed in time: its start and, for chaos that lasts, when it ends (seconds from the start)."""

    timed: TimedAction
    start: float
    end: float | None = None


def start_round(timed: TimedAction, spec: ProtocolSpec, exp: Experiment, rounds_per_height: int | None) -> int:
    """The round an action is due at when every height takes rounds_per_height rounds."""
    at = timed.at
    if at.round is not None:
        return at.round
    assert at.height is not None
    if rounds_per_height is None:
        raise ValueError(f"{timed.describe()}: Chaos Mesh schedules by time; pass --rounds-per-height to place it")
    if at.phase is None:
        return at.height * rounds_per_height
    return (at.height - 1) * rounds_per_height + (spec.phase_start(exp, at.phase) or 0)


def place(
    actions: Sequence[TimedAction],
    spec: ProtocolSpec,
    exp: Experiment,
    rounds_per_height: int | None,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
) -> list[Placed]:
    """Every action that becomes chaos, with its start and end in seconds (heals and restarts only end others)."""
    seconds = exp.live.round_seconds
    starts = {t.index: start_round(t, spec, exp, rounds_per_height) * seconds for t in actions}
    ordered = sorted(actions, key=lambda t: (starts[t.index], t.index))
    placed = []
    for k, timed in enumerate(ordered):
        start, later = starts[timed.index], ordered[k + 1 :]
        match timed.action:
            case Byzantine():
                raise ValueError(f"{timed.describe()}: a behaviour has no Chaos Mesh equivalent")
            case Kill(node):
                end = next((starts[t.index] for t in later if t.action == Restart(node)), None)
                placed.append(Placed(timed, start, end))
            case Restart(node):
                killed = any(t.action == Kill(node) for t in ordered[:k])
                if not killed:  # a restart of a running node: kill it, the StatefulSet starts it again
                    placed.append(Placed(timed, start, None))
            case Partition():
                ends = [starts[t.index] for t in later if isinstance(t.action, Heal | Partition)]
                placed.append(Placed(timed, start, ends[0] if ends else hold_seconds))
            case SetLink(a, b):
                pair = {a, b}
                ends = [
                    starts[t.index] for t in later if isinstance(t.action, SetLink) and {t.action.a, t.action.b} == pair
                ]
                placed.append(Placed(timed, start, ends[0] if ends else hold_seconds))
            case Heal():
                pass
    return placed


class Selectors:
    """Chaos Mesh selectors for nodes by name, through the chart's labels."""

    def __init__(self, slots: Sequence[NodeSlot], release: str, namespace: str) -> None:
        self.slots = {slot.name: slot for slot in slots}
        self.release = release
        self.namespace = namespace

    def of(self, names: Sequence[str]) -> list[Obj]:
        """One selector per role among the names (a selector's labels name one component)."""
        by_role: dict[str, list[NodeSlot]] = {}
        for name in names:
            slot = self.slots[name]
            by_role.setdefault(slot.role, []).append(slot)
        out: list[Obj] = []
        for role, slots in by_role.items():
            labels = {INSTANCE: self.release, COMPONENT: role}
            selector: Obj = {"namespaces": [self.namespace], "labelSelectors": labels}
            if role not in SINGLE_POD_ROLES:
                indices = sorted(str(s.index) for s in slots)
                if len(indices) == 1:
                    labels[POD_INDEX] = indices[0]
                else:
                    selector["expressionSelectors"] = [{"key": POD_INDEX, "operator": "In", "values": indices}]
            out.append({"mode": "all", "selector": selector})
        return out


def _templates(placed: Placed, selectors: Selectors, round_seconds: float) -> list[tuple[str, Obj]]:
    """(template type, its spec) for one placed action: a PodChaos or one NetworkChaos per selector pair."""
    duration = None if placed.end is None else placed.end - placed.start
    match placed.timed.action:
        case Kill(node) | Restart(node):
            (target,) = selectors.of([node])
            action = "pod-kill" if duration is None else "pod-failure"
            pod: Obj = {"action": action, **target}
            if duration is not None:
                pod["duration"] = _duration(duration)
            return [("PodChaos", pod)]
        case Partition(groups):
            out: list[tuple[str, Obj]] = []
            for g, left in enumerate(groups):
                for right in groups[g + 1 :]:
                    for source in selectors.of(left):
                        for target in selectors.of(right):
                            out.append(("NetworkChaos", {"action": "partition", **source, "direction": "both",
                                                         "target": target}))  # fmt: skip
            return out
        case SetLink(a, b, latency_rounds, bandwidth, loss, up):
            (source,), (target,) = selectors.of([a]), selectors.of([b])
            pair: Obj = {**source, "direction": "both", "target": target}
            if not up:
                return [("NetworkChaos", {"action": "partition", **pair})]
            out = []
            if latency_rounds > 0:
                latency = _duration(latency_rounds * round_seconds)
                out.append(("NetworkChaos", {"action": "delay", **pair, "delay": {"latency": latency}}))
            if loss > 0:
                out.append(("NetworkChaos", {"action": "loss", **pair, "loss": {"loss": f"{loss * 100:g}"}}))
            if bandwidth > 0:
                rate = f"{max(1, round(bandwidth * 1_000_000 / round_seconds / 1000))}kbps"  # kbps: kilobytes/s
                limits = {"rate": rate, "limit": BANDWIDTH_LIMIT_BYTES, "buffer": BANDWIDTH_BUFFER_BYTES}
                out.append(("NetworkChaos", {"action": "bandwidth", **pair, "bandwidth": limits}))
            return out
        case _:
            return []


def render(
    exp: Experiment,
    spec: ProtocolSpec,
    slots: Sequence[NodeSlot],
    actions: Sequence[TimedAction],
    *,
    release: str = "chainlab",
    namespace: str = "chainlab",
    rounds_per_height: int | None = None,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
) -> list[Obj]:
    """The scenario as Chaos Mesh objects for the release: one Workflow (empty list: nothing to do)."""
    names = {slot.name for slot in slots}
    for timed in actions:
        for name in timed.nodes():
            if name not in names:
                raise ValueError(f"{timed.describe()}: no node {name!r} (known: {', '.join(sorted(names))})")
    selectors = Selectors(slots, release, namespace)
    entry = "scenario"
    templates: list[Obj] = []
    branches: list[str] = []
    for placed in place(actions, spec, exp, rounds_per_height, hold_seconds):
        for k, (kind, body) in enumerate(_templates(placed, selectors, exp.live.round_seconds)):
            name = f"a{placed.timed.index}-{placed.timed.kind}-{k}"
            field = "podChaos" if kind == "PodChaos" else "networkChaos"
            chaos: Obj = {"name": f"{name}-chaos", "templateType": kind, field: body}
            lasting = (placed.end or placed.start) - placed.start
            chaos["deadline"] = _duration(lasting if lasting > 0 else 10.0)  # a pod-kill is done in moments
            if kind == "PodChaos" and "duration" in body:
                body.pop("duration")  # in a Workflow the template's deadline is the duration
            children = [f"{name}-chaos"]
            if placed.start > 0:
                templates.append(
                    {"name": f"{name}-wait", "templateType": "Suspend", "deadline": _duration(placed.start)}
                )
                children.insert(0, f"{name}-wait")
            templates.append({"name": name, "templateType": "Serial", "children": children})
            templates.append(chaos)
            branches.append(name)
    if not branches:
        return []
    templates = json.loads(json.dumps(templates))  # no object shared between templates: YAML without aliases
    workflow: Obj = {
        "apiVersion": API_VERSION,
        "kind": "Workflow",
        "metadata": {
            "name": f"{fullname(release)}-chaos-{_slug(exp.name)}"[:63].rstrip("-"),
            "namespace": namespace,
            "labels": {INSTANCE: release, COMPONENT: "chaos", "app.kubernetes.io/part-of": "chainlab"},
        },
        "spec": {
            "entry": entry,
            "templates": [{"name": entry, "templateType": "Parallel", "children": branches}, *templates],
        },
    }
    return [workflow]


def _slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-") or "scenario"


def embedded(workflow: Obj) -> list[Obj]:
    """The PodChaos and NetworkChaos a Workflow's templates hold, as the stand-alone objects they stand for (what a
    structural check of Chaos Mesh objects reads)."""
    meta = workflow.get("metadata")
    spec = workflow.get("spec")
    assert isinstance(meta, Mapping) and isinstance(spec, Mapping)
    out: list[Obj] = []
    for template in spec.get("templates", []):
        kind = template.get("templateType")
        field = {"PodChaos": "podChaos", "NetworkChaos": "networkChaos"}.get(kind)
        if field is None:
            continue
        name = f"{meta['name']}-{template['name']}"
        out.append({"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": meta["namespace"]},
                    "spec": dict(template[field])})  # fmt: skip
    return out


def timeline(workflow: Obj) -> list[tuple[float, str, Obj]]:
    """(start seconds, template type, chaos spec) of every branch of a rendered Workflow, in start order."""
    spec = workflow["spec"]
    assert isinstance(spec, Mapping)
    templates = {t["name"]: t for t in spec["templates"]}
    entry = templates[spec["entry"]]
    out = []
    for branch in entry.get("children", []):
        start = 0.0
        for child in templates[branch]["children"]:
            template = templates[child]
            if template["templateType"] == "Suspend":
                start += float(str(template["deadline"]).removesuffix("ms")) / 1000
            else:
                field = "podChaos" if template["templateType"] == "PodChaos" else "networkChaos"
                out.append((start, str(template["templateType"]), dict(template[field])))
    return sorted(out, key=lambda item: item[0])


def label_selector(selector: Mapping[str, object]) -> str:
    """A Chaos Mesh selector's labels as a Kubernetes label selector string."""
    labels = selector.get("labelSelectors") or {}
    assert isinstance(labels, Mapping)
    parts = [f"{k}={v}" for k, v in labels.items()]
    for expression in selector.get("expressionSelectors") or []:  # type: ignore[attr-defined]
        parts.append(f"{expression['key']} in ({','.join(expression['values'])})")
    return ",".join(parts)


def apply(
    kube: Kube,
    objects: Sequence[Obj],
    namespace: str,
    log: Callable[[str], None],
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Create the objects through the custom-objects API. Where Chaos Mesh is absent (its API answers 404), carry
    out the pod kills of each Workflow here instead, on time, by deleting the pods (network chaos then cannot
    run: each is named). Returns how many objects were created or pods deleted."""
    from kubernetes import client

    custom = client.CustomObjectsApi(kube.core.api_client)
    done = 0
    for obj in objects:
        kind = str(obj.get("kind"))
        if kind not in PLURALS or obj.get("apiVersion") != API_VERSION:
            raise ValueError(f"not a Chaos Mesh object of a known kind: {obj.get('apiVersion')}/{kind}")
        try:
            custom.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURALS[kind], obj)
            log(f"created {kind} {obj['metadata']['name']}")  # type: ignore[index]
            done += 1
        except client.ApiException as exc:
            if exc.status != 404 or kind != "Workflow":
                raise
            log(f"Chaos Mesh is not installed ({GROUP} answers 404): pod kills by deletion, network chaos skipped")
            done += _kill_by_deletion(kube, obj, namespace, log, sleep)
    return done


def _kill_by_deletion(
    kube: Kube, workflow: Obj, namespace: str, log: Callable[[str], None], sleep: Callable[[float], None]
) -> int:
    """A Workflow's pod chaos without Chaos Mesh: each pod deleted at its start (its controller brings it back)."""
    began = time.monotonic()
    deleted = 0
    for start, kind, body in timeline(workflow):
        if kind != "PodChaos":
            log(f"skipped at {start:.1f} s: {kind} {body.get('action')} needs Chaos Mesh")
            continue
        sleep(max(0.0, start - (time.monotonic() - began)))
        selector = body["selector"]
        assert isinstance(selector, Mapping)
        pods = kube.core.list_namespaced_pod(namespace, label_selector=label_selector(selector))
        for pod in pods.items:
            name = str(pod.metadata.name) if pod.metadata is not None else ""
            kube.core.delete_namespaced_pod(name, namespace)
            log(f"deleted pod {name} at {start:.1f} s ({body.get('action')})")
            deleted += 1
    return deleted
