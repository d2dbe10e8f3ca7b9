"""The Helm chart helm/chainlab: replicas from the experiment, the container contract, GPU, security, monitoring,
network policies, chaos, packaging with the files/ symlinks, and values.schema.json's rejections."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

import pytest
import yaml

from chainlab.scenarios import registry
from chainlab.scenarios.experiment import Experiment
from tests.deploy import chart_check
from tests.deploy.chart_check import ROOT, Obj
from tests.deploy.conftest import Render

Tree = Mapping[str, object]


def tree(obj: object, *path: str) -> object:
    """obj[path[0]][path[1]]..., for reading rendered objects."""
    for key in path:
        obj = cast(Tree, obj)[key]
    return obj


def of_kind(objs: Sequence[Obj], kind: str) -> dict[str, Obj]:
    """Rendered objects of one kind, by name."""
    return {str(tree(o, "metadata", "name")): o for o in objs if o.get("kind") == kind}


def pod_specs(objs: Sequence[Obj]) -> dict[str, Tree]:
    """Every pod spec (workload templates, Jobs, bare Pods) by kind/name."""
    specs = {}
    for o in objs:
        name = f"{o['kind']}/{tree(o, 'metadata', 'name')}"
        if o["kind"] in ("StatefulSet", "Deployment", "Job"):
            specs[name] = cast(Tree, tree(o, "spec", "template", "spec"))
        elif o["kind"] == "Pod":
            specs[name] = cast(Tree, o["spec"])
    return specs


def containers(spec: Tree) -> list[Tree]:
    """A pod spec's init and app containers."""
    return [*cast(list[Tree], spec.get("initContainers", [])), *cast(list[Tree], spec["containers"])]


# The release is named "chainlab", which contains the chart's name: the fullname is the release name.
FULLNAME = chart_check.RELEASE


def full(name: str) -> str:
    """An object name under the release's fullname."""
    return f"{FULLNAME}-{name}"


CONTRACT = cast(Tree, yaml.safe_load((chart_check.CHART / "files" / "containers.yaml").read_text()))


@pytest.mark.parametrize("profile", ["default", "dfl", "miners25"])
def test_replicas_are_the_nodes_the_experiment_builds(render: Render, profile: str) -> None:
    """The rendered config validates in chainlab, and each role's replicas equal the slots its spec builds."""
    objs = render(profile)
    text = str(tree(of_kind(objs, "ConfigMap")[full("config")], "data", "experiment.yaml"))
    exp = Experiment.from_mapping(yaml.safe_load(text))
    built = Counter(slot.role for slot in registry.get(exp.protocol_name).build(exp).slots)
    rendered = {
        str(tree(o, "metadata", "labels", "app.kubernetes.io/component")): int(cast(int, tree(o, "spec", "replicas")))
        for kind in ("StatefulSet", "Deployment")
        for o in of_kind(objs, kind).values()
        if tree(o, "metadata", "labels", "app.kubernetes.io/component") in ("miner", "validator", "requester")
    }
    assert rendered == dict(built)


def test_default_experiment_is_the_demo_with_three_miners_and_one_task() -> None:
    """values.yaml's experiment is experiments/demo.yaml but for miners 3, tasks 1 and the prose."""
    values = yaml.safe_load((chart_check.CHART / "values.yaml").read_text())["experiment"]
    demo = yaml.safe_load((ROOT / "experiments" / "demo.yaml").read_text())
    prose = {"name", "description", "deviations"}
    assert {k: v for k, v in values.items() if k not in prose} == {k: v for k, v in demo.items() if k not in prose} | {
        "miners": 3,
        "tasks": 1,
    }
    Experiment.from_mapping(values)


def test_pods_run_what_the_contract_says(render: Render) -> None:
    """Node, sidecar and storage containers take command, args and env from files/containers.yaml unchanged."""
    objs = render("default")
    pods = cast(Tree, CONTRACT["pods"])
    workloads = {
        "miner": of_kind(objs, "StatefulSet")[full("miner")],
        "validator": of_kind(objs, "StatefulSet")[full("validator")],
        "requester": of_kind(objs, "Deployment")[full("requester")],
        "storage": of_kind(objs, "Deployment")[full("storage")],
    }
    for component, workload in workloads.items():
        rendered = {str(c["name"]): c for c in containers(cast(Tree, tree(workload, "spec", "template", "spec")))}
        for name, want in cast(Mapping[str, Tree], pods[component]).items():
            got = rendered[name]
            assert got["command"] == want["command"] and got["args"] == want["args"], (component, name)
            env = cast(list[Tree], got["env"])
            extra = [e for e in env if e["name"] == "CHAINLAB_IPFS_API"]  # the chart's own: Kubo is on
            assert [e for e in env if e not in extra] == want["env"], (component, name)
    storage_env = cast(
        list[Tree], containers(cast(Tree, tree(workloads["storage"], "spec", "template", "spec")))[0]["env"]
    )
    assert {"name": "CHAINLAB_IPFS_API", "value": f"/dns4/{full('kubo')}/tcp/5001/http"} in storage_env


