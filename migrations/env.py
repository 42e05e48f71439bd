"""Alembic environment: the URL comes from Fleet's settings, never from alembic.ini."""

from __future__ import annotations

from alembic import context
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine

import app.model_registry  # noqa: F401 - all tables on the metadata
from fleet.db import Base
from fleet.migrate import include_object
from fleet.settings import Settings

config = context.config
settings: Settings = config.attributes.get("settings") or Settings()


def include(obj, name, type_, reflected, compare_to):  # type: ignore[no-untyped-def]
    return include_object(obj, name, type_, reflected, compare_to) and (
        alembic_helpers.include_object(obj, name, type_, reflected, compare_to)
    )


def run_migrations_online() -> None:
    engine = create_engine(settings.owner_database, connect_args={"connect_timeout": 5})
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            include_object=include,
            process_revision_directives=alembic_helpers.writer,
            render_item=alembic_helpers.render_item,
            compare_type=True,
            transaction_per_migration=True,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


run_migrations_online()
