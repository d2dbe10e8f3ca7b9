"""The loader's plan ConfigMap through the real client against recorded API responses: created once and owned
by the release's config, kept when it exists, replaced only when asked."""

from __future__ import annotations

import pytest
from kubernetes.client.exceptions import ApiException

from chainlab.k8s.plan_configmap import plan_exists, publish_plan
from tests.k8s.fake_apiserver import FakeApiServer, recorded

CONFIGMAPS = "/api/v1/namespaces/lab/configmaps"
PLAN = f"{CONFIGMAPS}/rel-chainlab-plan"
FILES = {"plan.json": "{}", "topology.yaml": "nodes: {}\n"}


def test_a_new_plan_is_created_owned_by_the_releases_config() -> None:
    fake = FakeApiServer()
    fake.add("GET", f"{CONFIGMAPS}/rel-chainlab-config", recorded("configmap_config.json"))
    fake.add("POST", CONFIGMAPS, recorded("configmap_plan_created.json", 201))
    with fake.running() as kube:
        assert not plan_exists(kube.core, "lab", "rel-chainlab-plan")
        assert publish_plan(kube.core, "lab", "rel-chainlab-plan", FILES, "rel-chainlab-config") == "created"
    (created,) = fake.requests("POST", CONFIGMAPS)
    assert created.body["data"] == FILES
    (owner,) = created.body["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ConfigMap", "rel-chainlab-config", "5f0c2a56-8c51-4d0e-9a59-0f3c7d3c1b2e",
    )  # fmt: skip


def test_an_existing_plan_is_kept_unless_replacing_is_asked_for() -> None:
    fake = FakeApiServer()
    fake.add("GET", PLAN, recorded("configmap_plan_created.json"))
    fake.add("POST", CONFIGMAPS, recorded("status_configmap_exists.json", 409))
    fake.add("PUT", PLAN, recorded("configmap_plan_created.json"))
    with fake.running() as kube:
        assert plan_exists(kube.core, "lab", "rel-chainlab-plan")
        with pytest.raises(ApiException) as refused:
            publish_plan(kube.core, "lab", "rel-chainlab-plan", FILES, None)
        assert refused.value.status == 409
        assert not fake.requests("PUT", PLAN)
        assert publish_plan(kube.core, "lab", "rel-chainlab-plan", FILES, None, replace=True) == "replaced"
    (replaced,) = fake.requests("PUT", PLAN)
    assert replaced.body["data"] == FILES and replaced.body["metadata"].get("ownerReferences") is None
