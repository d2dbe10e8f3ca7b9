"""A real Prometheus on loopback scraping an in-test exporter: targets, queries, a recording rule, plots."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from chainlab.monitoring.plots import write_run_plots
from chainlab.monitoring.prometheus import (
    PrometheusClient,
    PrometheusError,
    PrometheusServer,
    ScrapeTarget,
    duration,
    render_config,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LABELS = {"service": "miner", "protocol": "bagchain", "role": "miner", "node": "miner-0", "run": "test"}


class FakeNode(Collector):
    """Contract-named series whose counters grow at a known rate (10 KeyBlocks/s, 1000 gossip bytes/s out)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        elapsed = time.monotonic() - self.started
        blocks = CounterMetricFamily("chainlab_blocks_accepted", "Blocks accepted, by kind", labels=["kind"])
        blocks.add_metric(["KeyBlock"], 10 * elapsed)
        gossip = CounterMetricFamily("chainlab_gossip_bytes", "Gossip bytes, by direction", labels=["direction"])
        gossip.add_metric(["out"], 1000 * elapsed)
        height = GaugeMetricFamily("chainlab_chain_height", "Height of this node's best chain", value=5)
        tip = GaugeMetricFamily("chainlab_chain_tip", "This node's tip", labels=["tip"])
        tip.add_metric(["00112233aabbccdd"], 1)
        accuracy = GaugeMetricFamily("chainlab_bagchain_ensemble_accuracy", "Metric_best", labels=["task"])
        accuracy.add_metric(["t0"], 0.9)
        yield from (blocks, gossip, height, tip, accuracy)


@pytest.fixture
def exporter() -> Iterator[str]:
    """A prometheus_client HTTP endpoint on an ephemeral loopback port; its "127.0.0.1:PORT"."""
    registry = CollectorRegistry()
    registry.register(FakeNode())
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_durations() -> None:
    assert [duration(s) for s in (1.0, 0.5, 15, 0.25)] == ["1s", "500ms", "15s", "250ms"]


def test_render_config_points_at_the_run(tmp_path: Path) -> None:
    config = render_config(tmp_path / "targets", 2.0)
    assert config["global"] == {"scrape_interval": "2s", "scrape_timeout": "2s", "evaluation_interval": "2s"}
    jobs = config["scrape_configs"]
    assert isinstance(jobs, list)
    assert jobs[0]["file_sd_configs"][0]["files"] == [str(tmp_path / "targets" / "*.json")]


def test_targets_file_is_file_sd_json(tmp_path: Path) -> None:
    server = PrometheusServer(tmp_path)
    server.set_targets([ScrapeTarget("127.0.0.1:1", {"node": "miner-0"})])
    server.add_target(ScrapeTarget("127.0.0.1:2", {"node": "miner-1"}))
    text = server.targets_path.read_text()
    assert '"127.0.0.1:2"' in text and '"miner-0"' in text
    assert [p.name for p in server.targets_path.parent.iterdir()] == ["chainlab.json"]


def test_missing_binary_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(PrometheusError, match="make install-monitoring"):
        PrometheusServer(tmp_path, binary="no-such-prometheus-binary").start()


@pytest.mark.slow
def test_server_scrapes_queries_records_and_plots(tmp_path: Path, exporter: str) -> None:
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run `make install-monitoring` (apt-get install prometheus)")
    server = PrometheusServer(tmp_path / "prom", scrape_interval_seconds=0.5)
    with server:
        started = time.time()
        server.add_target(ScrapeTarget(exporter, LABELS))  # after start: file_sd picks it up
        client = PrometheusClient(server.url)
        client.wait_for_targets(1, timeout_seconds=15)

        [height] = client.wait_for_series("chainlab_chain_height", timeout_seconds=5)
        assert height.value == 5
        assert {k: height.labels[k] for k in LABELS} == LABELS

        # Recording rules evaluate against the scraped series (and keep run/protocol).
        [tips] = client.wait_for_series("chainlab:tips:distinct", timeout_seconds=10)
        assert tips.value == 1
        assert tips.labels == {"__name__": "chainlab:tips:distinct", "run": "test", "protocol": "bagchain"}
        # A series younger than the rule's 1m window gives a rate scaled down by its age (rate() divides by the
        # window); irate() over the last two scrapes of the same counter shows the true 10/s.
        [recorded] = client.wait_for_series('chainlab:blocks_accepted:rate1m{kind="KeyBlock"}', timeout_seconds=10)
        assert recorded.value > 0
        [rate] = client.query("irate(chainlab_blocks_accepted_total[5s])")
        assert 5 < rate.value < 15

        end = time.time()
        [series] = client.query_range("chainlab_chain_height", started, end, 0.5)
        assert series.points and all(v == 5 for _t, v in series.points)
        assert all(started <= t <= end for t, _v in series.points)

        with pytest.raises(PrometheusError, match="sum\\("):
            client.query("sum(")
        groups = {g["name"] for g in client.rule_groups()}
        assert {"chainlab.chain", "chainlab.alerts"} <= groups
        assert isinstance(client.alerts(), list)

        files = write_run_plots(client, started, end, tmp_path / "plots", labels={"run": "test"}, rate_window="5s")
        assert sorted(p.name for p in files) == [
            "accuracy.png",
            "chain.png",
            "throughput.png",
        ]  # no locust: no load.png
        for path in files:
            assert path.read_bytes()[:8] == PNG_MAGIC
        # With no extra matchers every query must still parse (e.g. `{method="Predict",}`).
        assert len(write_run_plots(client, started, end, tmp_path / "all")) == 3
    assert not server.log_path.read_text().count("level=error")


@pytest.mark.slow
def test_a_relative_run_folder_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`chainlab up --out runs/x` passes a relative folder; the server runs inside it and must still find it."""
    monkeypatch.chdir(tmp_path)
    with PrometheusServer(Path("runs") / "prometheus") as server:
        assert PrometheusClient(server.url).query("vector(1)")[0].value == 1.0
