"""The console table of a finished live run, laid out by its protocol (compact, rounds shown as seconds)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.table import Table

from chainlab.scenarios import tables


def results_table(results: Mapping[str, Any], title: str) -> Table:
    """One row per row of the run (BagChain: per task), the compact columns, rounds as wall seconds."""
    return tables.results_table(results, title, compact=True)
