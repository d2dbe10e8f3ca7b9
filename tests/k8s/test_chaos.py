"""`chainlab chaos render` and `chainlab k8s chaos apply`: the scenario as one Chaos Mesh Workflow selecting the
release's pods by the chart's labels, checked by the chart check's structural validator, and applied through the
custom-objects API (or, without Chaos Mesh, pod kills by deletion) against recorded API responses."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from rich.console import Console

from chainlab.cli import main
from chainlab.k8s import chaos
from chainlab.k8s.cli import add_k8s_parser, run_k8s
from chainlab.scenarios import registry
from chainlab.scenarios.chaos import scenario
from chainlab.scenarios.experiment import Experiment, load_experiment
from tests.deploy import chart_check
from tests.k8s.fake_apiserver import FakeApiServer, recorded
from tests.k8s.test_cli import kubeconfig

TOY: dict[str, Any] = {
    "name": "toy-chaos",
    "seed": 2,
    "protocol": {"name": "toychain"},
    "miners": 3,
    "blocks": 4,
    "network": {"kind": "full", "delay_rounds": 1},
    "live": {"round_seconds": 0.5},
    "chaos": [
        {"at": {"round": 10}, "kill": {"node": "miner-1"}},
        {"at": {"round": 30}, "restart": {"node": "miner-1"}},
        {"at": {"round": 0}, "partition": {"groups": [["miner-0"], ["miner-1", "miner-2"]]}},
        {"at": {"round": 20}, "heal": {}},
        {
            "at": {"round": 4},
            "set-link": {"a": "miner-0", "b": "miner-2", "latency_rounds": 2, "bandwidth": 0.5, "loss": 0.05},
        },
        {"at": {"round": 40}, "kill": {"node": "miner-2"}},
    ],
}
WORKFLOWS = "/apis/chaos-mesh.org/v1alpha1/namespaces/chainlab/workflows"


@pytest.fixture(autouse=True)
def toychain(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("CHAINLAB_PROTOCOLS", "toychain=tests.toyproto.spec:SPEC")
    yield


def _render(data: dict[str, Any], **options: Any) -> list[dict[str, Any]]:
    exp = Experiment.from_mapping(data)
    spec = registry.get(exp.protocol_name)
    return cast(list[dict[str, Any]], chaos.render(exp, spec, spec.build(exp).slots, scenario(exp), **options))


def _templates(workflow: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {t["name"]: t for t in workflow["spec"]["templates"]}


def test_one_workflow_whose_every_chaos_passes_the_chart_check() -> None:
    (workflow,) = _render(TOY)
    assert workflow["apiVersion"] == "chaos-mesh.org/v1alpha1" and workflow["kind"] == "Workflow"
    assert workflow["metadata"]["namespace"] == "chainlab"
    embedded = chaos.embedded(workflow)
    assert {o["kind"] for o in embedded} == {"PodChaos", "NetworkChaos"}
    for obj in embedded:
        assert chart_check.validate_chaos(obj, chart_check.NAMESPACE) == [], obj
    actions = sorted(str(cast(dict[str, Any], o["spec"])["action"]) for o in embedded)
    assert actions == ["bandwidth", "delay", "loss", "partition", "pod-failure", "pod-kill"]
    assert "&id" not in yaml.safe_dump_all([workflow])  # every template stands alone


def test_timing_is_rounds_times_round_seconds_and_lasts_until_what_ends_it() -> None:
    (workflow,) = _render(TOY)
    templates = _templates(workflow)
    entry = templates[workflow["spec"]["entry"]]
    assert entry["templateType"] == "Parallel"
    kill = templates["a0-kill-0-chaos"]  # miner-1 down from round 10 to its restart at round 30: 10 s
    assert templates["a0-kill-0-wait"]["deadline"] == "5000ms" and kill["deadline"] == "10000ms"
    assert kill["podChaos"]["action"] == "pod-failure"
    assert templates["a2-partition-0-chaos"]["deadline"] == "10000ms"  # healed at round 20
    assert "a2-partition-0-wait" not in templates  # at round 0: no wait
    assert templates["a5-kill-0-chaos"]["podChaos"]["action"] == "pod-kill"  # never restarted: the pod comes back
    delay = templates["a4-set-link-0-chaos"]["networkChaos"]
    assert delay["delay"] == {"latency": "1000ms"} and delay["direction"] == "both"
    assert templates["a4-set-link-1-chaos"]["networkChaos"]["loss"] == {"loss": "5"}
    assert templates["a4-set-link-2-chaos"]["networkChaos"]["bandwidth"]["rate"] == "1000kbps"  # 0.5 MB / 0.5 s
    starts = [(start, body["action"]) for start, _, body in chaos.timeline(workflow)]
    assert starts[0] == (0.0, "partition") and starts[-1] == (20.0, "pod-kill")


def test_pods_are_picked_by_the_charts_labels() -> None:
    (workflow,) = _render(TOY, release="lab", namespace="chainlab")
    templates = _templates(workflow)
    selector = templates["a0-kill-0-chaos"]["podChaos"]["selector"]
    assert selector == {
        "namespaces": ["chainlab"],
        "labelSelectors": {
            "app.kubernetes.io/instance": "lab",
            "app.kubernetes.io/component": "miner",
            "apps.kubernetes.io/pod-index": "1",
        },
    }
    partition = templates["a2-partition-0-chaos"]["networkChaos"]
    assert partition["target"]["selector"]["expressionSelectors"] == [
        {"key": "apps.kubernetes.io/pod-index", "operator": "In", "values": ["1", "2"]}
    ]
    assert workflow["metadata"]["name"] == "lab-chainlab-chaos-toy-chaos"
    assert chaos.label_selector(selector) == (
        "app.kubernetes.io/instance=lab,app.kubernetes.io/component=miner,apps.kubernetes.io/pod-index=1"
    )


def test_heights_need_a_pace_and_byzantine_has_no_equivalent() -> None:
    exp = load_experiment(Path("experiments/chaos/kill_restart.yaml"))
    spec = registry.get(exp.protocol_name)
    slots = spec.build(exp).slots
    with pytest.raises(ValueError, match="pass --rounds-per-height"):
        chaos.render(exp, spec, slots, scenario(exp))
    (workflow,) = chaos.render(exp, spec, slots, scenario(exp), rounds_per_height=200)
    templates = _templates(cast(dict[str, Any], workflow))
    # Phase II of height 1 = 100 rounds = 10 s; back at height 2's Phase I = 200 rounds: 10 s down.
    assert (
        templates["a0-kill-0-wait"]["deadline"] == "10000ms" and templates["a0-kill-0-chaos"]["deadline"] == "10000ms"
    )
    behaviour = spec.behaviours[0] if spec.behaviours else None
    if behaviour is not None:
        liar = Experiment.from_mapping(
            {**dict(exp.raw), "chaos": [{"at": {"round": 1}, "byzantine": {"node": "miner-0", "behaviour": behaviour}}]}
        )
        with pytest.raises(ValueError, match="no Chaos Mesh equivalent"):
            chaos.render(liar, spec, slots, scenario(liar))


def test_the_cli_writes_yaml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "toy.yaml"
    config.write_text(yaml.safe_dump(TOY))
    assert main(["chaos", "render", "--config", str(config), "--release", "lab"]) == 0
    (workflow,) = list(yaml.safe_load_all(capsys.readouterr().out))
    assert workflow["kind"] == "Workflow"
    out = tmp_path / "chaos.yaml"
    assert main(["chaos", "render", "--config", str(config), "--out", str(out)]) == 0
    assert yaml.safe_load(out.read_text())["kind"] == "Workflow"
    config.write_text(yaml.safe_dump({**TOY, "chaos": []}))
    assert main(["chaos", "render", "--config", str(config)]) == 2  # named: no chaos list


def _apply(tmp_path: Path, fake: FakeApiServer, workflow: dict[str, Any]) -> tuple[int, str]:
    path = tmp_path / "chaos.yaml"
    path.write_text(yaml.safe_dump_all([workflow]))
    parser = argparse.ArgumentParser(prog="chainlab")
    add_k8s_parser(parser.add_subparsers(dest="command", required=True))
    console = Console(record=True, width=220)
    with fake.running():
        args = parser.parse_args(
            ["k8s", "chaos", "apply", str(path), "--kubeconfig", str(kubeconfig(tmp_path, fake.port))]
        )
        code = run_k8s(args, console)
    return code, console.export_text()


def test_apply_creates_the_workflow_through_the_custom_objects_api(tmp_path: Path) -> None:
    (workflow,) = _render(TOY)
    fake = FakeApiServer()
    fake.add("POST", WORKFLOWS, recorded("chaos_workflow_created.json", 201))
    code, text = _apply(tmp_path, fake, workflow)
    assert code == 0, text
    (seen,) = fake.requests("POST", WORKFLOWS)
    assert seen.body == workflow
    assert "created Workflow chainlab-chaos-toy-chaos" in text


def test_without_chaos_mesh_pod_kills_are_deletions_on_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kill_only = {**TOY, "live": {"round_seconds": 0.01}, "chaos": [
        {"at": {"round": 5}, "kill": {"node": "miner-1"}},
        {"at": {"round": 0}, "partition": {"groups": [["miner-0"], ["miner-1"]]}},
    ]}  # fmt: skip
    (workflow,) = _render(kill_only)
    fake = FakeApiServer()  # no route for workflows: the API server's 404 for a resource it does not serve
    fake.add("GET", "/api/v1/namespaces/chainlab/pods", recorded("pods_miner_1.json"))
    fake.add("DELETE", "/api/v1/namespaces/chainlab/pods/chainlab-miner-1", recorded("pod_miner_1_deleted.json"))
    code, text = _apply(tmp_path, fake, workflow)
    assert code == 0, text
    (listed,) = fake.requests("GET", "/api/v1/namespaces/chainlab/pods")
    (selector,) = listed.query["labelSelector"]
    assert set(selector.split(",")) == {
        "app.kubernetes.io/instance=chainlab",
        "app.kubernetes.io/component=miner",
        "apps.kubernetes.io/pod-index=1",
    }
    assert len(fake.requests("DELETE", "/api/v1/namespaces/chainlab/pods/chainlab-miner-1")) == 1
    assert "Chaos Mesh is not installed" in text and "skipped at 0.0 s: NetworkChaos partition" in text
    assert "deleted pod chainlab-miner-1 at 0.1 s" in text


def test_apply_refuses_what_is_not_chaos_mesh(tmp_path: Path) -> None:
    code, text = _apply(tmp_path, FakeApiServer(), {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "x"}})
    assert code == 2 and "not a Chaos Mesh object of a known kind: v1/Pod" in text
