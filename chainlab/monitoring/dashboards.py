"""Grafana dashboards as code: chainlab's overview and network dashboards, built with grafana-foundation-sdk."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as dashboard_builders
from grafana_foundation_sdk.builders import prometheus as prometheus_builders
from grafana_foundation_sdk.builders import stat as stat_builders
from grafana_foundation_sdk.builders import statetimeline as statetimeline_builders
from grafana_foundation_sdk.builders import timeseries as timeseries_builders
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as common_models
from grafana_foundation_sdk.models import dashboard as dashboard_models

from chainlab.monitoring.dashboard_queries import MATCH_ALL

# The provisioned datasource (deploy/grafana/provisioning/datasources/prometheus.yml) has this fixed uid, so the
# JSON needs no datasource variable and loads unchanged in any Grafana that provisions it.
DATASOURCE = dashboard_models.DataSourceRef(type_val="prometheus", uid="prometheus")
DASHBOARDS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards"
GENERATOR = "python -m chainlab.monitoring.dashboards"

# Every series carries the scrape target's protocol and run labels (metrics9 contract): filter on both.
SELECTOR = 'protocol=~"$protocol", run=~"$run"'
RATE = "$__rate_interval"

PANEL_HEIGHT = 8  # grid rows; widths are 8, 12, 16 or 24 of the 24 columns, so each line fills exactly


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel and its legend."""

    expr: str
    legend: str = ""


Panel = timeseries_builders.Panel | stat_builders.Panel | statetimeline_builders.Panel


def _sel(*extra: str) -> str:
    """The label matchers every query starts from, plus extra ones."""
    return "{" + ", ".join((SELECTOR, *extra)) + "}"


def _targets(queries: Sequence[Query]) -> list[prometheus_builders.Dataquery]:
    return [
        prometheus_builders.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend or "__auto")
        .ref_id(chr(ord("A") + index))
        .datasource(DATASOURCE)
        for index, query in enumerate(queries)
    ]


def timeseries(title: str, description: str, queries: Sequence[Query], unit: str = "short", width: int = 8) -> Panel:
    """A time-series panel over queries."""
    panel = (
        timeseries_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(PANEL_HEIGHT)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common_models.LegendDisplayMode.LIST)
            .placement(common_models.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common_models.TooltipDisplayMode.MULTI)
            .sort(common_models.SortOrder.DESCENDING)
        )
    )
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def stat(title: str, description: str, queries: Sequence[Query], unit: str = "short", width: int = 4) -> Panel:
    """A single-value panel (last value of each series)."""
    panel = (
        stat_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .unit(unit)
        .span(width)
        .height(PANEL_HEIGHT)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def timeline(title: str, description: str, queries: Sequence[Query], width: int = 24) -> Panel:
    """A state timeline of 1/0 gauges, shown as up/cut."""
    mappings: list[dashboard_models.ValueMapping] = [
        dashboard_models.ValueMap(
            options={
                "1": dashboard_models.ValueMappingResult(text="up", color="green"),
                "0": dashboard_models.ValueMappingResult(text="cut", color="red"),
            }
        )
    ]
    panel = (
        statetimeline_builders.Panel()
        .title(title)
        .description(description)
        .datasource(DATASOURCE)
        .mappings(mappings)
        .span(width)
        .height(PANEL_HEIGHT)
        .legend(common_builders.VizLegendOptions().display_mode(common_models.LegendDisplayMode.LIST).show_legend(True))
        .tooltip(common_builders.VizTooltipOptions().mode(common_models.TooltipDisplayMode.SINGLE))
    )
    for target in _targets(queries):
        panel = panel.with_target(target)
    return panel


def _quantiles(metric: str, by: str, quantiles: Sequence[float], legend: str) -> list[Query]:
    """histogram_quantile queries of one histogram, one per quantile."""
    return [
        Query(
            f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}_bucket{_sel()}[{RATE}])))",
            f"p{round(q * 100)} {legend}",
        )
        for q in quantiles
    ]


