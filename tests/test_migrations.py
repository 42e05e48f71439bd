"""The schema is built only by migrations; they go up, down and up again, and match the models."""

from __future__ import annotations

from sqlalchemy import inspect, text

from fleet import migrate
from fleet.db import make_engine
from fleet.settings import Settings

TABLES = {"org_unit", "user_account", "auth_token", "vehicle", "driver", "device", "audit_entry"}


def _tables(settings: Settings) -> set[str]:
    engine = make_engine(settings, pool_size=1)
    try:
        return set(inspect(engine).get_table_names()) - migrate.FOREIGN_TABLES - {"alembic_version"}
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade(scratch_settings: Settings):
    migrate.upgrade(scratch_settings)
    assert _tables(scratch_settings) >= TABLES
    migrate.downgrade(scratch_settings, "base")
    assert _tables(scratch_settings) == set()
    migrate.upgrade(scratch_settings)
    assert _tables(scratch_settings) >= TABLES


def test_models_and_migrations_agree(scratch_settings: Settings):
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings, pool_size=1)
    try:
        assert migrate.differences(engine) == []
        # The comparison does see a drift: drop an index the models declare.
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_vehicle_unit_id"))
        drift = migrate.differences(engine)
        assert [d[0] for d in drift] == ["add_index"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_vehicle_unit_id ON vehicle (unit_id)"))
        engine.dispose()
