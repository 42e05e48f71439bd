"""The engine: a batch of fixes -> fence membership -> each vehicle's rules in time order.

Pure: fences, calendar, permits and per-vehicle states come in, alert records and new states go
out. The ingest worker runs it on every batch (`geofence.worker`), `fleet replay` on stored
tracks; both feed the same fixes in the same order, so they raise the same episodes.

Per fix, in order:
1. fixes not newer than the vehicle's last evaluated fix are skipped (a re-sent batch, a
   blind-area upload: those go through `fleet replay`);
2. membership: the active fences in the vehicle's scope that contain the fix;
3. context: local time, working time (a day the calendar lacks is reported, never guessed),
   movement, the permit covering the moment and the distance from its corridor, the speed limit;
4. every rule's `step`, in the order of `geofence.rules.REGISTERED`.

`Engine.run_plain` is that pipeline written fix by fix, every rule stepped on every fix: the
definition (`plain`). `Engine.run`, which the worker and replay use, gives the same outcome
faster (`fast`): steps 1 to 3 for the whole batch at once (`batch`, `scene`), then only the
rules in an episode or woken from rest by a fix (each rule's wake condition). A test holds the
two to the same outcome on random timelines; the bench measures one beside the other.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geofence.calendar import LocalClock, WorkingCalendar
from geofence.engine import fast, plain
from geofence.engine.base import AlertRecord, Kinematics, Outcome, new_state
from geofence.engine.batch import fix_columns
from geofence.fences import FenceSet, VehicleInfo
from geofence.permits import PermitSource
from geofence.rules.base import Fix, Thresholds

__all__ = ["AlertRecord", "Engine", "Kinematics", "Outcome", "fix_columns", "new_state"]


@dataclass
class Engine:
    fences: FenceSet
    calendar: WorkingCalendar
    clock: LocalClock
    thresholds: Thresholds
    permits: PermitSource

    def run(
        self,
        tracks: Mapping[int, Sequence[Fix]],
        states: Mapping[int, dict[str, Any]],
        vehicles: Mapping[int, VehicleInfo],
        columns: np.ndarray | None = None,
    ) -> Outcome:
        """`tracks` holds each vehicle's fixes in time order; `states` what the engine left after
        the vehicle's last evaluated fix (missing: a vehicle seen for the first time).
        `columns`, where the caller has them (the ingest worker reads its batch as columns), are
        the same fixes, vehicle after vehicle, as a float array of a row per fix: the `Fix`
        fields, None as NaN (`fix_columns` of those fixes), so they need not be read back out
        of the tuples."""
        return fast.run(self, tracks, states, vehicles, columns)

    def run_plain(
        self,
        tracks: Mapping[int, Sequence[Fix]],
        states: Mapping[int, dict[str, Any]],
        vehicles: Mapping[int, VehicleInfo],
    ) -> Outcome:
        """The same outcome as `run`, worked out fix by fix with every rule stepped on every fix."""
        return plain.run(self, tracks, states, vehicles)
