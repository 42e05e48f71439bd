"""The HTTP edge: the app factory, pages, static assets, the live WebSocket hub, map tiles."""
