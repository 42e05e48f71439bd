"""Tiered storage of positions: a monthly partition leaves PostGIS for verified GeoParquet files.

`archive_partition` records each archived part of a month: its files with their row counts, time
bounds and SHA-256, and its state. The processes' role only reads it; it changes through three
owner's functions (SECURITY DEFINER) that check what they are told against the partition itself:

- `fleet_archive_record` takes the archiver's word for the files only when the partition holds
  exactly the rows, first and last fix times the archiver wrote (state `verified`);
- `fleet_archive_drop` detaches and drops the partition of a verified part, after counting it
  again under an exclusive lock (a late fix since the export refuses the drop), and marks the
  part `archived` in the same transaction: a reader sees the partition or the archive, never
  neither;
- `fleet_archive_restored` marks a month's parts `restored` once its rows are back in PostGIS.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

# The checks shared by record and drop: the partition's rows, first and last fix times.
RECORD = """
CREATE FUNCTION fleet_archive_record(
    a_month date, a_part integer, a_rows bigint, a_min timestamptz, a_max timestamptz,
    a_files jsonb, a_bytes bigint, a_url text
) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    name text := 'position_p' || to_char(a_month, 'YYYYMM');
    counted bigint;
    first timestamptz;
    last timestamptz;
BEGIN
    IF a_month IS NULL OR a_month <> date_trunc('month', a_month)::date THEN
        RAISE EXCEPTION 'an archived month starts on its first day, not %', a_month
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF to_regclass(name) IS NULL THEN
        RAISE EXCEPTION 'no partition % to archive', name USING ERRCODE = 'undefined_table';
    END IF;
    IF EXISTS (SELECT 1 FROM archive_partition WHERE month = a_month AND part = a_part
               AND state <> 'verified') THEN
        RAISE EXCEPTION 'part % of % is recorded already', a_part, a_month
            USING ERRCODE = 'unique_violation';
    END IF;
    EXECUTE format('SELECT count(*), min(fix_time), max(fix_time) FROM %I', name)
        INTO counted, first, last;
    IF counted <> a_rows OR first IS DISTINCT FROM a_min OR last IS DISTINCT FROM a_max THEN
        RAISE EXCEPTION '% holds % rows from % to %, the archive % rows from % to %',
            name, counted, first, last, a_rows, a_min, a_max
            USING ERRCODE = 'data_exception';
    END IF;
    INSERT INTO archive_partition
        (month, part, state, rows, min_time, max_time, files, bytes, url, recorded_at)
    VALUES (a_month, a_part, 'verified', a_rows, a_min, a_max, a_files, a_bytes, a_url, now())
    ON CONFLICT (month, part) DO UPDATE SET
        rows = EXCLUDED.rows, min_time = EXCLUDED.min_time, max_time = EXCLUDED.max_time,
        files = EXCLUDED.files, bytes = EXCLUDED.bytes, url = EXCLUDED.url,
        recorded_at = EXCLUDED.recorded_at;
END
$$
"""

DROP = """
CREATE FUNCTION fleet_archive_drop(a_month date, a_part integer) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    name text := 'position_p' || to_char(a_month, 'YYYYMM');
    held archive_partition;
    counted bigint;
    first timestamptz;
    last timestamptz;
BEGIN
    -- The lock the partition function takes: no one makes the month again meanwhile.
    PERFORM pg_advisory_xact_lock(hashtext('fleet.position.partition'));
    SELECT * INTO held FROM archive_partition WHERE month = a_month AND part = a_part FOR UPDATE;
    IF NOT FOUND OR held.state <> 'verified' THEN
        RAISE EXCEPTION 'part % of % is not a verified archive', a_part, a_month
            USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    IF to_regclass(name) IS NULL THEN
        RAISE EXCEPTION 'no partition % to drop', name USING ERRCODE = 'undefined_table';
    END IF;
    EXECUTE format('LOCK TABLE %I IN ACCESS EXCLUSIVE MODE', name);
    EXECUTE format('SELECT count(*), min(fix_time), max(fix_time) FROM %I', name)
        INTO counted, first, last;
    IF counted <> held.rows OR first IS DISTINCT FROM held.min_time
            OR last IS DISTINCT FROM held.max_time THEN
        RAISE EXCEPTION '% changed since it was archived (% rows, the archive %)',
            name, counted, held.rows USING ERRCODE = 'serialization_failure';
    END IF;
    EXECUTE format('ALTER TABLE position DETACH PARTITION %I', name);
    EXECUTE format('DROP TABLE %I', name);
    UPDATE archive_partition SET state = 'archived', archived_at = now()
        WHERE month = a_month AND part = a_part;
    RETURN counted;
END
$$
"""

RESTORED = """
CREATE FUNCTION fleet_archive_restored(a_month date) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    name text := 'position_p' || to_char(a_month, 'YYYYMM');
    archived bigint;
    counted bigint;
BEGIN
    SELECT coalesce(sum(rows), 0) INTO archived FROM archive_partition
        WHERE month = a_month AND state = 'archived';
    IF to_regclass(name) IS NULL THEN
        RAISE EXCEPTION 'no partition % holds the restored rows', name
            USING ERRCODE = 'undefined_table';
    END IF;
    EXECUTE format('SELECT count(*) FROM %I', name) INTO counted;
    IF counted < archived THEN
        RAISE EXCEPTION '% holds % rows, fewer than the % archived', name, counted, archived
            USING ERRCODE = 'data_exception';
    END IF;
    UPDATE archive_partition SET state = 'restored', restored_at = now()
        WHERE month = a_month AND state = 'archived';
    RETURN archived;
END
$$
"""

FUNCTIONS = (
    "fleet_archive_record(date, integer, bigint, timestamptz, timestamptz, jsonb, bigint, text)",
    "fleet_archive_drop(date, integer)",
    "fleet_archive_restored(date)",
)


def upgrade() -> None:
    op.create_table(
        "archive_partition",
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("rows", sa.BigInteger(), nullable=False),
        sa.Column("min_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("max_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("files", JSONB(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("archived_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("restored_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("month", "part"),
        sa.CheckConstraint(
            "state IN ('verified', 'archived', 'restored')", name="ck_archive_partition_state"
        ),
    )
    op.execute(RECORD)
    op.execute(DROP)
    op.execute(RESTORED)
    for function in FUNCTIONS:
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def downgrade() -> None:
    for function in FUNCTIONS:
        op.execute(f"DROP FUNCTION {function}")
    op.drop_table("archive_partition")
