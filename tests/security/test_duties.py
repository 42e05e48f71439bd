"""Segregation of duties (issue 16, item 10), against the running API on the demo database: the
steps of one approval chain are decided by different people."""

from __future__ import annotations

from tests.web.conftest import Stack, api_client


def test_one_approver_cannot_decide_both_steps_of_a_two_step_order(stack: Stack) -> None:
    # The demo's out-of-region order waits on two steps: the bureau's (level 0) and the city's
    # (level 1). The city's leader may decide either step, being above the bureau: not both.
    order_id = stack.value(
        "SELECT id FROM trip_order WHERE status = 'submitted' AND approvals_done = 0"
        " AND jsonb_array_length(approval_steps) = 2 ORDER BY id LIMIT 1"
    )
    with api_client(stack, "leader") as leader, api_client(stack, "approver") as approver:
        first = leader.post(f"/orders/{order_id}/approve", json={})
        assert first.status_code == 200, first.text
        assert first.json()["approvals_done"] == 1

        second = leader.post(f"/orders/{order_id}/approve", json={})
        assert second.status_code == 403, second.text
        assert "different person" in second.json()["detail"]
        order = leader.get(f"/orders/{order_id}").json()
        assert (order["status"], order["approvals_done"]) == ("submitted", 1)
        # ... and the leader's list of orders to decide no longer offers it.
        waiting = leader.get("/approvals/pending").json()["items"]
        assert order_id not in [o["id"] for o in waiting]

        # The bureau's approver is not above the city's step: the chain waits for another leader.
        assert approver.post(f"/orders/{order_id}/approve", json={}).status_code == 403
