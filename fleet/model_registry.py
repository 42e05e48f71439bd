"""Imports every package's models so that Base.metadata knows all tables (for Alembic)."""

import fleet.models  # noqa: F401
