"""promtool checks of deploy/prometheus: the template and a runner-rendered config, the rules and their unit tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chainlab.monitoring.prometheus import DEPLOY_DIR, PrometheusServer, ScrapeTarget

RULES = sorted((DEPLOY_DIR / "rules").glob("*.yml"))
RULE_TESTS = sorted((DEPLOY_DIR / "tests").glob("*.yml"))
ALERTS = (
    "ChainlabTipsDisagree",
    "ChainlabNoKeyBlock",
    "ChainlabRejectionSpike",
    "ChainlabInternalErrors",
    "ChainlabNodeDown",
)


def promtool(*args: str) -> str:
    """Run promtool; fail the test with its output when it fails."""
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool is not installed: run `make install-monitoring` (apt-get install prometheus)")
    done = subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


@pytest.mark.slow
def test_template_config_is_valid() -> None:
    output = promtool("check", "config", str(DEPLOY_DIR / "prometheus.yml"))
    assert "2 rule files found" in output


@pytest.mark.slow
def test_rendered_config_is_valid(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path, scrape_interval_seconds=0.5)
    server.set_targets([ScrapeTarget("127.0.0.1:9", {"service": "miner", "protocol": "bagchain"})])
    config = server.write_config()
    rendered = yaml.safe_load(config.read_text())
    assert rendered["global"]["scrape_interval"] == "500ms"
    assert all(Path(rule).is_absolute() for rule in rendered["rule_files"])
    output = promtool("check", "config", str(config))
    assert "2 rule files found" in output and "WARNING" not in output


@pytest.mark.slow
def test_rules_are_valid() -> None:
    assert RULES, "no rule files"
    promtool("check", "rules", *map(str, RULES))


@pytest.mark.slow
def test_rule_unit_tests_pass() -> None:
    assert RULE_TESTS, "no promtool rule tests"
    promtool("test", "rules", *map(str, RULE_TESTS))


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    alerts = {
        r["alert"]
        for g in yaml.safe_load((DEPLOY_DIR / "rules" / "alerts.yml").read_text())["groups"]
        for r in g["rules"]
    }
    assert alerts == set(ALERTS)
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        for case in yaml.safe_load(path.read_text()).get("tests", []):
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing == alerts and quiet == alerts


def test_every_rule_is_named_and_labelled() -> None:
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    assert rule["record"].startswith("chainlab:") and rule["record"].count(":") == 2
                else:
                    assert rule["labels"]["severity"] in ("warning", "critical")
                    assert {"summary", "description"} <= set(rule["annotations"])
