"""Part of the composition root: which domain reads which outbox events into notifications to
people (fleet/notifications.py), for `fleet forward`'s notifier."""

from dispatch import notices as dispatch_notices
from fleet.notifications import Deriver
from geofence import notices as geofence_notices

# By the event's `object_type`.
DERIVERS: dict[str, Deriver] = {
    "trip_order": dispatch_notices.order_notices,
    "alert": geofence_notices.alert_notices,
}
