"""Telematics: protocol codecs, gateways, the fix stream, ingest into PostGIS, trips, live."""