def test_gpu_profile_gives_miners_gpus_and_nothing_else(render: Render) -> None:
    """gpu.enabled: miners get nvidia.com/gpu, the GPU image, runtime class, node selector and toleration."""
    specs = pod_specs(render("gpu"))
    miner = specs[f"StatefulSet/{full('miner')}"]
    node = containers(miner)[0]
    assert tree(node, "resources", "limits", "nvidia.com/gpu") == 1
    assert str(node["image"]).startswith("chainlab/node-gpu:")
    assert miner["runtimeClassName"] == "nvidia"
    assert miner["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in cast(
        list[Tree], miner["tolerations"]
    )
    others = [s for name, s in specs.items() if name != f"StatefulSet/{full('miner')}"]
    assert all("runtimeClassName" not in s for s in others)
    assert all("nvidia.com/gpu" not in json.dumps(c.get("resources")) for s in others for c in containers(s))


def restricted(container: Tree, pod: Tree) -> bool:
    """Whether a container meets Pod Security "restricted" as the chart sets it."""
    sc = cast(Tree, container["securityContext"])
    caps = cast(Tree, sc["capabilities"])
    return (
        sc["allowPrivilegeEscalation"] is False
        and sc["readOnlyRootFilesystem"] is True
        and sc.get("runAsNonRoot", tree(pod, "securityContext", "runAsNonRoot")) is True
        and caps["drop"] == ["ALL"]
        and not caps.get("add")
        and tree(sc, "seccompProfile", "type") == "RuntimeDefault"
        and tree(pod, "securityContext", "runAsUser") == 10001
    )


@pytest.mark.parametrize("profile", ["default", "gpu", "minikube", "monitoring-crds"])
def test_every_pod_is_restricted_and_only_the_loader_has_a_token(render: Render, profile: str) -> None:
    """Restricted Pod Security on every container; no service-account token but the loader's."""
    extra = ["--api-versions", "monitoring.coreos.com/v1"] if profile == "monitoring-crds" else []
    for name, spec in pod_specs(render(profile, *extra)).items():
        assert all(restricted(c, spec) for c in containers(spec)), name
        assert spec["automountServiceAccountToken"] is (name == f"Job/{full('loader')}"), name


def test_kernel_shaping_adds_net_admin_to_the_netem_sidecar_only(render: Render) -> None:
    """netem.kernelShaping: NET_ADMIN (as root) on each netem container, nowhere else."""
    for name, spec in pod_specs(render("kernel-shaping")).items():
        for c in containers(spec):
            added = tree(c, "securityContext", "capabilities").get("add")  # type: ignore[attr-defined]
            assert (added == ["NET_ADMIN"]) is (c["name"] == "netem"), (name, c["name"])


def test_monitoring_follows_the_crds(render: Render) -> None:
    """No monitoring API: annotations and no CRD objects; with it: PodMonitor, rules and dashboards, no annotations."""
    bare = render("monitoring-nocrds")
    assert not [o for o in bare if str(o["apiVersion"]).startswith("monitoring.coreos.com")]
    miner = of_kind(bare, "StatefulSet")[full("miner")]
    assert tree(miner, "spec", "template", "metadata", "annotations", "prometheus.io/port") == "9000"
    assert not [o for o in bare if tree(o, "metadata").get("labels", {}).get("grafana_dashboard")]  # type: ignore[attr-defined]

    crds = render("monitoring-crds", "--api-versions", "monitoring.coreos.com/v1")
    miner = of_kind(crds, "StatefulSet")[full("miner")]
    assert "prometheus.io/scrape" not in cast(Tree, tree(miner, "spec", "template", "metadata", "annotations"))
    monitor = of_kind(crds, "PodMonitor")[FULLNAME]
    assert tree(monitor, "metadata", "labels", "release") == "kube-prometheus-stack"
    endpoints = cast(list[Tree], tree(monitor, "spec", "podMetricsEndpoints"))
    assert [e["port"] for e in endpoints] == ["metrics", "netem-metrics"]
    for endpoint in endpoints:
        targets = {r["targetLabel"] for r in cast(list[Tree], endpoint["relabelings"])}
        assert {"job", "service", "protocol", "role", "node", "run"} <= targets


