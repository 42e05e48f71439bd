"""The registry announces its changes: a device added, changed or removed, or a vehicle moved to
another unit or removed, is a NOTIFY on `fleet_registry` when its transaction commits (payload
`d<id>` or `v<id>`), so the gateways' copy of the registry follows at once instead of reloading
it whole when it grows old.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-05
"""

from __future__ import annotations

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE FUNCTION fleet_registry_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    tag text := CASE TG_TABLE_NAME WHEN 'device' THEN 'd' ELSE 'v' END;
BEGIN
    IF TG_OP = 'DELETE' THEN
        PERFORM pg_notify('fleet_registry', tag || OLD.id);
        RETURN OLD;
    END IF;
    PERFORM pg_notify('fleet_registry', tag || NEW.id);
    RETURN NEW;
END
$$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    # Only what a gateway keeps of a device: a registration (a new auth code, a binding) is not
    # announced, so a reconnection storm does not echo back to the gateways.
    op.execute(
        "CREATE TRIGGER device_announced AFTER INSERT OR DELETE OR UPDATE OF protocol,"
        " identifier, vehicle_id, unit_id, enabled, secret_digest ON device"
        " FOR EACH ROW EXECUTE FUNCTION fleet_registry_changed()"
    )
    # What a gateway keeps of a vehicle: its unit (live updates are scoped by it).
    op.execute(
        "CREATE TRIGGER vehicle_announced AFTER UPDATE OF unit_id OR DELETE ON vehicle"
        " FOR EACH ROW EXECUTE FUNCTION fleet_registry_changed()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER vehicle_announced ON vehicle")
    op.execute("DROP TRIGGER device_announced ON device")
    op.execute("DROP FUNCTION fleet_registry_changed()")
