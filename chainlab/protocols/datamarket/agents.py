"""Contributors' and verifiers' behaviour (DRT's simulation agents), pure: their "random" draws come from hashes of
(seed, agent, label, counter), and their claims from the contract state every replica holds."""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass, field

from chainlab.ledger.hashing import sha256
from chainlab.protocols.datamarket.contract import Market
from chainlab.protocols.datamarket.messages import Refund, Report
from chainlab.protocols.datamarket.params import AgentParams, MarketParams


def uniform(seed: bytes, agent: bytes, label: bytes, counter: int) -> float:
    """A hash-derived number in (0, 1)."""
    raw = int.from_bytes(sha256(seed, agent, label, struct.pack("<Q", counter))[:8], "little")
    return (raw + 0.5) / 2**64


def normal(seed: bytes, agent: bytes, label: bytes, counter: int, mean: float, sd: float) -> float:
    """N(mean, sd^2) by Box-Muller from two hash-derived uniforms."""
    u1 = uniform(seed, agent, label + b"/1", counter)
    u2 = uniform(seed, agent, label + b"/2", counter)
    return mean + sd * math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


@dataclass
class Agent:
    """A contributor's decisions: when to act, whether and what to add, what to claim."""

    params: AgentParams
    market: MarketParams
    seed: bytes
    me: bytes
    pending: deque[int] = field(default_factory=deque)  # records not yet past tau, in time order
    late: deque[int] = field(default_factory=deque)  # records looked at after tau, waiting for tau2
    deferred: list[int] = field(default_factory=list)  # reports waiting for this agent's first good data
    seen: int = 0  # records handed to pending so far

    def wait(self, turn: int) -> int:
        """Rounds until the next turn: N(wait_mean, wait_sd) seconds, at least one round."""
        seconds = normal(self.seed, self.me, b"wait", turn, self.params.wait_mean, self.params.wait_sd)
        return self.market.seconds(max(seconds, 0.0))

    def willing(self, turn: int) -> int:
        """What it is willing to pay for this turn's addition: N(deposit_mean, deposit_sd), whole units."""
        value = normal(self.seed, self.me, b"deposit", turn, self.params.deposit_mean, self.params.deposit_sd)
        return max(0, math.floor(value))

    def wants_to_add(self, turn: int, accuracy: float) -> bool:
        """A good agent adds with probability accuracy + add_bonus; a bad one always does."""
        if not self.params.honest:
            return True
        return uniform(self.seed, self.me, b"add", turn) < accuracy + self.params.add_bonus

    def label(self, turn: int, y: int, classes: int = 2) -> int:
        """The label it submits: flipped, y -> (y + 1) mod classes (1 - y for two), by a bad agent, and by a good
        one with probability `mistake`."""
        if not self.params.honest:
            return (y + 1) % classes
        return (y + 1) % classes if uniform(self.seed, self.me, b"mistake", turn) < self.params.mistake else y

    def by_cid(self, turn: int) -> bool:
        """Whether this turn's addition is a sample file added by CID (with probability cid_share)."""
        share = self.market.cid_share
        return share >= 1.0 or (share > 0.0 and uniform(self.seed, self.me, b"cid", turn) < share)

    def claims(self, state: Market, now: int) -> list[Refund | Report]:
        """Refunds and reports that are due at `now`, each decided by the model every replica holds: a refund of
        its own data the model agrees with, a report of others' data it disagrees with (once this agent has good
        data), and a take of whatever is left after tau2."""
        terms = state.terms
        if terms is None:
            return []
        records = state.records
        while self.seen < len(records):
            self.pending.append(self.seen)
            self.seen += 1
        out: list[Refund | Report] = []
        refunding = False
        retry, self.deferred = self.deferred, []
        while self.pending and now - records[self.pending[0]].time > terms.tau:
            retry.append(self.pending.popleft())
        for i in retry:
            record = records[i]
            if record.claimable == 0 or self.me in record.claimed_by:
                self.late.append(i)
                continue
            agrees = state.agrees(record)
            if record.sender == self.me:
                if agrees:
                    out.append(Refund(i))
                    refunding = True
                self.late.append(i)
            elif not agrees:
                if state.num_good.get(self.me, 0) > 0 or refunding:
                    out.append(Report(i))
                    self.late.append(i)
                elif now - record.time < terms.tau2:
                    self.deferred.append(i)
                else:
                    self.late.append(i)
            else:
                self.late.append(i)
        while self.late and now - records[self.late[0]].time >= terms.tau2:
            record = records[self.late.popleft()]
            if record.claimable > 0 and self.me not in record.claimed_by:
                out.append(Report(record.id))
        return out