def test_rules_and_dashboards_are_the_files_in_deploy(render: Render) -> None:
    """One source: PrometheusRules equal deploy/prometheus/rules/*.yml, dashboards deploy/grafana/dashboards/*.json."""
    objs = render("monitoring-crds", "--api-versions", "monitoring.coreos.com/v1")
    rules = of_kind(objs, "PrometheusRule")
    for path in sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml")):
        assert tree(rules[full(path.stem)], "spec", "groups") == yaml.safe_load(path.read_text())["groups"]
    maps = of_kind(objs, "ConfigMap")
    for path in sorted((ROOT / "deploy" / "grafana" / "dashboards").glob("*.json")):
        cm = maps[full(f"dashboard-{path.stem}")]
        assert tree(cm, "metadata", "labels", "grafana_dashboard") == "1"
        assert json.loads(str(tree(cm, "data", path.name))) == json.loads(path.read_text())


def test_network_policies_deny_by_default_and_guard_kubo(render: Render) -> None:
    """A default deny over the release's pods; Kubo's RPC open to storage pods only."""
    policies = of_kind(render("default"), "NetworkPolicy")
    deny = cast(Tree, policies[full("default-deny")]["spec"])
    assert deny["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny and "egress" not in deny
    assert tree(deny, "podSelector", "matchLabels") == {
        "app.kubernetes.io/name": "chainlab",
        "app.kubernetes.io/instance": chart_check.RELEASE,
    }
    kubo = cast(list[Tree], tree(policies[full("kubo")], "spec", "ingress"))
    assert len(kubo) == 1
    sources = cast(list[Tree], kubo[0]["from"])
    assert [tree(s, "podSelector", "matchLabels", "app.kubernetes.io/component") for s in sources] == ["storage"]
    assert kubo[0]["ports"] == [{"protocol": "TCP", "port": 5001}]


def test_chaos_objects_stay_in_the_release_namespace(render: Render) -> None:
    """Chaos Mesh objects from values pass the structural check; a pod by index is named by its StatefulSet."""
    objs = render("minikube")
    chaos = [o for o in objs if str(o["apiVersion"]).startswith("chaos-mesh.org/")]
    assert {str(o["kind"]) for o in chaos} == {"PodChaos", "NetworkChaos"}
    for obj in chaos:
        assert chart_check.validate_chaos(obj, chart_check.NAMESPACE) == []
    kill = of_kind(objs, "PodChaos")[full("kill-miner-1")]
    assert tree(kill, "spec", "selector", "pods") == {chart_check.NAMESPACE: [full("miner-1")]}


def test_structural_chaos_check_catches_a_selector_outside_the_namespace() -> None:
    """The chaos validator is not a rubber stamp."""
    bad: Obj = {
        "apiVersion": "chaos-mesh.org/v1alpha1",
        "kind": "PodChaos",
        "metadata": {"name": "x", "namespace": chart_check.NAMESPACE},
        "spec": {
            "action": "pod-kill",
            "mode": "all",
            "selector": {"namespaces": ["kube-system"], "labelSelectors": {}},
        },
    }
    errors = chart_check.validate_chaos(bad, chart_check.NAMESPACE)
    assert any("namespaces" in e for e in errors) and any("picks no pods" in e for e in errors)


@pytest.mark.parametrize("bad", chart_check.BAD_VALUES, ids=lambda b: b.label)
def test_schema_rejects_bad_values(helm_bin: str, bad: chart_check.BadValues) -> None:
    """values.schema.json refuses the value, and helm's message names the key (and the value where it can)."""
    done = chart_check.helm("template", "t", str(chart_check.CHART), *bad.args)
    assert done.returncode != 0
    for expected in bad.expect:
        assert expected in done.stderr


def test_package_resolves_the_symlinks(helm_bin: str, tmp_path: Path) -> None:
    """`helm package` copies the files/ symlinks' targets in: the packaged chart renders the same rules."""
    subprocess.run([helm_bin, "package", str(chart_check.CHART), "-d", str(tmp_path)], check=True, capture_output=True)
    (package,) = tmp_path.glob("chainlab-*.tgz")
    done = chart_check.helm("template", "t", str(package), "--api-versions", "monitoring.coreos.com/v1")
    objs = chart_check.parse_manifests(done.stdout)
    assert done.returncode == 0
    assert sum(o["kind"] == "PrometheusRule" for o in objs) == len(
        list((ROOT / "deploy/prometheus/rules").glob("*.yml"))
    )
