"""Attacks against a running stack, each a test that asserts the refusal: the API (`stack`: `fleet
serve` on a copy, of the module's own, of the demo database), the gateways and the ingest worker
beside it (`trackers`), as the page tests start them."""

from tests.web.conftest import (  # noqa: F401 - the fixtures, shared
    demo_database,
    stack,
    stack_env,
    trackers,
)
