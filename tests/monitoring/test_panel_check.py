import json
from collections.abc import Mapping
from io import StringIO
from pathlib import Path

from rich.console import Console

from chainlab.monitoring.dashboard_queries import load, panel_queries
from chainlab.monitoring.dashboards import DASHBOARDS_DIR
from chainlab.monitoring.panel_check import Window, check_panels, print_report
from chainlab.monitoring.prometheus import PrometheusError, Series


class FakeClient:
    """Answers each expression from a table: a list of series, or an error to raise; unknown = no data."""

    def __init__(self, answers: Mapping[str, list[Series] | PrometheusError]) -> None:
        self.answers = answers
        self.asked: list[tuple[str, float, float, float]] = []

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        self.asked.append((expr, start, end, step))
        answer = self.answers.get(expr, [])
        if isinstance(answer, PrometheusError):
            raise answer
        return answer


RUN = Window(100.0, 160.0, 5.0)


def write_dashboard(folder: Path, panels: list[tuple[str, list[str]]]) -> None:
    dashboard = {
        "uid": "test",
        "title": "test",
        "templating": {"list": [{"name": "protocol", "allValue": ".*"}]},
        "panels": [
            {"type": "row", "title": "row", "id": 1, "panels": []},
            *(
                {
                    "type": "timeseries",
                    "title": title,
                    "targets": [{"refId": chr(65 + i), "expr": expr} for i, expr in enumerate(exprs)],
                }
                for title, exprs in panels
            ),
        ],
    }
    (folder / "test.json").write_text(json.dumps(dashboard))


ONE = [Series({"node": "miner-0"}, [(120.0, 1.0)])]
NO_POINTS = [Series({"node": "miner-0"}, [])]


def test_a_panel_has_data_when_any_query_returns_a_sample(tmp_path: Path) -> None:
    write_dashboard(tmp_path, [("both", ['a{protocol=~"$protocol"}', "b"]), ("one", ["c", "d"])])
    client = FakeClient({'a{protocol=~".*"}': ONE * 2, "b": ONE, "d": ONE})
    report = check_panels(client, tmp_path, RUN)
    assert report.ok and report.summary() == "2/2 panels have data"
    both, one = report.panels
    assert (both.dashboard, both.panel, both.has_data, both.series, both.failing) == ("test", "both", True, 3, ())
    assert one.has_data and one.series == 1
    assert [(f.ref_id, f.expr, f.error) for f in one.failing] == [("A", "c", None)]  # still listed
    assert client.asked == [(e, 100.0, 160.0, 5.0) for e in ('a{protocol=~".*"}', "b", "c", "d")]


def test_a_panel_whose_queries_return_nothing_has_no_data(tmp_path: Path) -> None:
    write_dashboard(tmp_path, [("empty", ["a", "b"]), ("full", ["c"])])
    report = check_panels(FakeClient({"c": ONE, "b": NO_POINTS}), tmp_path, RUN)
    assert not report.ok and report.summary() == "1/2 panels have data"
    (empty,) = report.empty
    assert empty.panel == "empty" and empty.series == 0
    assert [f.expr for f in empty.failing] == ["a", "b"]


def test_a_failing_query_is_reported_not_raised(tmp_path: Path) -> None:
    write_dashboard(tmp_path, [("broken", ["bad{"]), ("half", ["oops", "c"])])
    errors = {"bad{": PrometheusError("bad_data: parse error"), "oops": PrometheusError("unreachable")}
    report = check_panels(FakeClient({**errors, "c": ONE}), tmp_path, RUN)
    broken, half = report.panels
    assert not broken.has_data and broken.failing[0].error == "PrometheusError: bad_data: parse error"
    assert half.has_data and half.failing[0].error == "PrometheusError: unreachable"
    assert report.summary() == "1/2 panels have data" and not report.ok


def test_no_panels_is_not_ok(tmp_path: Path) -> None:
    report = check_panels(FakeClient({}), tmp_path, RUN)
    assert report.panels == () and not report.ok and report.summary() == "0/0 panels have data"


def test_the_committed_dashboards_are_all_checked(tmp_path: Path) -> None:
    expected = {(q.dashboard, q.panel_title) for f in DASHBOARDS_DIR.glob("*.json") for q in panel_queries(load(f))}
    everything = FakeClient({})
    report = check_panels(everything, DASHBOARDS_DIR, RUN)
    assert {(p.dashboard, p.panel) for p in report.panels} == expected
    assert len(everything.asked) == sum(len(panel_queries(load(f))) for f in DASHBOARDS_DIR.glob("*.json"))
    assert all(not panel.has_data for panel in report.panels)


def test_print_report_shows_panels_failing_expressions_and_summary(tmp_path: Path) -> None:
    write_dashboard(tmp_path, [("empty", ["rate(x[1m])"]), ("full", ["c"])])
    report = check_panels(FakeClient({"c": ONE}), tmp_path, RUN)
    out = StringIO()
    print_report(report, Console(file=out, width=200, color_system=None))
    text = out.getvalue()
    assert "empty" in text and "rate(x[1m])" in text and "1/2 panels have data" in text
