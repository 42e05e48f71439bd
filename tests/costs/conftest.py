"""The dispatch tests' pool, people and order builder, shared."""

from tests.dispatch.conftest import order_body, people, pool  # noqa: F401
