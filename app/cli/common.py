"""What every command shares: its exit codes, its way of failing, and its one way to reach the
database and Redis (checked first, so an unreachable server is the same clear error everywhere,
and closed after, whatever the command did)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import URL, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from fleet.auth import Actor
from fleet.db import make_engine, make_session_factory, unit_of_work
from fleet.errors import FleetError, Rejected
from fleet.models import OrgUnit
from fleet.redis_client import RedisClient
from fleet.settings import Settings


class Exit:
    """Exit codes, so scripts can tell failures apart."""

    FAILED = 1
    DATABASE_UNREACHABLE = 2
    POSTGIS_MISSING = 3
    BAD_SETTINGS = 4


def log_to_stderr() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")


def fail(message: str, code: int) -> typer.Exit:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def where(url: URL) -> str:
    return f"{url.host or 'localhost'}:{url.port or 5432}/{url.database}"


def ensure_database(settings: Settings) -> None:
    """Create the database when the server is there but the database is not (a fresh cluster)."""
    url = settings.owner_database
    admin = create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        connect_args={"connect_timeout": 5},
    )
    try:
        with admin.connect() as conn:
            exists = conn.execute(
                text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": url.database}
            ).scalar()
            if not exists:
                typer.echo(f"creating database {url.database}")
                conn.execute(text(f'CREATE DATABASE "{url.database}"'))
            available = conn.execute(
                text("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'")
            ).scalar()
    except OperationalError as error:
        raise fail(
            f"database server unreachable at {where(url)}: {str(error.orig).strip()}\n"
            "Is PostgreSQL running? `make run` starts a local one if FLEET_DATABASE_URL is unset.",
            Exit.DATABASE_UNREACHABLE,
        ) from None
    finally:
        admin.dispose()
    if not available:
        raise fail(
            "PostGIS is not installed on the database server "
            "(Debian: apt-get install postgresql-15-postgis-3)",
            Exit.POSTGIS_MISSING,
        )


def check_database(settings: Settings) -> None:
    engine = make_engine(settings, pool_size=1)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT postgis_lib_version()"))
    except OperationalError as error:
        raise fail(
            f"database unreachable at {where(settings.database)}: {str(error.orig).strip()}",
            Exit.DATABASE_UNREACHABLE,
        ) from None
    except Exception:
        raise fail(
            f"PostGIS is not enabled in {where(settings.database)}: run `fleet db upgrade`",
            Exit.POSTGIS_MISSING,
        ) from None
    finally:
        engine.dispose()


@contextmanager
def database(settings: Settings, *, pool_size: int = 1, owner: bool = False) -> Iterator[Engine]:
    """The command's engine, once the database answers; disposed when the command is done.
    `owner`: connect as the schema's owner, for work that replaces tables."""
    check_database(settings)
    engine = make_engine(settings.as_owner() if owner else settings, pool_size=pool_size)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def transaction(settings: Settings) -> Iterator[Session]:
    """A session whose work is committed when the block ends, rolled back if it raises."""
    with database(settings) as engine, unit_of_work(make_session_factory(engine)) as session:
        yield session


@contextmanager
def reading(settings: Settings) -> Iterator[Session]:
    """A session for a command that only reads."""
    with database(settings) as engine, make_session_factory(engine)() as session:
        yield session


@contextmanager
def redis_client(settings: Settings, **timeouts: float) -> Iterator[RedisClient]:
    """The command's Redis connection (`socket_timeout`, `socket_connect_timeout` in s), to a
    cluster when FLEET_REDIS_CLUSTER says so."""
    redis = settings.redis.connect(**timeouts)
    try:
        yield redis
    finally:
        redis.close()


@contextmanager
def refusals() -> Iterator[None]:
    """A domain's refusal ends the command with its message, naming each bad line of a refused
    file, and exit 1."""
    try:
        yield
    except Rejected as error:
        lines = [f"  line {p['line']}: {p['field']}: {p['reason']}" for p in error.problems]
        raise fail("\n".join([error.message, *lines]), Exit.FAILED) from None
    except FleetError as error:
        raise fail(error.message, Exit.FAILED) from None


def unit_by_code(session: Session, code: str) -> OrgUnit:
    unit = session.scalar(select(OrgUnit).where(OrgUnit.code == code))
    if unit is None:
        raise fail(f"no unit with code {code!r}", Exit.FAILED)
    return unit


def root_units(session: Session) -> list[OrgUnit]:
    return list(session.scalars(select(OrgUnit).where(OrgUnit.parent_id.is_(None))))


def system_actor(session: Session, unit: str | None) -> Actor:
    """The system acting over the unit named by code, or over the only root unit."""
    if unit is not None:
        return Actor.system(unit_by_code(session, unit))
    roots = root_units(session)
    if len(roots) != 1:
        raise fail("several root units exist: name one with --unit", Exit.FAILED)
    return Actor.system(roots[0])
