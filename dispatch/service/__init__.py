"""Services of dispatch: trip orders through their life, approval, assignment.

Each takes the session first and never commits; the request commits. Every status change writes
an audit entry in the same transaction. The package's modules hold one concern each; this is the
door the routers, the demo and the reports come through (`from dispatch import service`).
"""

from dispatch.service.approvals import (
    create_rule,
    decide,
    delete_rule,
    list_rules,
    overdue_emergencies,
    pending_for,
    traits,
)
from dispatch.service.assignment import assign, planned_route
from dispatch.service.availability import dispatch_plan, suggestions, vehicle_facts, window
from dispatch.service.lifecycle import cancel, create_order, finish, start, submit
from dispatch.service.merged import merge, unmerge
from dispatch.service.ratings import rate
from dispatch.service.scope import get_order, list_orders
from dispatch.service.views import trips_of, view, views

__all__ = [
    "assign",
    "cancel",
    "create_order",
    "create_rule",
    "decide",
    "delete_rule",
    "dispatch_plan",
    "finish",
    "get_order",
    "list_orders",
    "list_rules",
    "merge",
    "overdue_emergencies",
    "pending_for",
    "planned_route",
    "rate",
    "start",
    "submit",
    "suggestions",
    "traits",
    "trips_of",
    "unmerge",
    "vehicle_facts",
    "view",
    "views",
    "window",
]
