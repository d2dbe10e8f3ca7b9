"""`make soak`'s verdict on a finished chaos run under load: tasks completed, crashes, blocks lost, tips agree
(written to soak.json beside results.json, and as a table)."""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def failure_codes(failures_csv: Path) -> dict[str, int]:
    """locust's failed calls by gRPC status code (from locust_failures.csv); empty when there is no file."""
    if not failures_csv.exists():
        return {}
    counts: dict[str, int] = {}
    with failures_csv.open(newline="") as f:
        for row in csv.DictReader(f):
            found = re.search(r"StatusCode\.(\w+)", row.get("Error", ""))
            code = found.group(1) if found else "OTHER"
            counts[code] = counts.get(code, 0) + int(row.get("Occurrences", "0") or 0)
    return counts


def verdict(results: Mapping[str, Any], tasks: int, failures: Mapping[str, int] | None = None) -> dict[str, Any]:
    """What the soak measured. crashes: services that exited other than cleanly at the end (a chaos kill is
    followed by a restart, so the final exit code is the restarted process's); blocks lost: heights missing from
    the observer's final chain below its tip; caught up: every restarted or healed node reached the others.
    Load failures are expected only as UNAVAILABLE (a killed node, or one catching up that says `not_ready`);
    any other code (INTERNAL, INVALID_ARGUMENT, ...) fails the soak. tasks completed counts run-time tasks too
    (locust submits some), so it must reach the config's tasks, not equal them."""
    heights = [int(row["height"]) for row in results.get("protocol_results", {}).get("heights", [])]
    top = max(heights, default=0)
    codes = results.get("exit_codes", {})
    never = sorted(
        node
        for e in results.get("chaos", [])
        for node, after in e.get("caught_up_after_rounds", {}).items()
        if after is None
    )
    return {
        "tasks": tasks,
        "tasks_completed": len(heights),
        "crashes": sorted(name for name, code in codes.items() if code not in (0, None)),
        "blocks_lost": sorted(set(range(1, top + 1)) - set(heights)),
        "tips_agree": bool(results.get("tips_agree")),
        "never_caught_up": never,
        "rejections": results.get("rejections", {}),
        "internal_errors": sum(int(v) for v in results.get("internal_errors", {}).values()),
        "chaos": [
            {"action": e["action"], "round": e["round"], "caught_up_after_rounds": e["caught_up_after_rounds"]}
            for e in results.get("chaos", [])
        ],
        "load": {k: v for k, v in results.get("load", {}).get("total", {}).items() if k in ("requests", "failures")},
        "load_failures_by_code": dict(failures or {}),
        "ok": bool(results.get("tips_agree"))
        and len(heights) >= tasks
        and set(failures or {}) <= {"UNAVAILABLE"}
        and not any(code not in (0, None) for code in codes.values())
        and not never,
    }


def main(argv: list[str] | None = None) -> int:
    """python -m chainlab.live.soak OUT: read OUT/results.json, write OUT/soak.json, print it; exit 1 unless ok."""
    parser = argparse.ArgumentParser(prog="python -m chainlab.live.soak", description=__doc__)
    parser.add_argument("out", type=Path, help="the --out of the soak run")
    args = parser.parse_args(argv)
    results = json.loads((args.out / "results.json").read_text())
    tasks = int(results.get("config", {}).get("tasks", 0))
    found = verdict(results, tasks, failure_codes(args.out / "locust_failures.csv"))
    (args.out / "soak.json").write_text(json.dumps(found, indent=2, sort_keys=True) + "\n")
    table = Table(title=f"soak: {args.out}")
    table.add_column("measure")
    table.add_column("value")
    for key in (
        "tasks_completed",
        "tasks",
        "crashes",
        "blocks_lost",
        "tips_agree",
        "never_caught_up",
        "internal_errors",
    ):
        table.add_row(key, str(found[key]))
    table.add_row("rejections", ", ".join(f"{k} {v}" for k, v in found["rejections"].items()) or "none")
    table.add_row("load", str(found["load"] or "none"))
    table.add_row("load failures by code", str(found["load_failures_by_code"] or "none"))
    Console().print(table)
    return 0 if found["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
