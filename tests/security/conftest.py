"""Attacks against a running stack, each a test that asserts the refusal: the API (`stack`: `fleet
serve` on a database of the module's own, the demo seeded), the gateways and the ingest worker
beside it (`trackers`), as the page tests start them."""

from tests.web.conftest import stack, trackers  # noqa: F401 - the fixtures, shared
