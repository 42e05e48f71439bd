"""Approval chains as data: the steps an order's facts call for, and who may decide each."""

from __future__ import annotations

from fastapi.testclient import TestClient

from dispatch.approval import Condition, Rule, Traits, steps
from dispatch.settings import DispatchSettings
from fleet.models import Role

RULES = [
    Rule(Condition.OUT_OF_REGION, 1, "出市审批"),
    Rule(Condition.NON_WORKING_DAY, 1, "节假日用车"),
    Rule(Condition.LONGER_THAN_DAYS, 2, "超过三天", param=3),
    Rule(Condition.PASSENGERS_OVER, 1, "大客", param=15),
    Rule(Condition.NIGHT, 1, "夜间"),
    Rule(Condition.LARGE_VEHICLE, 1, "大型车"),
]


def test_an_ordinary_order_needs_its_own_unit_only():
    assert [s.level for s in steps(Traits(days=0.2), RULES)] == [0]


def test_each_fact_adds_the_step_its_rule_names_once_per_level():
    found = steps(Traits(out_of_region=True, non_working_day=True, days=4), RULES)
    assert [(s.level, s.reasons) for s in found] == [
        (0, ("本单位审批 / own unit",)),
        (1, ("出市审批", "节假日用车")),
        (2, ("超过三天",)),
    ]
    assert [s.level for s in steps(Traits(days=3), RULES)] == [0]  # "longer than" is strict
    assert [s.level for s in steps(Traits(passengers=16), RULES)] == [0, 1]
    assert [s.level for s in steps(Traits(body_class="bus"), RULES)] == [0, 1]
    assert [s.level for s in steps(Traits(night=True), RULES)] == [0, 1]


def _chain_setup(client, root_unit, make_unit, make_user, login, people):
    bureau = make_unit("BUREAU", root_unit)
    make_user("clerk", bureau, Role.REQUESTER)
    make_user("chief", bureau, Role.APPROVER)
    make_user("rules-admin", root_unit, Role.ADMIN)
    headers = login("rules-admin")
    for condition in ("out_of_region", "non_working_day"):
        reply = client.post(
            "/api/v1/approval-rules",
            json={"unit_id": root_unit.id, "condition": condition, "level": 1, "name": condition},
            headers=headers,
        )
        assert reply.status_code == 201, reply.text
    return bureau, login("clerk"), login("chief")


def test_an_out_of_region_order_needs_the_higher_step(
    client: TestClient, root_unit, make_unit, make_user, login, people, pool, order_body
):
    bureau, clerk, chief = _chain_setup(client, root_unit, make_unit, make_user, login, people)
    reply = client.post("/api/v1/orders", json=order_body(out_of_region=True), headers=clerk)
    assert reply.status_code == 201, reply.text
    order_id = reply.json()["id"]
    submitted = client.post(f"/api/v1/orders/{order_id}/submit", headers=clerk).json()
    assert [(s["level"], s["unit_id"]) for s in submitted["approval_steps"]] == [
        (0, bureau.id),
        (1, root_unit.id),
    ]
    # Steps are taken in order: the bureau's chief first, then an approver of the root unit.
    assert [
        o["id"] for o in client.get("/api/v1/approvals/pending", headers=chief).json()["items"]
    ] == [order_id]
    first = client.post(f"/api/v1/orders/{order_id}/approve", headers=chief).json()
    assert (first["status"], first["approvals_done"]) == ("submitted", 1)
    assert client.post(f"/api/v1/orders/{order_id}/approve", headers=chief).status_code == 403
    done = client.post(f"/api/v1/orders/{order_id}/approve", headers=people["boss"]).json()
    assert (done["status"], done["approvals_done"]) == ("approved", 2)
    assert [d["by"] for d in done["decisions"]] == ["chief", "boss"]


def test_one_approver_does_not_decide_two_steps_of_one_order(
    client: TestClient, root_unit, make_unit, make_user, login, people, pool, order_body
):
    # The root's approver may decide the bureau's step as well as the root's: not both of one order.
    _, clerk, _ = _chain_setup(client, root_unit, make_unit, make_user, login, people)
    boss = people["boss"]

    def two_step_order() -> int:
        order_id = client.post(
            "/api/v1/orders", json=order_body(out_of_region=True), headers=clerk
        ).json()["id"]
        client.post(f"/api/v1/orders/{order_id}/submit", headers=clerk)
        first = client.post(f"/api/v1/orders/{order_id}/approve", headers=boss).json()
        assert first["approvals_done"] == 1
        return order_id

    order_id = two_step_order()
    pending = client.get("/api/v1/approvals/pending", headers=boss).json()["items"]
    assert order_id not in [o["id"] for o in pending]
    again = client.post(f"/api/v1/orders/{order_id}/approve", headers=boss)
    assert again.status_code == 403
    assert "different person" in again.json()["detail"]
    refused = client.post(f"/api/v1/orders/{order_id}/reject", json={"comment": "x"}, headers=boss)
    assert refused.status_code == 403
    make_user("deputy", root_unit, Role.APPROVER)
    done = client.post(f"/api/v1/orders/{order_id}/approve", headers=login("deputy")).json()
    assert [d["by"] for d in done["decisions"]] == ["boss", "deputy"]

    # The setting turned off (a one-person office): the same approver may take every step.
    client.app.state.dispatch_settings = DispatchSettings(approval_distinct_deciders=False)
    order_id = two_step_order()
    done = client.post(f"/api/v1/orders/{order_id}/approve", headers=boss).json()
    assert (done["status"], done["approvals_done"]) == ("approved", 2)


def test_a_holiday_order_needs_the_higher_step_and_a_working_day_does_not(
    client: TestClient, root_unit, make_unit, make_user, login, people, pool, order_body
):
    _, clerk, _ = _chain_setup(client, root_unit, make_unit, make_user, login, people)
    # 2026-12-31 is a Thursday (working); 2027 is not in the calendar yet: the stricter chain.
    for day, levels in (("2026-12-31", [0]), ("2027-01-01", [0, 1])):
        reply = client.post(
            "/api/v1/orders",
            json=order_body(start_at=f"{day}T09:00:00+08:00", end_at=f"{day}T11:00:00+08:00"),
            headers=clerk,
        )
        order_id = reply.json()["id"]
        submitted = client.post(f"/api/v1/orders/{order_id}/submit", headers=clerk).json()
        assert [s["level"] for s in submitted["approval_steps"]] == levels, day


def test_rules_are_checked_and_only_administrators_write_them(
    client: TestClient, root_unit, people
):
    body = {"unit_id": root_unit.id, "condition": "longer_than_days", "level": 1}
    reply = client.post("/api/v1/approval-rules", json=body, headers=people["boss"])
    assert reply.status_code == 403
