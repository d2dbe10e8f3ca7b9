"""The plan ConfigMap the loader Job writes: created once, owned by the release's config ConfigMap (so
`helm uninstall` removes it with the release), never replaced under a running network unless asked."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

PLAN_LABELS = {"app.kubernetes.io/part-of": "chainlab", "app.kubernetes.io/component": "plan"}


def plan_exists(api: client.CoreV1Api, namespace: str, name: str) -> bool:
    """Whether the plan ConfigMap is there already (a re-run hook, an upgrade, a rescheduled loader)."""
    try:
        api.read_namespaced_config_map(name, namespace)
        return True
    except ApiException as exc:
        if exc.status == 404:
            return False
        raise


def publish_plan(
    api: client.CoreV1Api, namespace: str, name: str, files: dict[str, str], owner: str | None, replace: bool = False
) -> str:
    """Create (or with replace, overwrite) the plan ConfigMap holding files; returns "created" or "replaced".

    owner names a ConfigMap of the release that becomes the plan's owner, for garbage collection.
    """
    references = None
    if owner is not None:
        meta = api.read_namespaced_config_map(owner, namespace).metadata
        uid = meta.uid if meta is not None else None
        if uid is None:
            raise ValueError(f"the owner ConfigMap {namespace}/{owner} has no uid")
        references = [client.V1OwnerReference(api_version="v1", kind="ConfigMap", name=owner, uid=uid)]
    body = client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=PLAN_LABELS, owner_references=references), data=files
    )
    try:
        api.create_namespaced_config_map(namespace, body)
        return "created"
    except ApiException as exc:
        if exc.status != 409 or not replace:
            raise
    api.replace_namespaced_config_map(name, namespace, body)
    return "replaced"
