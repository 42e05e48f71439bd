"""The composition root: the command line, and the registry of every package's models. The one
place that wires the kernel and the domains together (the app factory, web.app, is the HTTP
edge's)."""
