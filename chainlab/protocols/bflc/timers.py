"""BFLC's timers: typed values a node starts and gets back, never strings to parse."""

from __future__ import annotations

from dataclasses import dataclass

from chainlab.protocols.base import Timer


@dataclass(frozen=True)
class ScoreDeadline(Timer):
    """A committee member stops waiting for round t's updates and sends the scores it has."""

    round: int


@dataclass(frozen=True)
class LeaderDeadline(Timer):
    """Round t has no committed block yet: the leader of attempt `attempt` (by member ID order) takes over."""

    round: int
    attempt: int


@dataclass(frozen=True)
class Resend(Timer):
    """A trainer's round t is still open: send its update to the committee again (a member may have missed it)."""

    round: int
    left: int  # resends still allowed after this one
