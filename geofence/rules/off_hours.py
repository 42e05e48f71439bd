"""`off_hours`: the vehicle drives outside working time (after hours, a weekend, a public
holiday; an adjusted working Saturday is working time) with no approved assignment covering it.

Categories in `off_hours_exempt` (emergency, enforcement... by default) are exempt. A day the
calendar does not cover is never guessed: the engine reports it and this rule stays silent.
"""

from __future__ import annotations

from geofence.rules import movement
from geofence.rules.base import Severity

KIND = "off_hours"
SEVERITY = Severity.HIGH
RULE = movement.rule(KIND, SEVERITY, working=False, exempt="off_hours_exempt")
step = RULE.step
