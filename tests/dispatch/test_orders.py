"""The order's life as a transition table (pure)."""

from __future__ import annotations

import pytest

from dispatch.orders import TRANSITIONS, IllegalMove, OrderStatus, move

S = OrderStatus


def test_the_happy_path_is_allowed() -> None:
    status = S.DRAFT
    for to in (S.SUBMITTED, S.APPROVED, S.ASSIGNED, S.IN_PROGRESS, S.COMPLETED):
        status = move(status, to)
    assert status == S.COMPLETED


@pytest.mark.parametrize(
    ("current", "to"),
    [
        (S.DRAFT, S.APPROVED),  # not submitted
        (S.DRAFT, S.ASSIGNED),  # not even submitted
        (S.REJECTED, S.APPROVED),
        (S.COMPLETED, S.CANCELLED),
        (S.IN_PROGRESS, S.CANCELLED),  # a trip under way is finished, not cancelled
        (S.CANCELLED, S.SUBMITTED),
    ],
)
def test_illegal_moves_are_refused_naming_both_ends(current, to) -> None:
    with pytest.raises(IllegalMove) as refused:
        move(current, to)
    assert current.value in refused.value.message
    assert to.value in refused.value.message


def test_every_status_has_a_row_and_final_ones_lead_nowhere() -> None:
    assert set(TRANSITIONS) == set(OrderStatus)
    assert {s for s, moves in TRANSITIONS.items() if not moves} == {
        S.REJECTED,
        S.COMPLETED,
        S.CANCELLED,
    }
