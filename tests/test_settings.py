from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fleet.redis_client import RedisAddress
from fleet.settings import DEVELOPMENT_SECRET, Settings, describe

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_documents_every_setting():
    text = README.read_text()
    for name, _default, description in describe():
        assert f"`{name}`" in text, name
        assert description, f"{name} has no description"


def test_production_refuses_the_placeholder_secret():
    with pytest.raises(ValidationError, match="FLEET_SECRET_KEY"):
        Settings(environment="production", secret_key=DEVELOPMENT_SECRET)
    Settings(environment="production", secret_key="a-real-secret-of-some-length")


def test_database_url_must_be_postgres_and_gets_the_psycopg_driver():
    with pytest.raises(ValidationError, match="PostgreSQL"):
        Settings(database_url="sqlite:///fleet.db")
    plain = Settings(database_url="postgresql://u@db:5432/fleet")
    assert plain.database.drivername == "postgresql+psycopg"


def test_unknown_display_zone_is_refused():
    with pytest.raises(ValidationError):
        Settings(display_timezone="Mars/Olympus")
    assert Settings().zone.key == "Asia/Shanghai"


def test_the_owner_role_is_the_same_database_as_another_user():
    one = Settings(database_url="postgresql://fleet_app:pw@db:5432/fleet", database_owner="")
    assert one.app_role is None  # no owner: one role for both
    assert one.as_owner().database_url == one.database_url
    two = Settings(
        database_url="postgresql://fleet_app:pw@db:5432/fleet", database_owner="fleet_owner:s3"
    )
    assert two.app_role == "fleet_app"
    owner = two.owner_database
    assert (owner.username, owner.password, owner.host, owner.database) == (
        "fleet_owner",
        "s3",
        "db",
        "fleet",
    )
    moved = two.with_database_name("scratch")
    assert moved.owner_database.database == "scratch"
    assert moved.as_owner().app_role is None
    assert Settings(database_url="postgresql://u@db/fleet", database_owner="u").app_role is None


def test_a_redis_cluster_is_reached_at_database_0_only():
    with pytest.raises(ValidationError, match="only database 0"):
        Settings(redis_url="redis://10.0.0.11:6379/15", redis_cluster=True)
    with pytest.raises(ValidationError, match="only database 0"):
        Settings(redis_url="redis://10.0.0.11:6379?db=2", redis_cluster=True)
    cluster = Settings(redis_url="redis://10.0.0.11:6379", redis_cluster=True).redis
    assert cluster == RedisAddress("redis://10.0.0.11:6379", cluster=True)
    assert Settings(redis_url="redis://r:6379/15").redis == RedisAddress("redis://r:6379/15")
