"""`no_order`: the vehicle drives in working time with no approved assignment covering it.

Movement inside a depot fence does not count (washing, re-parking); categories in
`no_order_exempt` may drive without an order. A sealed, disposed or maintenance vehicle's
movement is judged by the rules of vehicles that should not move instead (`movement.NOT_IN_USE`).
"""

from __future__ import annotations

from geofence.rules import movement
from geofence.rules.base import Severity

KIND = "no_order"
SEVERITY = Severity.MEDIUM
RULE = movement.rule(KIND, SEVERITY, working=True, exempt="no_order_exempt")
step = RULE.step
