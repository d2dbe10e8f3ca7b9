"""A protocol's Rejected subclass carries kind, reason and detail, and is caught only as its own protocol's."""

from __future__ import annotations

import pytest

from chainlab.protocols import rejection
from chainlab.protocols.bflc import reasons as bflc
from chainlab.protocols.learningchain import reasons as lc


def test_the_message_names_kind_dot_reason_and_the_detail() -> None:
    exc = lc.Rejected(lc.Kind.BLOCK, lc.Reason.BAD_POW, "hash above target")
    assert (exc.kind, exc.reason, exc.detail) == (lc.Kind.BLOCK, lc.Reason.BAD_POW, "hash above target")
    assert str(exc) == "blk.bad_pow: hash above target"
    assert str(lc.Rejected(lc.Kind.MESSAGE, lc.Reason.STALE)) == "msg.stale"


def test_one_protocols_rejection_is_not_caught_as_anothers() -> None:
    with pytest.raises(lc.Rejected):
        try:
            raise lc.Rejected(lc.Kind.BLOCK, lc.Reason.BAD_POW)
        except bflc.Rejected:
            pytest.fail("a LearningChain rejection caught as BFLC's")
    assert isinstance(bflc.Rejected(bflc.Kind.JOIN, bflc.Reason.FEE_UNPAID), rejection.Rejected)
