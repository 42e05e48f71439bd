"""The Redis pub/sub channels, named once: who publishes on each, and what the live WebSocket
(web.live) makes of it. Messages are JSON objects with a `type`."""

from __future__ import annotations

# Positions as gateways accept them: {"type": "positions", "items": [...]} (telematics.stream).
LIVE = "fleet:live"
# Alerts opened, updated or reviewed: {"type": "alerts", "items": [...]} (the one alert writer).
ALERTS = "fleet:alerts"
# Trip orders that moved: {"type": "orders", "items": [...]} (dispatch.service).
ORDERS = "fleet:orders"
# A user's token revoked (logout, deactivation): {"type": "revoked", "user_id": N}; never a token.
REVOKED = "fleet:revoked"
