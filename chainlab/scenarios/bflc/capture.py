"""Figure 3: the probability that conspirators capture a committee, exactly and by drawing committees.

A participants, a share q of them malicious, a committee of round(A * p) seats: the attack succeeds when more than
half the seats are malicious, P[X > A p / 2] with X ~ Hypergeometric(A, A q, A p). The Monte-Carlo check draws the
committees with the protocol's own committee draw (committee.initial_committee), so it tests that code too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy.stats import hypergeom

from chainlab.ledger.hashing import sha256
from chainlab.protocols.bflc import committee as draws

SHARES = (0.1, 0.2)  # committee share p, Fig. 3's two curves
MALICIOUS = (0.40, 0.45, 0.50, 0.55, 0.60)  # malicious share q
POPULATION = 1000  # Fig. 3's A
DRAWS = 2000


@dataclass(frozen=True)
class CaptureTables:
    """P[capture] by (p, q): the closed form and the share of drawn committees that were captured."""

    population: int
    draws: int
    exact: dict[tuple[float, float], float]
    monte_carlo: dict[tuple[float, float], float]

    def rows(self) -> list[dict[str, float]]:
        """One row per (p, q), for tables and JSON."""
        return [
            {"p": p, "q": q, "exact": self.exact[(p, q)], "monte_carlo": self.monte_carlo[(p, q)]}
            for p, q in sorted(self.exact)
        ]

    def max_gap(self) -> float:
        """The largest |exact - Monte-Carlo| (acceptance: <= 0.02 at 2,000 draws)."""
        return max(abs(self.exact[k] - self.monte_carlo[k]) for k in self.exact)


def seats_of(population: int, share: float) -> int:
    """The committee's seats, A p, at least one."""
    return max(1, round(population * share))


def exact_capture(population: int, share: float, malicious: float) -> float:
    """P[X > A p / 2], X ~ Hypergeometric(population A, successes A q, draws A p)."""
    seats = seats_of(population, share)
    bad = round(population * malicious)
    return float(hypergeom(population, bad, seats).sf(seats // 2))  # sf(k) = P[X > k]; X > s/2 <=> X > floor(s/2)


def capture_tables(
    population: int = POPULATION,
    shares: Sequence[float] = SHARES,
    malicious: Sequence[float] = MALICIOUS,
    draws: int = DRAWS,
    seed: bytes = b"figure-3",
) -> CaptureTables:
    """Both tables; the Monte-Carlo one draws `draws` committees per share with fresh genesis seeds."""
    members = [sha256(b"participant", i.to_bytes(8, "little")) for i in range(population)]
    exact = {(p, q): exact_capture(population, p, q) for p in shares for q in malicious}
    captured = dict.fromkeys(exact, 0)
    bad_sets = {q: frozenset(members[: round(population * q)]) for q in malicious}
    for k in range(draws):
        genesis_seed = sha256(seed, k.to_bytes(8, "little"))
        for p in shares:
            seats = seats_of(population, p)
            chosen = draws_of(genesis_seed, members, seats)
            for q in malicious:
                if sum(1 for m in chosen if m in bad_sets[q]) > seats / 2:
                    captured[(p, q)] += 1
    return CaptureTables(population, draws, exact, {key: n / draws for key, n in captured.items()})


def draws_of(genesis_seed: bytes, members: Sequence[bytes], seats: int) -> tuple[bytes, ...]:
    """C_0 as the protocol draws it."""
    return draws.initial_committee(genesis_seed, members, seats)
