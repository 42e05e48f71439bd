"""Alembic, driven from code: the CLI and the tests build the schema only through migrations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Connection, Engine, MetaData, create_engine, text

from fleet.settings import Settings

# The checkout's migrations/; an installed wheel carries them inside this package, where the build
# step put them (scripts/packaging.py).
HERE = Path(__file__).resolve().parent
MIGRATIONS = HERE / "migrations" if (HERE / "migrations").is_dir() else HERE.parent / "migrations"

# PostGIS, pgRouting and their companions own these; they are not ours to compare or drop.
FOREIGN_TABLES = frozenset({"spatial_ref_sys", "geography_columns", "geometry_columns"})
FOREIGN_SCHEMAS = frozenset({"tiger", "tiger_data", "topology"})


def config(settings: Settings) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(year)d-%%(month).2d-%%(day).2d_%%(slug)s")
    cfg.attributes["settings"] = settings
    return cfg


def upgrade(settings: Settings, revision: str = "head") -> None:
    """Migrate as the schema's owner, then grant the application role what it needs."""
    command.upgrade(config(settings.as_owner()), revision)
    role = settings.app_role
    if role is not None:
        engine = create_engine(settings.owner_database, connect_args={"connect_timeout": 5})
        try:
            with engine.begin() as conn:
                grant_app_role(conn, role)
        finally:
            engine.dispose()


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(config(settings.as_owner()), revision)


class RoleError(RuntimeError):
    """The application role is missing, or is not a role the owner's grants can bound."""


# What the processes may not do to these tables (they may read them all): the audit log and the
# positions are appended to only; positions leave through fleet_prune_positions (migration 0013).
APPEND_ONLY = ("audit_entry", "position")
# The archive's record changes only through the owner's functions of migration 0015.
READ_ONLY = ("alembic_version", "archive_partition")
FUNCTIONS = (
    "fleet_position_partition(timestamptz)",
    "fleet_prune_positions(timestamptz)",
    "fleet_archive_record(date, integer, bigint, timestamptz, timestamptz, jsonb, bigint, text)",
    "fleet_archive_drop(date, integer)",
    "fleet_archive_restored(date)",
)


def grant_app_role(conn: Connection, role: str) -> None:
    """Give `role` exactly the processes' rights, whatever it held before (run after every
    upgrade, so tables a migration adds are covered). Partitions made at run time are reached
    through `position`, whose rights are the ones checked. The tables are the migrated ones,
    read from the catalogue (partitions and the extensions' tables left out)."""
    found = conn.execute(
        text("SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    if found is None:
        raise RoleError(
            f"the application role {role!r} (FLEET_DATABASE_URL) does not exist; a superuser"
            f" creates it: CREATE ROLE {role} LOGIN PASSWORD '...'"
        )
    if found.rolsuper:
        raise RoleError(
            f"the application role {role!r} is a superuser: it could rewrite the audit log."
            " Connect the processes as a plain role (FLEET_DATABASE_URL) and migrate as the"
            " owner (FLEET_DATABASE_OWNER)"
        )
    quoted = conn.dialect.identifier_preparer.quote(role)
    ours = conn.scalars(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition"
            " AND pg_get_userbyid(c.relowner) = current_user"
            " AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass"
            " AND d.objid = c.oid AND d.deptype = 'e') ORDER BY c.relname"
        )
    ).all()
    writable = [t for t in ours if t not in APPEND_ONLY + READ_ONLY]
    statements = [
        f"GRANT USAGE ON SCHEMA public TO {quoted}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {quoted}",
        f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {quoted}",
        f"GRANT INSERT, UPDATE, DELETE ON {', '.join(writable)} TO {quoted}",
        f"GRANT INSERT ON {', '.join(APPEND_ONLY)} TO {quoted}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
        *(f"GRANT EXECUTE ON FUNCTION {f} TO {quoted}" for f in FUNCTIONS),
    ]
    for statement in statements:
        conn.execute(text(statement))


def _is_partition(name: str | None) -> bool:
    """Monthly partitions of `position` are made at run time, not by migrations."""
    return bool(name) and re.fullmatch(r"position_p\d{6}", name or "") is not None


def include_object(
    obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any
) -> bool:
    foreign = name in FOREIGN_TABLES or getattr(obj, "schema", None) in FOREIGN_SCHEMAS
    if type_ == "index" and _is_partition(getattr(getattr(obj, "table", None), "name", None)):
        return False
    return not (type_ == "table" and (foreign or _is_partition(name)))


def differences(engine: Engine, metadata: MetaData) -> list[Any]:
    """What the models declare (`metadata`, with every package's tables: the composition root's
    registry) that the migrated database does not have, or the reverse."""
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_object,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        return list(compare_metadata(context, metadata))
