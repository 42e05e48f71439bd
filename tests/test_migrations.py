"""The schema is built only by migrations; they go up, down and up again, and match the models."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import inspect, text

import app.model_registry  # noqa: F401 - every package's tables on Base.metadata
from fleet import migrate
from fleet.db import Base, make_engine
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
    engine = make_engine(scratch_settings.as_owner(), pool_size=1)
    try:
        assert migrate.differences(engine, Base.metadata) == []
        # The comparison does see a drift: drop an index the models declare.
        with engine.begin() as conn:
            conn.execute(text("DROP INDEX ix_vehicle_unit_id"))
        drift = migrate.differences(engine, Base.metadata)
        assert [d[0] for d in drift] == ["add_index"]
    finally:
        with engine.begin() as conn:
            conn.execute(text("CREATE INDEX IF NOT EXISTS ix_vehicle_unit_id ON vehicle (unit_id)"))
        engine.dispose()


def test_the_application_role_gets_what_the_processes_need_and_no_more(
    scratch_settings: Settings,
):
    role = scratch_settings.app_role
    assert role, "the suite runs as an application role (FLEET_DATABASE_OWNER)"
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings.as_owner(), pool_size=1)
    checks = {
        ("audit_entry", "SELECT"): True,
        ("audit_entry", "INSERT"): True,
        ("audit_entry", "UPDATE"): False,
        ("audit_entry", "DELETE"): False,
        ("audit_entry", "TRUNCATE"): False,
        ("position", "INSERT"): True,
        ("position", "UPDATE"): False,
        ("position", "DELETE"): False,
        ("vehicle", "UPDATE"): True,
        ("trip_order", "DELETE"): True,
        ("alembic_version", "UPDATE"): False,
        ("road", "TRUNCATE"): False,
    }
    try:
        with engine.connect() as conn:
            held = {
                (table, right): conn.execute(
                    text("SELECT has_table_privilege(:role, :table, :right)"),
                    {"role": role, "table": table, "right": right},
                ).scalar()
                for table, right in checks
            }
            assert held == checks
            assert not conn.execute(
                text("SELECT has_schema_privilege(:role, 'public', 'CREATE')"), {"role": role}
            ).scalar()
            for function in migrate.FUNCTIONS:
                assert conn.execute(
                    text("SELECT has_function_privilege(:role, :f, 'EXECUTE')"),
                    {"role": role, "f": function},
                ).scalar()
                assert not conn.execute(
                    text("SELECT has_function_privilege('public', :f, 'EXECUTE')"),
                    {"f": function},
                ).scalar()
    finally:
        engine.dispose()


def test_a_missing_or_superuser_application_role_is_refused(scratch_settings: Settings):
    url = scratch_settings.database.set(username="no_such_fleet_role")
    missing = scratch_settings.model_copy(
        update={"database_url": url.render_as_string(hide_password=False)}
    )
    with pytest.raises(migrate.RoleError, match="does not exist"):
        migrate.upgrade(missing)
    engine = make_engine(scratch_settings.as_owner(), pool_size=1)
    try:
        with engine.connect() as conn, pytest.raises(migrate.RoleError, match="superuser"):
            migrate.grant_app_role(conn, "postgres")  # initdb's superuser
    finally:
        engine.dispose()


def test_status_since_is_taken_from_the_latest_audited_status_change(scratch_settings: Settings):
    """Migration 0023: each vehicle's `status_since` is the time of its latest audited status
    change (action "status", or an update or disposal whose before and after differ in status);
    a vehicle with none (other changes only, its creation) gets NULL."""
    # the module's database, at 0022 (an earlier test may have left it at the head)
    migrate.upgrade(scratch_settings, "0022")
    migrate.downgrade(scratch_settings, "0022")
    engine = make_engine(scratch_settings.as_owner(), pool_size=1)
    try:
        with engine.begin() as conn:
            unit = conn.execute(
                text(
                    "INSERT INTO org_unit (code, name, path) VALUES ('MIG', 'mig', '') RETURNING id"
                )
            ).scalar_one()
            ids = (
                conn.execute(
                    text(
                        "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                        " SELECT '浙A·M000' || n, 'general', 'sedan', 4, 'bev', :u"
                        " FROM generate_series(1, 3) n RETURNING id"
                    ),
                    {"u": unit},
                )
                .scalars()
                .all()
            )
            same = {"status": "active", "seats": 4}, {"status": "active", "seats": 5}
            sealed = {"status": "active", "seats": 4}, {"status": "sealed", "seats": 5}
            entries = [  # (vehicle, action, day of November 2026, (before, after))
                (ids[0], "status", 2, sealed),
                (ids[0], "status", 9, sealed),
                (ids[0], "update", 20, same),  # not a status change
                (ids[0], "status", 5, sealed),  # an older change recorded later: the latest counts
                (ids[1], "update", 3, same),
                (ids[2], "create", 1, (None, {"status": "sealed"})),
                (ids[2], "update", 4, same),
                (ids[2], "update", 6, sealed),  # status and seats at once
                (ids[2], "dispose", 8, ({"status": "sealed"}, {"status": "disposed"})),
            ]
            for n, (vehicle, action, day, (before, after)) in enumerate(entries):
                conn.execute(
                    text(
                        "INSERT INTO audit_entry (at, actor, action, entity, entity_id, before,"
                        " after, prev_hash, hash) VALUES (make_timestamptz(2026, 11, :day, 2, 0,"
                        " 0, 'UTC'), 'system', :action, 'vehicle', :vehicle, :before, :after,"
                        " '', :hash)"
                    ),
                    {
                        "day": day,
                        "action": action,
                        "vehicle": str(vehicle),
                        "before": None if before is None else json.dumps(before),
                        "after": json.dumps(after),
                        "hash": f"h{n}",
                    },
                )
        migrate.upgrade(scratch_settings)
        with engine.connect() as conn:
            found = conn.execute(
                text(
                    "SELECT id, extract(day FROM status_since AT TIME ZONE 'UTC') FROM vehicle"
                    " WHERE id = ANY(:ids)"
                ),
                {"ids": list(ids)},
            ).all()
        assert {v: d for v, d in found} == {ids[0]: 9, ids[1]: None, ids[2]: 8}
    finally:
        engine.dispose()
