"""Every resource is limited to the caller's unit and the units below it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from fleet.models import OrgUnit, Role
from fleet.paging import Listing
from fleet.schemas import DeviceCreate, UserCreate
from tests.factories import add_driver, add_vehicle


@dataclass
class Tree:
    root: OrgUnit
    a: OrgUnit
    a_child: OrgUnit
    b: OrgUnit
    items: dict[str, dict[str, int]]  # resource -> unit key -> id


_plates = iter(range(10000, 99999))


def _make(db: Session, root: OrgUnit, resource: str, unit: OrgUnit, tag: str) -> int:
    system = Actor.system(root)
    if resource == "vehicles":
        vehicle = add_vehicle(db, unit, f"浙A·{next(_plates)}", actor=system)
        return vehicle.id
    if resource == "drivers":
        return add_driver(db, unit, f"司机{tag}", actor=system).id
    if resource == "devices":
        return registry.create_device(
            session=db,
            actor=system,
            data=DeviceCreate(protocol="osmand", identifier=f"dev-{tag}", unit_id=unit.id),
        ).id
    if resource == "users":
        return registry.create_user(
            session=db,
            actor=None,
            data=UserCreate(
                username=f"user-{tag}",
                password="password-123",
                roles=["requester"],
                unit_id=unit.id,
            ),
        ).id
    raise AssertionError(resource)


RESOURCES = ("vehicles", "drivers", "devices", "users")
PATCHES = {
    "vehicles": {"seats": 5},
    "drivers": {"phone": "13900000000"},
    "devices": {"enabled": False},
    "users": {"full_name": "改名"},
}


@pytest.fixture
def tree(db: Session, root_unit: OrgUnit, make_unit: Callable[..., OrgUnit], make_user) -> Tree:
    a = make_unit("A")
    a_child = make_unit("A1", parent=a)
    b = make_unit("B")
    make_user("root-admin", root_unit, Role.ADMIN)
    make_user("a-dispatcher", a, Role.DISPATCHER)
    make_user("a-admin", a, Role.ADMIN)
    items: dict[str, dict[str, int]] = {}
    for resource in RESOURCES:
        items[resource] = {
            key: _make(db, root_unit, resource, unit, f"{resource}-{key}")
            for key, unit in (("a", a), ("a_child", a_child), ("b", b))
        }
    db.commit()
    return Tree(root_unit, a, a_child, b, items)


def _ids(reply: Any) -> set[int]:
    assert reply.status_code == 200, reply.text
    return {item["id"] for item in reply.json()["items"]}


@pytest.mark.parametrize("resource", RESOURCES)
def test_dispatcher_lists_own_subtree_not_sibling(
    client: TestClient, tree: Tree, login, resource: str
):
    ids = _ids(client.get(f"/api/v1/{resource}?limit=500", headers=login("a-dispatcher")))
    mine = tree.items[resource]
    assert mine["a"] in ids
    assert mine["a_child"] in ids
    assert mine["b"] not in ids


@pytest.mark.parametrize("resource", RESOURCES)
def test_dispatcher_reading_sibling_item_gets_404(
    client: TestClient, tree: Tree, login, resource: str
):
    headers = login("a-dispatcher")
    own = client.get(f"/api/v1/{resource}/{tree.items[resource]['a']}", headers=headers)
    assert own.status_code == 200
    other = client.get(f"/api/v1/{resource}/{tree.items[resource]['b']}", headers=headers)
    assert other.status_code == 404


@pytest.mark.parametrize("resource", RESOURCES)
def test_unit_staff_cannot_change_sibling_items(
    client: TestClient, tree: Tree, login, resource: str
):
    # Users are changed by administrators only; the other resources by dispatchers too.
    headers = login("a-admin" if resource == "users" else "a-dispatcher")
    url_b = f"/api/v1/{resource}/{tree.items[resource]['b']}"
    assert client.patch(url_b, json=PATCHES[resource], headers=headers).status_code == 404
    assert client.delete(url_b, headers=headers).status_code == 404
    url_a = f"/api/v1/{resource}/{tree.items[resource]['a_child']}"
    assert client.patch(url_a, json=PATCHES[resource], headers=headers).status_code == 200
    # The sibling's item is untouched.
    root = login("root-admin")
    assert client.get(url_b, headers=root).status_code == 200


@pytest.mark.parametrize("resource", RESOURCES)
def test_root_admin_sees_and_changes_everything(
    client: TestClient, tree: Tree, login, resource: str
):
    headers = login("root-admin")
    ids = _ids(client.get(f"/api/v1/{resource}?limit=500", headers=headers))
    assert set(tree.items[resource].values()) <= ids
    url_b = f"/api/v1/{resource}/{tree.items[resource]['b']}"
    assert client.get(url_b, headers=headers).status_code == 200
    assert client.patch(url_b, json=PATCHES[resource], headers=headers).status_code == 200


def test_units_list_is_scoped(client: TestClient, tree: Tree, login):
    ids = _ids(client.get("/api/v1/units", headers=login("a-dispatcher")))
    assert ids == {tree.a.id, tree.a_child.id}
    assert (
        client.get(f"/api/v1/units/{tree.b.id}", headers=login("a-dispatcher")).status_code == 404
    )


def test_cannot_create_in_a_sibling_unit(client: TestClient, tree: Tree, login):
    reply = client.post(
        "/api/v1/vehicles",
        headers=login("a-dispatcher"),
        json={
            "plate": "浙A·D99999",
            "category": "general",
            "body_class": "sedan",
            "seats": 4,
            "energy": "bev",
            "unit_id": tree.b.id,
        },
    )
    assert reply.status_code == 422
    assert reply.json()["detail"][0]["loc"] == ["body", "unit_id"]


def test_dispatcher_cannot_create_users(client: TestClient, tree: Tree, login):
    reply = client.post(
        "/api/v1/users",
        headers=login("a-dispatcher"),
        json={
            "username": "x-user",
            "password": "password-123",
            "roles": ["admin"],
            "unit_id": tree.a.id,
        },
    )
    assert reply.status_code == 403


def test_requester_cannot_list_vehicles(client: TestClient, tree: Tree, make_user, login):
    make_user("a-requester", tree.a, Role.REQUESTER)
    assert client.get("/api/v1/vehicles", headers=login("a-requester")).status_code == 403


def test_scope_is_enforced_in_the_service_not_only_the_router(db: Session, tree: Tree):
    a_actor = Actor(
        user_id=None,
        username="a",
        unit_id=tree.a.id,
        unit_path=tree.a.path,
        roles=frozenset({Role.DISPATCHER}),
    )
    vehicles, total = registry.list_vehicles(
        session=db, actor=a_actor, listing=Listing(limit=500), filters={}
    )
    assert tree.items["vehicles"]["b"] not in {v.id for v in vehicles}
    assert total == 2
    with pytest.raises(registry.NotFound):
        registry.get_device(session=db, actor=a_actor, device_id=tree.items["devices"]["b"])
