"""Positions through two owner's functions: the application role may INSERT and SELECT positions
but not make tables nor delete rows, so a monthly partition is made, and positions past their
retention are deleted, by functions that run as the schema's owner (SECURITY DEFINER) and check
what they are asked. Grants to the application role are made by `fleet db upgrade`
(fleet/migrate.py), which knows the role's name.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

PARTITION = """
CREATE FUNCTION fleet_position_partition(month_start timestamptz) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    name text := 'position_p' || to_char(month_start, 'YYYYMM');
BEGIN
    IF month_start IS NULL OR month_start <> date_trunc('month', month_start) THEN
        RAISE EXCEPTION 'a partition of position starts at a month''s first moment (UTC), not %',
            month_start USING ERRCODE = 'invalid_parameter_value';
    END IF;
    -- Two workers may meet a new month at once: the lock makes one of them create it.
    PERFORM pg_advisory_xact_lock(hashtext('fleet.position.partition'));
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS %I PARTITION OF position FOR VALUES FROM (%L) TO (%L)',
        name, month_start, month_start + interval '1 month'
    );
    RETURN name;
END
$$
"""

# Deletes every position before `cutoff`: whole months as partitions, the cut-off's month by
# rows. A cut-off under a year old is refused: the application cannot wipe recent tracks, whatever
# it is told (FLEET_POSITION_RETENTION_YEARS is at least 1).
PRUNE = """
CREATE FUNCTION fleet_prune_positions(
    cutoff timestamptz, OUT partitions_dropped text[], OUT rows_deleted bigint
)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp SET timezone = 'UTC' AS $$
DECLARE
    part text;
    start timestamptz;
    counted bigint;
BEGIN
    IF cutoff IS NULL OR cutoff > now() - interval '1 year' THEN
        RAISE EXCEPTION 'positions under a year old are not deleted (cut-off %)', cutoff
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    PERFORM pg_advisory_xact_lock(hashtext('fleet.position.partition'));
    partitions_dropped := ARRAY[]::text[];
    rows_deleted := 0;
    FOR part IN
        SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'position'::regclass AND c.relname ~ '^position_p[0-9]{6}$'
        ORDER BY c.relname
    LOOP
        start := to_timestamp(substr(part, 11), 'YYYYMM');
        IF start + interval '1 month' <= cutoff THEN
            EXECUTE format('SELECT count(*) FROM %I', part) INTO counted;
            EXECUTE format('DROP TABLE %I', part);
            rows_deleted := rows_deleted + counted;
            partitions_dropped := partitions_dropped || part;
        END IF;
    END LOOP;
    DELETE FROM position WHERE fix_time < cutoff;
    GET DIAGNOSTICS counted = ROW_COUNT;
    rows_deleted := rows_deleted + counted;
END
$$
"""


def upgrade() -> None:
    op.execute(PARTITION)
    op.execute(PRUNE)
    for function in ("fleet_position_partition(timestamptz)", "fleet_prune_positions(timestamptz)"):
        op.execute(f"REVOKE ALL ON FUNCTION {function} FROM PUBLIC")


def downgrade() -> None:
    op.execute("DROP FUNCTION fleet_prune_positions(timestamptz)")
    op.execute("DROP FUNCTION fleet_position_partition(timestamptz)")
