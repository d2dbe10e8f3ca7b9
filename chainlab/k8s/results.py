"""`chainlab k8s results`: results.json of a running release, through the one results pipeline run in the
cluster as a Job (`chainlab results --plan ...` in the release's node image), read back from the pod's log."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from kubernetes.client import (
    ApiException,
    V1ConfigMapVolumeSource,
    V1Container,
    V1EmptyDirVolumeSource,
    V1EnvVar,
    V1Job,
    V1JobSpec,
    V1ObjectMeta,
    V1PodSpec,
    V1PodTemplateSpec,
    V1ResourceRequirements,
    V1StatefulSet,
    V1Volume,
    V1VolumeMount,
)

from chainlab.k8s.api import CLIENT, COMPONENT, INSTANCE, NAME, PLAN_DIR, K8sError, Kube, fullname_from

CONTAINER = "results"
NODE_CONTAINER = "node"
LOG_TAIL_LINES = 40
_NAME_LIMIT = 63  # a Job's name becomes the job-name label of its pods: a label value
_RANDOM_SUFFIX = 5  # what the API server appends to a generateName
_GRACE_SECONDS = 60  # the cluster's own deadline outlasts ours, so the client always sees the end first
_TTL_SECONDS = 600  # a Job whose client died is still removed


class ResultsFailed(K8sError):
    """The results Job failed or timed out; the message carries its pod's log tail."""


@dataclass(frozen=True)
class NodeTemplate:
    """What the results Job copies from the release's miner StatefulSet."""

    fullname: str
    image: str
    pull_policy: str | None
    plan_configmap: str
    pod_template: V1PodTemplateSpec
    node: V1Container


def find_template(kube: Kube, release: str, namespace: str) -> NodeTemplate:
    """The release's miner StatefulSet (found by its labels), its node container and the plan ConfigMap it mounts."""
    found = kube.apps.list_namespaced_stateful_set(
        namespace, label_selector=f"{INSTANCE}={release},{COMPONENT}=miner"
    ).items
    if not found:
        raise K8sError(
            f"no miner StatefulSet of release {release!r} in namespace {namespace!r}"
            f" (is it installed? `helm list -n {namespace}`)"
        )
    sts: V1StatefulSet = found[0]
    template = sts.spec.template if sts.spec else None
    spec = template.spec if template else None
    node = next((c for c in (spec.containers if spec else []) if c.name == NODE_CONTAINER), None)
    if template is None or spec is None or node is None or not node.image:
        raise K8sError(f"StatefulSet {sts.metadata and sts.metadata.name} has no {NODE_CONTAINER!r} container")
    fullname = fullname_from((sts.metadata.name if sts.metadata else None) or release, "miner")
    mounts = {m.name: m.mount_path for m in node.volume_mounts or []}
    plan = f"{fullname}-plan"
    for volume in spec.volumes or []:
        if volume.config_map and mounts.get(volume.name) == PLAN_DIR and volume.config_map.name:
            plan = volume.config_map.name
    return NodeTemplate(fullname, node.image, node.image_pull_policy, plan, template, node)


def job_prefix(fullname: str) -> str:
    """The Job's generateName, `<fullname>-results-`: with the API server's 5 random characters it stays within a
    label value's 63 characters."""
    tail = "-results-"
    return f"{fullname[: _NAME_LIMIT - _RANDOM_SUFFIX - len(tail)].rstrip('-')}{tail}"


def _resources(node: V1Container) -> V1ResourceRequirements | None:
    """The node container's CPU and memory, without extended resources: reading results needs no GPU."""
    if node.resources is None:
        return None

    def plain(values: dict[str, Any] | None) -> dict[str, Any] | None:
        kept = {k: v for k, v in (values or {}).items() if k in ("cpu", "memory", "ephemeral-storage")}
        return kept or None

    return V1ResourceRequirements(limits=plain(node.resources.limits), requests=plain(node.resources.requests))


def job_manifest(release: str, template: NodeTemplate, timeout_seconds: int) -> V1Job:
    """The results Job: the node image, the plan mounted read-only, the miner pod's security contexts, one try."""
    pod = template.pod_template
    source_labels = (pod.metadata.labels if pod.metadata else None) or {}
    labels = {
        NAME: source_labels.get(NAME, "chainlab"),
        INSTANCE: release,
        COMPONENT: "results",
        CLIENT: "true",
    }
    spec = pod.spec
    assert spec is not None  # find_template checked it
    container = V1Container(
        name=CONTAINER,
        image=template.image,
        image_pull_policy=template.pull_policy,
        command=["chainlab", "results", "--plan", f"{PLAN_DIR}/plan.json"],
        env=[V1EnvVar(name="TMPDIR", value="/tmp")],
        security_context=template.node.security_context,
        resources=_resources(template.node),
        volume_mounts=[
            V1VolumeMount(name="plan", mount_path=PLAN_DIR, read_only=True),
            V1VolumeMount(name="tmp", mount_path="/tmp"),
        ],
    )
    return V1Job(
        api_version="batch/v1",
        kind="Job",
        metadata=V1ObjectMeta(generate_name=job_prefix(template.fullname), labels=labels),
        spec=V1JobSpec(
            backoff_limit=0,
            active_deadline_seconds=timeout_seconds + _GRACE_SECONDS,
            ttl_seconds_after_finished=_TTL_SECONDS,
            template=V1PodTemplateSpec(
                metadata=V1ObjectMeta(labels=labels),
                spec=V1PodSpec(
                    restart_policy="Never",
                    automount_service_account_token=False,
                    security_context=spec.security_context,
                    image_pull_secrets=spec.image_pull_secrets,
                    containers=[container],
                    volumes=[
                        V1Volume(name="plan", config_map=V1ConfigMapVolumeSource(name=template.plan_configmap)),
                        V1Volume(name="tmp", empty_dir=V1EmptyDirVolumeSource()),
                    ],
                ),
            ),
        ),
    )


