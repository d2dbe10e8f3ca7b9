"""chainlab load and bench-load: shapes, locust's CSV, the benchmark's summaries; one short real locust run (slow)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from chainlab.live.bench_load import markdown, network_figures, summarise_predict, with_requester
from chainlab.live.launcher import wait_healthy
from chainlab.live.load import (
    LOCUSTFILE,
    LocustRun,
    locust_command,
    parse_exceptions_csv,
    parse_failures_csv,
    parse_stats_csv,
    parse_timespan,
    run_locust,
    spike_tick,
    step_tick,
)
from chainlab.live.processes import free_ports

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
STATS = f"""{HEADER}
grpc,Predict,42,0,5,647.1,2,4120,18.0,3.5,0.0,5,7,10,12,4100,4100,4100,4100,4100,4100,4100
grpc,SubmitTask.refused,0,0,0,0.0,0,0,0.0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
grpc,Tip,81,2,2,2.3,0,17,130.0,6.76,0.17,2,2,2,3,4,8,15,18,18,18,18
,Aggregated,123,2,2,223.9,0,4120,90.1,10.26,0.17,2,3,4,5,10,21,4100,4100,4100,4100,4100
"""


def test_timespans() -> None:
    assert [parse_timespan(t) for t in ("40", "40s", "2m", "1m30s", "1h", "2.5")] == [40, 40, 120, 90, 3600, 2.5]
    for bad in ("", "forty", "10x"):
        with pytest.raises(ValueError):
            parse_timespan(bad)


def test_step_shape_rises_in_four_steps_then_stops() -> None:
    ticks = [step_tick(t, 20, 40.0) for t in (0, 9.9, 10, 20, 30, 39.9, 40)]
    assert ticks == [(5, 5.0), (5, 5.0), (10, 5.0), (15, 5.0), (20, 5.0), (20, 5.0), None]
    # Fewer users than steps: one user per step, never above the peak.
    assert [step_tick(t, 2, 8.0) for t in (0, 2, 4, 6)] == [(1, 1.0), (2, 1.0), (2, 1.0), (2, 1.0)]


def test_spike_shape_is_baseline_spike_baseline() -> None:
    ticks = [spike_tick(t, 20, 50.0) for t in (0, 19.9, 20, 29.9, 30, 49.9, 50)]
    assert ticks == [(4, 20.0), (4, 20.0), (20, 20.0), (20, 20.0), (4, 20.0), (4, 20.0), None]
    assert spike_tick(0, 3, 10.0) == (1, 3.0)  # a baseline of at least one user


def test_stats_csv(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats.csv"
    path.write_text(STATS)
    parsed = parse_stats_csv(path)
    by_name = parsed["by_name"]
    assert isinstance(by_name, dict)
    assert by_name["Predict"] == {
        "requests": 42, "failures": 0, "rps": 3.5, "p50_ms": 5.0, "p99_ms": 4100.0, "average_ms": 647.1,
    }  # fmt: skip
    assert by_name["SubmitTask.refused"]["p99_ms"] is None  # N/A: no requests
    assert parsed["total"] == {
        "requests": 123, "failures": 2, "rps": 10.26, "p50_ms": 2.0, "p99_ms": 4100.0, "average_ms": 223.9,
    }  # fmt: skip


def test_failures_csv(tmp_path: Path) -> None:
    assert parse_failures_csv(tmp_path / "missing.csv") == []
    path = tmp_path / "locust_failures.csv"
    path.write_text("Method,Name,Error,Occurrences\ngrpc,Tip,<_InactiveRpcError UNAVAILABLE>,2\n")
    assert parse_failures_csv(path) == [
        {"method": "grpc", "name": "Tip", "error": "<_InactiveRpcError UNAVAILABLE>", "occurrences": 2}
    ]


def test_exceptions_csv(tmp_path: Path) -> None:
    assert parse_exceptions_csv(tmp_path / "missing.csv") == (0, [])
    path = tmp_path / "locust_exceptions.csv"
    path.write_text('Count,Message,Traceback,Nodes\n10,\'node_id\',"  File ""x.py"", line 1",local\n2,boom,tb,local\n')
    assert parse_exceptions_csv(path) == (12, [{"count": 10, "message": "'node_id'"}, {"count": 2, "message": "boom"}])


def test_locust_command_is_headless_bounded_and_this_python(tmp_path: Path) -> None:
    command = locust_command(LocustRun(users=3, run_time="9s", user_classes=("RequesterUser",)), tmp_path / "x")
    assert command[:3] == [sys.executable, "-m", "locust"]
    assert command[command.index("-f") + 1] == str(LOCUSTFILE) and LOCUSTFILE.exists()
    for flag, value in (("-u", "3"), ("-t", "9s"), ("--csv", str(tmp_path / "x")), ("--html", f"{tmp_path}/x.html")):
        assert command[command.index(flag) + 1] == value
    assert "--headless" in command and command[-1] == "RequesterUser"
    with pytest.raises(ValueError, match="unknown load shape"):
        locust_command(LocustRun(shape="sawtooth"), tmp_path / "x")


def test_with_requester_moves_only_the_requester() -> None:
    nodes = [{"role": "requester", "listen": "a"}, {"role": "validator", "listen": "b"}]
    plan: dict[str, object] = {"storage": "s", "nodes": nodes}
    moved = with_requester(plan, "127.0.0.1:9")
    assert moved["nodes"] == [{"role": "requester", "listen": "127.0.0.1:9"}, {"role": "validator", "listen": "b"}]
    assert nodes[0]["listen"] == "a" and moved["storage"] == "s"  # the original plan is untouched


def test_network_figures() -> None:
    results = {
        "round_seconds": 0.1,
        "tips_agree": True,
        "truncated": False,
        "wall_seconds": 100.0,
        "protocol_results": {
            "ensemble_accuracy": 0.77,
            "heights": [{"round": 200, "ensemble_accuracy": 0.76}, {"round": 400, "ensemble_accuracy": 0.78}],
        },
    }
    figures = network_figures(results)
    assert figures["key_blocks"] == 2 and figures["key_blocks_per_round"] == pytest.approx(2 / 400)
    assert figures["key_blocks_per_wall_second"] == pytest.approx(2 / 40.0)
    assert figures["ensemble_accuracy_by_height"] == [0.76, 0.78]
    assert network_figures({"protocol_results": {}})["key_blocks_per_round"] is None


def test_predict_summary_and_markdown() -> None:
    def row(rps: float, p99: float) -> dict[str, float | int | None]:
        return {"requests": 100, "failures": 0, "rps": rps, "p50_ms": 3.0, "p99_ms": p99}

    runs = {"requester": [row(90, 30), row(80, 60), row(85, 40)], "noop": [row(100, 5), row(95, 6), row(99, 4)]}
    summary = summarise_predict(runs, LocustRun(users=10, run_time="15s"))
    assert summary["median"] == {
        "requester": {"rps": 85.0, "p50_ms": 3.0, "p99_ms": 40.0},
        "noop": {"rps": 99.0, "p50_ms": 3.0, "p99_ms": 5.0},
    }
    assert summary["rps_ratio"] == pytest.approx(85 / 99)
    assert summary["goals"] == {"rps_ratio_min": 0.7, "rps_ratio_met": True, "p99_ms_max": 50.0, "p99_met": True}
    network = network_figures({"protocol_results": {"heights": [{"round": 10}]}, "round_seconds": 1.0})
    text = markdown({"experiment": "demo", "predict": summary, "network": {"without_load": network}})
    assert "| requester | 85.0 | 3 | 40 |" in text and "| ratio real / no-op | 0.86 |" in text
    assert "medians of 3 runs" in text


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_short_locust_run_against_the_noop_requester(tmp_path: Path) -> None:
    """~8 s of locust (step shape) on a real server: requests, no failures, and the exporter's counter served."""
    grpc_port, metrics_port = free_ports(2)
    address = f"127.0.0.1:{grpc_port}"
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {"storage": "", "data": {}, "nodes": [{"role": "requester", "listen": address, "node_id": "ab" * 32}]}
        )
    )
    server = subprocess.Popen([sys.executable, "-m", "chainlab.live.noop_requester", "--listen", address])
    try:
        asyncio.run(wait_healthy(address, timeout=30.0, alive=lambda: server.poll() is None))
        run = LocustRun(users=4, run_time="8s", shape="step", user_classes=("RequesterUser",), submit_seconds=2.0)
        load, exported = asyncio.run(_run_and_scrape(run, plan, tmp_path / "locust", metrics_port))
    finally:
        server.terminate()
        server.wait(timeout=10)
    total, by_name = load["total"], load["by_name"]
    assert isinstance(total, dict) and isinstance(by_name, dict)
    assert total["requests"] > 0 and total["failures"] == 0, load.get("failure_kinds")
    assert load["exceptions"] == 0, load.get("exception_kinds")
    assert by_name["Predict"]["requests"] > 0 and by_name["TaskStatus"]["requests"] > 0
    # UNIMPLEMENTED is a documented refusal: a success under SubmitTask.refused, and the process stops submitting.
    assert "SubmitTask" not in by_name and by_name["SubmitTask.refused"]["requests"] == 1
    assert 'chainlab_load_requests_total{name="Predict",outcome="success",request_type="grpc"}' in exported
    assert "chainlab_load_users" in exported
    assert (tmp_path / "locust.html").exists()


