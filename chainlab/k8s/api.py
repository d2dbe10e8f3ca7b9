"""The official `kubernetes` client, built from a kubeconfig context or, inside a pod, its service account."""

from __future__ import annotations

import os
from dataclasses import dataclass

from kubernetes import client, config

# The labels the chart puts on every object (Helm's recommended labels) and the ones this package adds.
INSTANCE = "app.kubernetes.io/instance"
COMPONENT = "app.kubernetes.io/component"
NAME = "app.kubernetes.io/name"
POD_INDEX = "apps.kubernetes.io/pod-index"  # StatefulSet pods, Kubernetes >= 1.28
CLIENT = "chainlab.dev/client"  # NetworkPolicies let such pods reach node gRPC and storage
NODE_ROLES = ("miner", "validator", "requester")
PLAN_DIR = "/etc/chainlab/plan"
METRICS_PORT = 9000  # the node container's metrics port when its spec names none


class K8sError(Exception):
    """A failure worth one clear line to the user (no release, no cluster, a Job that failed)."""


@dataclass(frozen=True)
class Kube:
    """The API groups `chainlab k8s` uses, over one ApiClient."""

    core: client.CoreV1Api
    apps: client.AppsV1Api
    batch: client.BatchV1Api

    @classmethod
    def of(cls, api_client: client.ApiClient) -> Kube:
        """The three API groups over api_client."""
        return cls(client.CoreV1Api(api_client), client.AppsV1Api(api_client), client.BatchV1Api(api_client))


def connect(context: str | None = None, kubeconfig: str | None = None) -> client.ApiClient:
    """An ApiClient for the kubeconfig's context (default: the current one), or the pod's service account when
    running inside a cluster and no context was named."""
    configuration = client.Configuration()
    # The client ships py.typed but leaves its config loaders unannotated: hence the two ignores.
    try:
        if context is None and kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
            config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
        else:
            config.load_kube_config(  # type: ignore[no-untyped-call]
                config_file=kubeconfig, context=context, client_configuration=configuration
            )
    except (config.ConfigException, FileNotFoundError) as exc:
        raise K8sError(f"no Kubernetes cluster configured ({exc}); set KUBECONFIG or pass --context") from exc
    return client.ApiClient(configuration)


def fullname_from(workload_name: str, component: str) -> str:
    """The chart's fullname from a workload it named `<fullname>-<component>` (what the chart's helper gives)."""
    suffix = f"-{component}"
    return workload_name[: -len(suffix)] if workload_name.endswith(suffix) else workload_name
