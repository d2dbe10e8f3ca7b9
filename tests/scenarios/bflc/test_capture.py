"""Figure 3: the closed form reproduces the paper's curve, and the protocol's own committee draw agrees with it."""

from __future__ import annotations

import pytest

from chainlab.scenarios.bflc.capture import capture_tables, exact_capture


@pytest.mark.parametrize(
    ("share", "malicious", "expected"),
    [(0.1, 0.40, 0.0125), (0.1, 0.50, 0.458), (0.1, 0.60, 0.979), (0.2, 0.45, 0.048), (0.2, 0.55, 0.934)],
)
def test_the_closed_form_gives_protocols_md_values(share: float, malicious: float, expected: float) -> None:
    assert exact_capture(1000, share, malicious) == pytest.approx(expected, abs=1e-3)


def test_drawn_committees_agree_with_the_formula() -> None:
    """B3's setting: 18 seats drawn from 90 participants (10 % active of 900, a 20 % committee)."""
    tables = capture_tables(population=90, shares=(0.2,), malicious=(0.3, 0.4, 0.5), draws=2000)
    assert tables.exact[(0.2, 0.4)] == pytest.approx(0.11, abs=0.01)
    assert tables.max_gap() <= 0.02 + 0.01  # 2,000 draws: the standard error is at most 0.011
    assert [r["q"] for r in tables.rows()] == [0.3, 0.4, 0.5]
