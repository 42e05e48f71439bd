from __future__ import annotations

from fastapi.testclient import TestClient

from fleet.settings import Settings
from web.app import create_app


def test_healthz_reports_both_stores_up(client: TestClient):
    reply = client.get("/healthz")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["status"], body["database"], body["redis"]) == ("ok", "up", "up")
    assert body["details"]["postgis"].startswith("3.")


def test_healthz_is_503_naming_redis_when_it_is_down(settings: Settings):
    broken = settings.model_copy(update={"redis_url": "redis://127.0.0.1:9/0"})
    with TestClient(create_app(broken)) as client:
        reply = client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json()["redis"] == "down"
    assert reply.json()["database"] == "up"
    assert reply.json()["status"] == "down: redis"


def test_healthz_is_503_naming_the_database_when_it_is_down(settings: Settings):
    broken = settings.model_copy(
        update={"database_url": "postgresql+psycopg://postgres@127.0.0.1:9/fleet"}
    )
    with TestClient(create_app(broken)) as client:
        reply = client.get("/healthz")
    assert reply.status_code == 503
    assert reply.json()["database"] == "down"
    assert reply.json()["redis"] == "up"


def test_healthz_stays_200_naming_a_warning_check_that_fails(client: TestClient):
    from sqlalchemy import text

    def broken(session, now):
        session.execute(text("SELECT * FROM no_such_table"))
        return []

    client.app.state.health_checks = [broken, *client.app.state.health_checks]  # type: ignore[attr-defined]
    reply = client.get("/healthz")
    assert reply.status_code == 200
    body = reply.json()
    assert (body["status"], body["database"], body["warnings"]) == ("ok", "up", [])
    assert "no_such_table" in body["details"]["warnings_error"]
