"""Reading dashboards back: every panel's PromQL from a dashboard's JSON, template variables substituted as
Grafana substitutes them. Only the standard library, so checking dashboards needs no Grafana SDK."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

# "All" in a template variable means this regex; panel_queries substitutes it the same way Grafana does.
MATCH_ALL = ".*"
# What panel_queries puts for Grafana's built-in interval variables: four samples at a 15 s scrape interval.
CHECK_RATE_INTERVAL = "1m"
_BUILTIN_INTERVALS = ("__rate_interval", "__interval", "__range")


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, read back from a dashboard's JSON, template variables substituted."""

    dashboard: str
    panel_title: str
    ref_id: str
    expr: str


def _items(value: object) -> Iterator[dict[str, object]]:
    if isinstance(value, list):
        yield from (item for item in value if isinstance(item, dict))


def _panels(dashboard: Mapping[str, object]) -> Iterator[dict[str, object]]:
    """Every non-row panel, including those nested in collapsed rows."""
    for panel in _items(dashboard.get("panels")):
        if panel.get("type") == "row":
            yield from _items(panel.get("panels"))
        else:
            yield panel


def panel_queries(dashboard: Mapping[str, object], rate_interval: str = CHECK_RATE_INTERVAL) -> list[PanelQuery]:
    """Every target of every panel in a dashboard's JSON, template variables replaced by their "All" regex
    (Grafana's allValue, else ".*") and interval built-ins by rate_interval, ready for Prometheus."""
    values = {name: rate_interval for name in _BUILTIN_INTERVALS}
    templating = dashboard.get("templating")
    if isinstance(templating, dict):
        for variable in _items(templating.get("list")):
            all_value = variable.get("allValue")
            values[str(variable.get("name"))] = all_value if isinstance(all_value, str) and all_value else MATCH_ALL

    def substitute(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return values.get(name, match.group(0))  # an unknown variable stays, so Prometheus reports it

    name = str(dashboard.get("uid") or dashboard.get("title") or "")
    found = []
    for panel in _panels(dashboard):
        for target in _items(panel.get("targets")):
            expr = target.get("expr")
            if isinstance(expr, str) and expr:
                found.append(
                    PanelQuery(
                        dashboard=name,
                        panel_title=str(panel.get("title", "")),
                        ref_id=str(target.get("refId", "")),
                        expr=re.sub(r"\$\{(\w+)\}|\$(\w+)", substitute, expr),
                    )
                )
    return found


def load(path: Path) -> dict[str, object]:
    """A dashboard JSON file as a dict."""
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: a dashboard is a JSON object")
    return loaded
