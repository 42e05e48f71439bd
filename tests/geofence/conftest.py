"""Geofence tests that need real commits share the telematics fleetlet (a scratch database)."""

from tests.telematics.conftest import clean_tracks, fleetlet, tsettings  # noqa: F401
