"""Geofence and anomaly engine: fences, working calendar, misuse rules, alerts and their review."""
