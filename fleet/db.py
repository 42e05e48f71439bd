"""Database engine, sessions and the base model every table derives from."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Engine, MetaData, create_engine, func
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from fleet.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: DateTime(timezone=True)}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())


def utcnow() -> datetime:
    return datetime.now(UTC)


def make_engine(settings: Settings, **kwargs: object) -> Engine:
    options: dict[str, object] = {
        "pool_size": settings.db_pool_size,
        "pool_pre_ping": True,
        "connect_args": {"connect_timeout": 5, "options": "-c timezone=UTC"},
    }
    options.update(kwargs)
    return create_engine(settings.database_url, **options)


def make_read_engine(settings: Settings, **kwargs: object) -> Engine | None:
    """The replica's engine (FLEET_READ_DATABASE_URL), or None when reads go to the primary."""
    if settings.read_database_url is None:
        return None
    return make_engine(
        settings.model_copy(update={"database_url": settings.read_database_url}), **kwargs
    )


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(factory: sessionmaker[Session]) -> Iterator[Session]:
    """The boundary for CLI commands and workers: commit on success, roll back on any error."""
    with factory() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