async def _run_and_scrape(run: LocustRun, plan: Path, prefix: Path, port: int) -> tuple[dict[str, object], str]:
    """Run locust; while it runs, read its exporter until a Predict has been counted."""
    locust = asyncio.create_task(run_locust(run, plan, prefix, metrics_port=port))
    exported = ""
    while not locust.done() and "Predict" not in exported:
        await asyncio.sleep(0.5)
        try:
            exported = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
        except OSError:
            continue  # not listening yet
    return await locust, exported


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as reply:
        return str(reply.read().decode())


def test_median_figures_of_several_runs() -> None:
    from chainlab.live.bench_load import median_figures

    runs = [
        {"key_blocks": 3, "key_blocks_per_wall_second": 0.04, "ensemble_accuracy": 0.77, "tips_agree": True},
        {"key_blocks": 3, "key_blocks_per_wall_second": 0.03, "ensemble_accuracy": 0.76, "tips_agree": True},
        {"key_blocks": 3, "key_blocks_per_wall_second": 0.05, "ensemble_accuracy": 0.78, "tips_agree": False},
    ]
    medians = median_figures(runs)
    assert medians["runs"] == 3 and medians["key_blocks_per_wall_second"] == 0.04
    assert medians["ensemble_accuracy"] == 0.77 and medians["key_blocks_per_round"] is None
    assert medians["tips_agree"] is False and medians["truncated"] is False
