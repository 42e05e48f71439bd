from collections.abc import Callable
from datetime import timedelta

from fastapi.testclient import TestClient

from fleet.auth import _failure_counters
from fleet.db import utcnow
from fleet.models import OrgUnit, Role
from tests.conftest import PASSWORD
from tests.redis_cluster import SINGLE_AND_CLUSTER


def test_login_with_right_password_gives_a_bearer_token(client: TestClient, make_user, root_unit):
    make_user("alice", root_unit, Role.ADMIN)
    reply = client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert reply.status_code == 200
    body = reply.json()
    assert body["token_type"] == "bearer"
    assert len(body["access_token"]) > 30
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {body['access_token']}"})
    assert me.status_code == 200
    assert me.json()["username"] == "alice"


def test_login_with_wrong_password_is_401(client: TestClient, make_user, root_unit):
    make_user("alice", root_unit, Role.ADMIN)
    reply = client.post("/api/v1/auth/token", data={"username": "alice", "password": "nope-nope"})
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"] == "Bearer"


def test_unknown_user_is_401_like_a_wrong_password(client: TestClient):
    reply = client.post("/api/v1/auth/token", data={"username": "ghost", "password": "whatever1"})
    assert reply.status_code == 401
    assert reply.json() == {"detail": "wrong username or password"}


@SINGLE_AND_CLUSTER
def test_ten_failures_in_a_minute_throttle_that_username(
    client: TestClient, make_user, root_unit: OrgUnit, redis, settings
):
    make_user("alice", root_unit, Role.ADMIN)
    make_user("bob", root_unit, Role.ADMIN)
    for _ in range(10):
        wrong = client.post(
            "/api/v1/auth/token", data={"username": "alice", "password": "bad-pass"}
        )
        assert wrong.status_code == 401
    throttled = client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert throttled.status_code == 429
    retry_after = int(throttled.headers["Retry-After"])
    assert 0 < retry_after <= 60
    # Counted in the test's Redis (the cluster, in that run), in one slot: the MULTI over them.
    counters = [key for key, _, _ in _failure_counters("alice", "testclient", settings)]
    assert [int(n) for n in redis.mget(counters)] == [10, 10, 10]
    # Another username is not affected.
    other = client.post("/api/v1/auth/token", data={"username": "bob", "password": PASSWORD})
    assert other.status_code == 200


@SINGLE_AND_CLUSTER
def test_nine_failures_do_not_throttle(client: TestClient, make_user, root_unit):
    make_user("alice", root_unit, Role.ADMIN)
    for _ in range(9):
        client.post("/api/v1/auth/token", data={"username": "alice", "password": "bad-pass"})
    ok = client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert ok.status_code == 200


def test_logout_revokes_the_token(client: TestClient, make_user, root_unit, login: Callable):
    make_user("alice", root_unit, Role.ADMIN)
    headers = login("alice")
    assert client.get("/api/v1/me", headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_expired_token_is_refused(client: TestClient, make_user, root_unit, login, db):
    from sqlalchemy import text

    make_user("alice", root_unit, Role.ADMIN)
    headers = login("alice")
    # A second ago by the clock the app reads, not the database server's now().
    expired = utcnow() - timedelta(seconds=1)
    db.execute(text("UPDATE auth_token SET expires_at = :at"), {"at": expired})
    assert client.get("/api/v1/me", headers=headers).status_code == 401


def test_missing_or_garbage_token_is_401(client: TestClient):
    assert client.get("/api/v1/vehicles").status_code == 401
    bad = client.get("/api/v1/vehicles", headers={"Authorization": "Bearer garbage"})
    assert bad.status_code == 401


def test_deactivated_user_cannot_log_in_and_loses_tokens(
    client: TestClient, make_user, root_unit, login
):
    admin = make_user("root", root_unit, Role.ADMIN)
    alice = make_user("alice", root_unit, Role.DISPATCHER)
    assert admin.id != alice.id
    alice_headers = login("alice")
    admin_headers = login("root")
    assert client.delete(f"/api/v1/users/{alice.id}", headers=admin_headers).status_code == 204
    assert client.get("/api/v1/me", headers=alice_headers).status_code == 401
    again = client.post("/api/v1/auth/token", data={"username": "alice", "password": PASSWORD})
    assert again.status_code == 401
