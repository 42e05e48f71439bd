"""Alembic, driven from code: the CLI and the tests build the schema only through migrations."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from sqlalchemy import Engine, text

from fleet.settings import Settings

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"

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
    command.upgrade(config(settings), revision)


def downgrade(settings: Settings, revision: str) -> None:
    command.downgrade(config(settings), revision)


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


def differences(engine: Engine) -> list[Any]:
    """What the models declare that the migrated database does not have, or the reverse."""
    import fleet.model_registry  # noqa: F401 - every domain's tables on Base.metadata
    from fleet.db import Base

    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn,
            opts={
                "include_object": include_object,
                "compare_type": True,
                "compare_server_default": False,
            },
        )
        return list(compare_metadata(context, Base.metadata))


def postgis_version(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            return conn.execute(text("SELECT postgis_lib_version()")).scalar()
        except Exception:
            return None
