import itertools
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import REGISTRY

import chainlab.live.metrics  # noqa: F401  (registers the generic families in the default REGISTRY)
from chainlab.monitoring import dashboards
from chainlab.monitoring.dashboard_queries import load, panel_queries
from chainlab.monitoring.dashboards import DASHBOARDS_DIR
from chainlab.scenarios.registry import get

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "deploy" / "prometheus" / "rules"
FILES = sorted(dashboards.DASHBOARDS)
UIDS = {"overview.json": "chainlab-overview", "network.json": "chainlab-network"}
# Exported by the locust process from its own registry (loadtest/locustfile.py), which is not imported here.
LOAD_METRICS = {
    "chainlab_load_requests_total",
    "chainlab_load_request_seconds_bucket",
    "chainlab_load_request_seconds_sum",
    "chainlab_load_request_seconds_count",
    "chainlab_load_users",
}
SUFFIXES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count"),
    "info": ("_info",),
}
# A metric name and its label matchers. Every query here writes its matchers, so each metric name is found.
SELECTOR = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}")


def contract_names() -> set[str]:
    names = {"up"} | LOAD_METRICS
    for family in REGISTRY.collect():
        if family.name.startswith("chainlab_"):
            names.update(family.name + suffix for suffix in SUFFIXES[family.type])
    for declared in get("bagchain").metric_families:
        if declared.kind == "histogram":
            names.update(declared.name + suffix for suffix in SUFFIXES["histogram"])
        else:
            names.add(declared.name)
    return names


def rule_names() -> set[str]:
    names: set[str] = set()
    for path in RULES_DIR.glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            names.update(rule["record"] for rule in group["rules"] if "record" in rule)
    return names


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.fixture(params=FILES)
def committed(request: pytest.FixtureRequest) -> dict[str, Any]:
    return load(DASHBOARDS_DIR / request.param) | {"_file": request.param}


def test_committed_files_are_what_the_code_builds(tmp_path: Path) -> None:
    written = dashboards.write(tmp_path)
    assert sorted(path.name for path in written) == FILES
    for path in written:
        committed = (DASHBOARDS_DIR / path.name).read_text()
        assert path.read_text() == committed, f"{path.name} drifted: run python -m chainlab.monitoring.dashboards"
    assert dashboards.main(["--check"]) == 0


def test_check_names_the_drifted_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    dashboards.write(tmp_path)
    (tmp_path / "network.json").write_text("{}\n")
    assert dashboards.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "network.json" in err and "overview.json" not in err


def test_files_are_sorted_indented_json_with_a_trailing_newline() -> None:
    for name in FILES:
        text = (DASHBOARDS_DIR / name).read_text()
        assert text.endswith("}\n")
        assert text == json.dumps(json.loads(text), sort_keys=True, indent=2) + "\n"


def test_uid_title_and_variables(committed: dict[str, Any]) -> None:
    assert committed["uid"] == UIDS[str(committed["_file"])]
    assert committed["title"]
    variables = {v["name"]: v for v in committed["templating"]["list"]}
    assert set(variables) == {"protocol", "run"}
    assert variables["protocol"]["query"] == 'label_values(up{job="chainlab"}, protocol)'
    assert all(v["includeAll"] and v["allValue"] == ".*" for v in variables.values())


def test_panel_ids_unique_and_every_panel_queries_prometheus(committed: dict[str, Any]) -> None:
    every = panels(committed)
    ids = [panel["id"] for panel in every]
    assert len(ids) == len(set(ids)) and all(isinstance(i, int) and i > 0 for i in ids)
    titles = [panel["title"] for panel in every if panel["type"] != "row"]
    assert len(titles) == len(set(titles)), "panel_check groups queries by title"
    for panel in every:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        targets = panel["targets"]
        assert targets, panel["title"]
        for target in targets:
            assert target["expr"].strip(), panel["title"]
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
            assert target["refId"]
        assert panel["datasource"] == {"type": "prometheus", "uid": "prometheus"}


def test_panels_stay_in_the_grid_and_do_not_overlap(committed: dict[str, Any]) -> None:
    boxes = [(panel["title"], panel["gridPos"]) for panel in panels(committed)]
    for title, box in boxes:
        assert box["x"] >= 0 and box["w"] > 0 and box["h"] > 0 and box["x"] + box["w"] <= 24, title
    for (a_title, a), (b_title, b) in itertools.combinations(boxes, 2):
        apart = (
            a["x"] + a["w"] <= b["x"]
            or b["x"] + b["w"] <= a["x"]
            or a["y"] + a["h"] <= b["y"]
            or b["y"] + b["h"] <= a["y"]
        )
        assert apart, f"{a_title!r} overlaps {b_title!r}"


def test_every_selector_filters_protocol_and_run(committed: dict[str, Any]) -> None:
    for panel in panels(committed):
        for target in panel.get("targets", []):
            selectors = SELECTOR.findall(target["expr"])
            assert selectors, target["expr"]
            for _name, matchers in selectors:
                assert 'protocol=~"$protocol"' in matchers and 'run=~"$run"' in matchers, target["expr"]


def test_every_metric_is_in_the_contract_or_a_recording_rule(committed: dict[str, Any]) -> None:
    known = contract_names() | rule_names()
    used = {name for query in panel_queries(committed) for name, _ in SELECTOR.findall(query.expr)}
    assert used, "no metric found"
    assert used <= known, f"not in the metric contract nor a recording rule: {sorted(used - known)}"


def test_recording_rules_used_exist() -> None:
    rules = rule_names()
    used = {
        name
        for file in FILES
        for query in panel_queries(load(DASHBOARDS_DIR / file))
        for name, _ in SELECTOR.findall(query.expr)
        if ":" in name
    }
    assert used, "the dashboards read recording rules"
    assert used <= rules, sorted(used - rules)


def test_panel_queries_substitutes_variables_with_match_all() -> None:
    dashboard = {
        "uid": "d",
        "templating": {"list": [{"name": "protocol", "allValue": ".*"}, {"name": "run"}]},
        "panels": [
            {
                "type": "row",
                "title": "r",
                "panels": [{"title": "nested", "targets": [{"refId": "A", "expr": 'x{a=~"$run"}'}]}],
            },
            {
                "title": "p",
                "targets": [
                    {"refId": "A", "expr": 'rate(m{protocol=~"${protocol}"}[$__rate_interval]) + $unknown'},
                    {"refId": "B", "expr": ""},
                ],
            },
        ],
    }
    queries = panel_queries(dashboard, rate_interval="2m")
    assert [(q.dashboard, q.panel_title, q.ref_id) for q in queries] == [("d", "nested", "A"), ("d", "p", "A")]
    assert queries[0].expr == 'x{a=~".*"}'
    assert queries[1].expr == 'rate(m{protocol=~".*"}[2m]) + $unknown'


def test_no_variable_is_left_for_prometheus() -> None:
    for file in FILES:
        for query in panel_queries(load(DASHBOARDS_DIR / file)):
            assert "$" not in query.expr, query


def test_or_vector_zero_only_on_counters_that_start_absent() -> None:
    allowed = ("rejections", "internal_errors", "refusals", 'outcome="failure"')
    for file in FILES:
        for query in panel_queries(load(DASHBOARDS_DIR / file)):
            if "vector(0)" in query.expr:
                assert any(word in query.expr for word in allowed), query