def _finished(job: V1Job) -> str | None:
    """ "Complete" or "Failed" once the Job has ended, else None."""
    status = job.status
    if status is None:
        return None
    for condition in status.conditions or []:
        if condition.status == "True" and condition.type in ("Complete", "Failed"):
            return condition.type
    if status.succeeded:
        return "Complete"
    if status.failed:
        return "Failed"
    return None


def _job_pod(kube: Kube, namespace: str, name: str) -> str | None:
    """The newest pod of the Job (label job-name), if one was made."""
    pods = kube.core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    named = [
        (p.metadata.creation_timestamp.timestamp() if p.metadata.creation_timestamp else 0.0, p.metadata.name)
        for p in pods
        if p.metadata and p.metadata.name
    ]
    return max(named)[1] if named else None


def log_tail(kube: Kube, namespace: str, pod: str | None) -> str:
    """The last lines of a pod's log (stdout and stderr), or why there is none."""
    if pod is None:
        return "(the Job made no pod)"
    try:
        text: str = kube.core.read_namespaced_pod_log(pod, namespace, container=CONTAINER, tail_lines=LOG_TAIL_LINES)
    except ApiException as exc:
        return f"(no log from pod {pod}: HTTP {exc.status} {exc.reason or ''})"
    return text.rstrip() or "(empty log)"


def _is_log_record(line: str) -> bool:
    """A line of chainlab's structured logs (chainlab/live/logs.py): one JSON object with ts, level and msg."""
    try:
        found = json.loads(line)
    except ValueError:
        return False
    return isinstance(found, dict) and {"ts", "level", "msg"} <= found.keys()


def extract_results(log: str) -> dict[str, Any]:
    """results.json from the pod's stdout. Clusters without split log streams (before 1.32, or the
    PodLogsQuerySplitStreams gate off) return stdout and stderr interleaved by line: then the JSON log records
    and any other non-JSON lines are dropped before parsing. Raises ValueError when no JSON object is left."""
    try:
        found = json.loads(log)
    except ValueError:
        kept = [line for line in log.splitlines() if not _is_log_record(line)]
        start = next((i for i, line in enumerate(kept) if line.lstrip().startswith("{")), None)
        if start is None:
            raise ValueError("the Job printed no JSON object") from None
        found, _end = json.JSONDecoder().raw_decode("\n".join(kept[start:]))
    if not isinstance(found, dict):
        raise ValueError(f"the Job printed JSON {type(found).__name__}, not an object")
    return found


def run_results(
    kube: Kube,
    release: str,
    namespace: str,
    timeout_seconds: int = 600,
    poll_seconds: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, dict[str, Any]]:
    """Run the results Job, wait for it, read results.json from its log; the Job is deleted whatever happens.
    Returns the Job's name and the results."""
    template = find_template(kube, release, namespace)
    created = kube.batch.create_namespaced_job(namespace, job_manifest(release, template, timeout_seconds))
    name = created.metadata.name if created.metadata else None
    if not name:
        raise K8sError("the API server created the results Job without a name")
    try:
        deadline = clock() + timeout_seconds
        while (state := _finished(kube.batch.read_namespaced_job_status(name, namespace))) is None:
            if clock() >= deadline:
                tail = log_tail(kube, namespace, _job_pod(kube, namespace, name))
                raise ResultsFailed(f"Job {name} did not finish in {timeout_seconds} s; its log ends:\n{tail}")
            sleep(poll_seconds)
        pod = _job_pod(kube, namespace, name)
        if state == "Failed":
            raise ResultsFailed(f"Job {name} failed; its log ends:\n{log_tail(kube, namespace, pod)}")
        if pod is None:
            raise ResultsFailed(f"Job {name} completed but its pod is gone (no log to read)")
        log: str = kube.core.read_namespaced_pod_log(pod, namespace, container=CONTAINER, stream="Stdout")
        try:
            return name, extract_results(log)
        except ValueError as exc:
            raise ResultsFailed(f"Job {name} printed no results.json ({exc}); its log ends:\n{log[-2000:]}") from exc
    finally:
        try:
            kube.batch.delete_namespaced_job(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise
