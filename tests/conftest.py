"""Test harness: a fresh PostGIS database built by the migrations, one rolled-back transaction per
test, a Redis database of its own, and the real app in front of both."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from fleet import migrate, registry
from fleet.api import get_session
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.models import OrgUnit, Role, UserAccount
from fleet.redis_client import RedisAddress, RedisClient
from fleet.schemas import UnitCreate, UserCreate
from fleet.settings import Settings
from tests.redis_cluster import RedisClusterServers
from web.app import create_app

TEST_REDIS_DB = 15
PASSWORD = "correct-horse-9"


def _redis_db(url: str, index: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{index}"))


def recreate_database(settings: Settings, template: str | None = None) -> None:
    """The settings' database, empty (or a copy of the database `template`, which nothing may be
    connected to)."""
    url = settings.owner_database
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{url.database}"{copy}'))
    admin.dispose()


def drop_database(settings: Settings) -> None:
    url = settings.owner_database
    admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    admin.dispose()


# Fixtures that start Fleet's own processes (or a browser): the tests using them are end to end.
E2E_FIXTURES = frozenset({"stack", "trackers", "demo_day", "browser"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings(environment="test")


@pytest.fixture(scope="session")
def settings(base_settings: Settings) -> Settings:
    name = f"{base_settings.database.database}_test"
    return base_settings.with_database_name(name).model_copy(
        update={"redis_url": _redis_db(base_settings.redis_url, TEST_REDIS_DB)}
    )


@pytest.fixture(scope="session")
def engine(settings: Settings) -> Iterator[Engine]:
    recreate_database(settings)
    migrate.upgrade(settings)
    engine = make_engine(settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def owner_engine(engine: Engine, settings: Settings) -> Iterator[Engine]:
    """The schema owner's connection, for what the processes' role may not do: a test's set-up
    of old partitions, a clean-up by TRUNCATE, an attacker with full database access."""
    owner = create_engine(settings.owner_database)
    yield owner
    owner.dispose()


@contextmanager
def _rolled_back(engine: Engine) -> Iterator[Session]:
    """A session whose every commit is a savepoint inside one transaction rolled back at the end."""
    connection = engine.connect()
    outer = connection.begin()
    session = Session(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    yield session
    session.close()
    outer.rollback()
    connection.close()


@pytest.fixture
def db(engine: Engine) -> Iterator[Session]:
    """A session as the processes' role, rolled back at the end of the test."""
    with _rolled_back(engine) as session:
        yield session


@pytest.fixture
def owner_db(owner_engine: Engine) -> Iterator[Session]:
    """`db` as the schema's owner: someone with full access to the database, rolled back."""
    with _rolled_back(owner_engine) as session:
        yield session


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisAddress]:
    """A Redis Cluster of three masters of the session's own (started when a test asks)."""
    servers = RedisClusterServers()
    try:
        servers.start()
        yield servers.address
    finally:
        servers.stop()


@pytest.fixture
def redis_address(request: pytest.FixtureRequest, settings: Settings) -> RedisAddress:
    """The test's Redis: the single server's test database, or the cluster for a test marked
    `SINGLE_AND_CLUSTER` (tests.redis_cluster) in its `cluster` run."""
    if getattr(request, "param", "single") == "cluster":
        address: RedisAddress = request.getfixturevalue("redis_cluster")
        return address
    return settings.redis


@pytest.fixture
def redis(redis_address: RedisAddress) -> Iterator[RedisClient]:
    client = redis_address.connect()
    client.flushdb()  # on a cluster, every master's
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def client(
    settings: Settings, db: Session, redis: RedisClient, redis_address: RedisAddress
) -> Iterator[TestClient]:
    app = create_app(settings.with_redis(redis_address))

    def test_session() -> Iterator[Session]:
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise

    app.dependency_overrides[get_session] = test_session
    with TestClient(app) as test_client:
        yield test_client


# ---- builders -------------------------------------------------------------------------------


@pytest.fixture
def root_unit(db: Session) -> OrgUnit:
    unit = registry.create_root_unit(session=db, code="T-ROOT", name="测试市政府")
    db.commit()  # builders commit like a request would, so a later failed request keeps them
    return unit


@pytest.fixture
def make_unit(db: Session, root_unit: OrgUnit) -> Callable[..., OrgUnit]:
    def make(code: str, parent: OrgUnit | None = None, name: str | None = None) -> OrgUnit:
        parent = parent or root_unit
        unit = registry.create_unit(
            session=db,
            actor=Actor.system(root_unit),
            data=UnitCreate(code=code, name=name or f"单位 {code}", parent_id=parent.id),
        )
        db.commit()
        return unit

    return make


@pytest.fixture
def make_user(db: Session) -> Callable[..., UserAccount]:
    def make(username: str, unit: OrgUnit, *roles: Role) -> UserAccount:
        user = registry.create_user(
            session=db,
            actor=None,
            data=UserCreate(
                username=username,
                password=PASSWORD,
                roles=list(roles) or [Role.REQUESTER],
                unit_id=unit.id,
            ),
        )
        db.commit()
        return user

    return make


@pytest.fixture
def login(client: TestClient) -> Callable[[str], dict[str, str]]:
    """Log in through the API; returns the Authorization header."""

    def do(username: str, password: str = PASSWORD) -> dict[str, str]:
        reply = client.post("/api/v1/auth/token", data={"username": username, "password": password})
        assert reply.status_code == 200, reply.text
        return {"Authorization": f"Bearer {reply.json()['access_token']}"}

    return do


@pytest.fixture(scope="module")
def scratch_settings(settings: Settings, request: pytest.FixtureRequest) -> Iterator[Settings]:
    """A database of the module's own, for tests that must commit (CLI, migrations); named for
    the module, so that modules run at the same time (by different people) do not collide."""
    module = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")[:24]
    scratch = settings.with_database_name(f"{settings.database.database}_s_{module}_{os.getpid()}")
    recreate_database(scratch)
    yield scratch
    drop_database(scratch)