def _variable(name: str, query: str) -> dashboard_builders.QueryVariable:
    """A multi-value query variable that starts on "All" (the regex MATCH_ALL)."""
    return (
        dashboard_builders.QueryVariable(name)
        .label(name)
        .query(query)
        .datasource(DATASOURCE)
        .refresh(dashboard_models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dashboard_models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(MATCH_ALL)
        .current(dashboard_models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def _variables() -> list[dashboard_builders.QueryVariable]:
    return [
        _variable("protocol", 'label_values(up{job="chainlab"}, protocol)'),
        _variable("run", 'label_values(up{job="chainlab", protocol=~"$protocol"}, run)'),
    ]


def _dashboard(uid: str, title: str, description: str, rows: Sequence[tuple[str, Sequence[Panel]]]) -> str:
    """Assemble rows of panels into a dashboard and return its JSON text (sorted keys, indent 2)."""
    builder = (
        dashboard_builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["chainlab"])
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .tooltip(dashboard_models.DashboardCursorSync.CROSSHAIR)
        .editable()
    )
    for variable in _variables():
        builder = builder.with_variable(variable)
    panel_id = 0
    for row_title, panels in rows:
        panel_id += 1
        builder = builder.with_row(dashboard_builders.Row(row_title).id(panel_id))
        for panel in panels:
            panel_id += 1
            builder = builder.with_panel(panel.id(panel_id))
    return json.dumps(builder.build(), cls=JSONEncoder, sort_keys=True, indent=2) + "\n"


def _rule(name: str) -> str:
    """A recording rule of deploy/prometheus/rules/recording.yml (they keep protocol and run), filtered."""
    return name + _sel()


def _task_accuracy(measures: str) -> str:
    """The requester's per-task accuracy gauge for the measures regex (ensemble, predict, base_*, ...)."""
    return "chainlab_bagchain_task_accuracy" + _sel(f'measure=~"{measures}"')


def overview() -> str:
    """The overview dashboard: chain, throughput, accuracy, cost and load of a run."""
    s = _sel()
    up = _sel('job="chainlab"')
    chain: list[Panel] = [
        timeseries(
            "Chain height per node",
            "Height of each node's best chain",
            [Query(f"max by (node) (chainlab_chain_height{s})", "{{node}}")],
        ),
        timeseries(
            "Distinct tips",
            "How many different best-chain tips the voting nodes hold (1 = agreement)",
            [Query(_rule("chainlab:tips:distinct"), "{{run}}")],
        ),
        timeseries(
            "Forks per node",
            "Blocks each node accepted off its best chain",
            [Query(f"max by (node) (chainlab_chain_forks{s})", "{{node}}")],
        ),
        timeseries(
            "Key Block interval p50/p90",
            "Wall time between consecutive best-chain heads, over all nodes (5 min window)",
            [
                Query(_rule("chainlab:key_block_interval_seconds:p50_5m"), "p50 {{run}}"),
                Query(_rule("chainlab:key_block_interval_seconds:p90_5m"), "p90 {{run}}"),
            ],
            unit="s",
        ),
        timeseries(
            "Rejections by kind/reason",
            "Objects the nodes rejected or dropped per second, network total",
            # The counter has no series until a first rejection: `or vector(0)` shows 0, not "no data".
            [Query(_rule("chainlab:block_rejections:rate1m") + " or vector(0)", "{{kind}} {{reason}}")],
            unit="ops",
        ),
        timeseries(
            "Internal errors",
            "Jobs that failed inside a process (retried; never a peer's fault) per second, by job",
            # The counter has no series until a first error: `or vector(0)` shows 0, not "no data".
            [Query(_rule("chainlab:internal_errors:rate1m") + " or vector(0)", "{{exported_job}}")],
            unit="ops",
        ),
        timeseries(
            "Targets up",
            "Prometheus' scrape health of every chainlab process (0 = down)",
            [Query(f"up{up}", "{{service}} {{node}}")],
        ),
        timeseries(
            "Round per node",
            "The protocol round each node's clock is in",
            [Query(f"max by (node) (chainlab_round{s})", "{{node}}")],
        ),
        stat(
            "Targets up by service",
            "Processes answering scrapes now",
            [Query(_rule("chainlab:targets_up:sum"), "{{service}}")],
            width=8,
        ),
    ]
    throughput: list[Panel] = [
        timeseries(
            "Blocks accepted/s by kind",
            "Blocks accepted per second, mean over the nodes (each node accepts every block)",
            [Query(_rule("chainlab:blocks_accepted:rate1m"), "{{kind}}")],
            unit="ops",
        ),
        timeseries(
            "Tasks completed",
            "Tasks the requesters saw finished on their chains",
            [Query(f"sum by (run) (chainlab_bagchain_tasks_completed_total{s})", "{{run}}")],
        ),
        timeseries(
            "Predictions/s",
            "Samples the requester labelled with its winning ensembles, per second",
            [Query(_rule("chainlab:predicted_samples:rate1m"), "{{run}}")],
            unit="ops",
        ),
        timeseries(
            "MiniBlocks per task",
            "MiniBlocks the miners created so far, and those the requester counted for a finished task",
            [
                Query(_rule("chainlab:miniblocks_created:by_task"), "created {{task}}"),
                Query(_rule("chainlab:task_miniblocks:by_task"), "generated {{task}}"),
            ],
        ),
        timeseries(
            "Gossip messages/s",
            "Gossip messages per second over all nodes, by direction",
            [Query(_rule("chainlab:gossip_messages:rate1m"), "{{direction}}")],
            unit="ops",
        ),
        timeseries(
            "Gossip bytes/s",
            "Gossip payload bytes per second over all nodes, by direction",
            [Query(_rule("chainlab:gossip_bytes:rate1m"), "{{direction}}")],
            unit="Bps",
        ),
        timeseries(
            "Storage bytes/s in/out",
            "Object bytes the storage service stored (op put = in) and served (op get = out)",
            [Query(_rule("chainlab:storage_bytes:rate1m"), "{{op}}")],
            unit="Bps",
            width=24,
        ),
    ]
    accuracy: list[Panel] = [
        timeseries(
            "Ensemble accuracy per task",
            "Metric_best of the Key Block that finished each task (chain), and the requester's measure of it",
            [
                Query(_rule("chainlab:ensemble_accuracy:by_task"), "chain {{task}}"),
                Query(f"max by (task) ({_task_accuracy('ensemble')})", "requester {{task}}"),
            ],
            unit="percentunit",
        ),
        timeseries(
            "Base accuracy min/mean/max",
            "Accuracy of each task's base models, as the requester measured them",
            [
                Query(
                    f"max by (task, measure) ({_task_accuracy('base_min|base_mean|base_max')})", "{{measure}} {{task}}"
                )
            ],
            unit="percentunit",
        ),
        timeseries(
            "Public and best possible accuracy",
            "A model trained on D_T alone (public), and every base model of the task ensembled (best possible)",
            [Query(f"max by (task, measure) ({_task_accuracy('public|best_possible')})", "{{measure}} {{task}}")],
            unit="percentunit",
        ),
        timeseries(
            "Predict accuracy",
            "Accuracy of the requester's Predict answers on the test split",
            [Query(f"max by (task) ({_task_accuracy('predict')})", "{{task}}")],
            unit="percentunit",
        ),
        timeseries(
            "MiniBlock wastage",
            "MiniBlocks of a finished task its winning ensemble left out",
            [Query(f"max by (task) (chainlab_bagchain_miniblock_wastage{s})", "{{task}}")],
            unit="none",
            width=16,
        ),
    ]
    cost: list[Panel] = [
        timeseries(
            "Chain CPU share per node",
            "CPU in the protocol core, the wire codec and PoW as a share of the process's CPU, since it started",
            [Query(_rule("chainlab:chain_cpu:share"), "{{node}}")],
            unit="percentunit",
        ),
        timeseries(
            "ML seconds per node",
            "Wall seconds of ML jobs (training, evaluation) since the node started",
            [Query(_rule("chainlab:ml_seconds:node"), "{{node}}")],
            unit="s",
        ),
        timeseries(
            "Job time p50/p90 by job",
            "How long TrainModel, EvaluateEnsemble, Mine (PoW), TrainSteps, ... took",
            # The metric's own `job` label is stored as exported_job (it clashes with the scrape job).
            _quantiles("chainlab_job_seconds", "exported_job", (0.5, 0.9), "{{exported_job}}"),
            unit="s",
        ),
        timeseries(
            "gRPC latency p50/p99 by method",
            "RPC handling time in the node services",
            [
                Query(_rule("chainlab:grpc_request_seconds:p50_1m"), "p50 {{service}} {{method}}"),
                Query(_rule("chainlab:grpc_request_seconds:p99_1m"), "p99 {{service}} {{method}}"),
            ],
            unit="s",
            width=12,
        ),
        timeseries(
            "gRPC refusals by method/reason",
            "Calls answered with an error per second (SubmitTask refusals carry their reason)",
            # The counter has no series until a first refusal: `or vector(0)` shows 0, not "no data".
            [
                Query(
                    f"sum by (method, reason) (rate(chainlab_grpc_refusals_total{s}[{RATE}])) or vector(0)",
                    "{{method}} {{reason}}",
                )
            ],
            unit="ops",
            width=12,
        ),
    ]
    failed = _sel('outcome="failure"')
    load: list[Panel] = [
        timeseries(
            "Locust requests/s by name",
            "Requests the load generator made per second",
            [Query(_rule("chainlab:load_requests:rate1m"), "{{name}}")],
            unit="reqps",
        ),
        timeseries(
            "Locust failures/s by name",
            "Requests that failed, per second",
            # A name has no failure series until its first failure: `or vector(0)` shows 0, not "no data".
            [Query(f"sum by (name) (rate(chainlab_load_requests_total{failed}[{RATE}])) or vector(0)", "{{name}}")],
            unit="reqps",
        ),
        stat(
            "Locust users",
            "Simulated users now",
            [Query(f"sum by (run) (chainlab_load_users{s})", "{{run}}")],
            width=8,
        ),
        timeseries(
            "Locust latency p50/p99 by name",
            "Response time the load generator saw",
            [
                Query(_rule("chainlab:load_request_seconds:p50_1m"), "p50 {{name}}"),
                Query(_rule("chainlab:load_request_seconds:p99_1m"), "p99 {{name}}"),
            ],
            unit="s",
            width=24,
        ),
    ]
    return _dashboard(
        "chainlab-overview",
        "chainlab overview",
        f"Chain, throughput, accuracy, cost and load of a chainlab run (generated by {GENERATOR})",
        [("Chain", chain), ("Throughput", throughput), ("Accuracy", accuracy), ("Cost", cost), ("Load", load)],
    )


def network() -> str:
    """The network dashboard: netem links, partitions, sidecar rejections and fetches, gossip per node."""
    s = _sel()
    links: list[Panel] = [
        timeseries(
            "Messages per link by outcome",
            "Gossip messages per second on each link (node -> peer): sent, dropped, failed, duplicate, delivered",
            [
                Query(
                    f"sum by (node, peer, outcome) (rate(chainlab_netem_messages_total{s}[{RATE}]))",
                    "{{node}}->{{peer}} {{outcome}}",
                )
            ],
            unit="ops",
            width=12,
        ),
        timeseries(
            "Messages by outcome, all links",
            "Gossip messages per second over every link, by outcome",
            [Query(f"sum by (outcome) (rate(chainlab_netem_messages_total{s}[{RATE}]))", "{{outcome}}")],
            unit="ops",
            width=12,
        ),
        timeseries(
            "Bytes per link",
            "Gossip payload bytes per second on each link (node -> peer)",
            [Query(_rule("chainlab:netem_bytes:rate1m"), "{{node}}->{{peer}}")],
            unit="Bps",
            width=16,
        ),
        stat(
            "Links cut now",
            "Links the emulator holds down (partitions, cuts)",
            [Query(f"sum by (run) (1 - chainlab_netem_link_up{s})", "{{run}}")],
            width=8,
        ),
        timeline(
            "Link up/down (partitions)",
            "Each link's state: up, or cut by a partition",
            [Query(f"min by (node, peer) (chainlab_netem_link_up{s})", "{{node}}->{{peer}}")],
        ),
    ]
    sidecars: list[Panel] = [
        timeseries(
            "Node rejections at sidecars",
            "Deliveries a sidecar's own node refused, per second",
            # The counter has no series until a first refusal: `or vector(0)` shows 0, not "no data".
            [
                Query(
                    f"sum by (node, reason) (rate(chainlab_netem_node_rejections_total{s}[{RATE}])) or vector(0)",
                    "{{node}} {{reason}}",
                )
            ],
            unit="ops",
            width=12,
        ),
        timeseries(
            "Fetches by outcome",
            "Fetches each sidecar routed, per second",
            [Query(f"sum by (node, outcome) (rate(chainlab_netem_fetches_total{s}[{RATE}]))", "{{node}} {{outcome}}")],
            unit="ops",
            width=12,
        ),
    ]
    gossip: list[Panel] = [
        timeseries(
            "Gossip messages/s per node",
            "Gossip messages each node sent and received per second",
            [
                Query(
                    f"sum by (node, direction) (rate(chainlab_gossip_messages_total{s}[{RATE}]))",
                    "{{node}} {{direction}}",
                )
            ],
            unit="ops",
            width=12,
        ),
        timeseries(
            "Gossip bytes/s per node",
            "Gossip payload bytes each node sent and received per second",
            [
                Query(
                    f"sum by (node, direction) (rate(chainlab_gossip_bytes_total{s}[{RATE}]))",
                    "{{node}} {{direction}}",
                )
            ],
            unit="Bps",
            width=12,
        ),
        timeseries(
            "Bytes on the wire/s by kind",
            "What reached the nodes per second as results.json's wire_bytes counts it: model or gradient payload, "
            "control, and answers served (models, datasets) or storage traffic",
            [Query(f"sum by (kind) (rate(chainlab_wire_bytes{s}[{RATE}]))", "{{kind}}")],
            unit="Bps",
            width=24,
        ),
    ]
    return _dashboard(
        "chainlab-network",
        "chainlab network",
        f"The emulated network of a chainlab run: links, partitions, sidecars, gossip (generated by {GENERATOR})",
        [("Links", links), ("Sidecars", sidecars), ("Gossip per node", gossip)],
    )


DASHBOARDS = {"overview.json": overview, "network.json": network}


def render() -> dict[str, str]:
    """Every dashboard's JSON text by file name."""
    return {name: build() for name, build in DASHBOARDS.items()}


def write(out_dir: Path) -> list[Path]:
    """Write every dashboard into out_dir; returns the paths written."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def drifted(out_dir: Path) -> list[Path]:
    """The dashboard files in out_dir that are missing or differ from what this module builds."""
    return [
        out_dir / name
        for name, text in render().items()
        if not (out_dir / name).is_file() or (out_dir / name).read_text(encoding="utf-8") != text
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Write the dashboards (default deploy/grafana/dashboards/), or with --check report drift: exit 1."""
    parser = argparse.ArgumentParser(prog=GENERATOR, description=main.__doc__)
    parser.add_argument("--out", type=Path, default=DASHBOARDS_DIR, help="folder of the dashboard JSON files")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from what the code builds")
    args = parser.parse_args(argv)
    if args.check:
        stale = drifted(args.out)
        for path in stale:
            print(
                f"{path} differs from what chainlab/monitoring/dashboards.py builds; run {GENERATOR}", file=sys.stderr
            )
        return 1 if stale else 0
    for path in write(args.out):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
