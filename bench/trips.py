"""Trip segmentation speed: `trips.advance` over a batch's numpy columns, beside the per-fix loop
(a `TrackPoint` made from the columns and `step` for each fix) measured in the same run.

Batches as the ingest worker sees them, over a fleet whose states come from earlier fixes:
(1) a backlog draining: 16 fixes of every vehicle, each driving on in an open trip;
(2) live: one fix of every vehicle, half of them parked, half driving on;
(3) a backlog in which a tenth of the fleet parks and so ends its trip: those go through `step`.
Before the clock starts, `advance` is checked to give what the loop gives. Both take the states
over, so each run gets fresh copies, made before its clock starts. No database: the pure cost.

    python -m bench.trips [--vehicles 5000] [--repeat 5]
"""

from __future__ import annotations

import math
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np

from bench._support import options, parse, table
from telematics.trips import Segment, State, Thresholds, TrackPoint, Trip, advance, step

T0 = 1_790_000_000.0
M_PER_DEG_LAT = 111_195.0
TH = Thresholds()
ON, OFF = 1, 0

Row = tuple[float, float, float, float, int, float]  # t, lat, lon, km/h, ignition, odometer km
Result = tuple[list[State | None], list[tuple[int, Segment]]]
# t, lat, lon, speed, ignition, odometer: `advance`'s columns
Columns = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


@dataclass
class Vehicle:
    t: float
    lat: float
    lon: float
    odo_km: float
    state: State | None = None

    def fix(self, dt: float, kmh: float, ignition: int) -> Row:
        """The next fix, `dt` seconds on at `kmh` heading north."""
        self.t += dt
        self.lat += kmh / 3.6 * dt / M_PER_DEG_LAT
        self.odo_km += kmh / 3600 * dt
        return (self.t, self.lat, self.lon, kmh, ignition, round(self.odo_km, 3))

    def feed(self, rows: list[Row]) -> None:
        """Bring the state up to `rows` by the loop (a warm-up, before the batch)."""
        for t, lat, lon, kmh, ignition, odo in rows:
            point = TrackPoint(t, lat, lon, kmh, ignition == ON, odo)
            self.state, _ = step(self.state, point, TH)


@dataclass
class Batch:
    states: list[State | None]
    starts: np.ndarray
    columns: Columns

    @property
    def fixes(self) -> int:
        return len(self.columns[0])


def fleet(n: int, rng: random.Random, *, driving: Callable[[int], bool]) -> list[Vehicle]:
    """`n` vehicles around Hangzhou, each in an open trip (where `driving(k)`) or parked."""
    vehicles = []
    for k in range(n):
        v = Vehicle(T0 + rng.uniform(0, 30), 30.1 + rng.uniform(0, 0.3), 120.0 + k * 1e-4, 1e4)
        v.feed([v.fix(10, 0.0, OFF) for _ in range(30)])
        if driving(k):
            v.feed([v.fix(5, rng.uniform(20, 100), ON) for _ in range(5)])
        vehicles.append(v)
    return vehicles


def batch_of(vehicles: list[Vehicle], rows: list[list[Row]]) -> Batch:
    starts = np.cumsum([0, *(len(r) for r in rows)], dtype=np.int64)
    t, lat, lon, speed, ignition, odometer = np.array(
        [row for group in rows for row in group], dtype=np.float64
    ).T
    columns = (t, lat, lon, speed, ignition.astype(np.int8), odometer)
    return Batch([v.state for v in vehicles], starts, columns)


def backlog(n: int, rng: random.Random) -> Batch:
    vehicles = fleet(n, rng, driving=lambda _: True)
    rows = [[v.fix(5, rng.uniform(20, 100), ON) for _ in range(16)] for v in vehicles]
    return batch_of(vehicles, rows)


def live(n: int, rng: random.Random) -> Batch:
    vehicles = fleet(n, rng, driving=lambda k: k % 2 == 0)
    rows = [
        [v.fix(5, rng.uniform(20, 100), ON) if k % 2 == 0 else v.fix(30, 0.0, OFF)]
        for k, v in enumerate(vehicles)
    ]
    return batch_of(vehicles, rows)


def backlog_with_arrivals(n: int, rng: random.Random) -> Batch:
    vehicles = fleet(n, rng, driving=lambda _: True)
    rows = []
    for k, v in enumerate(vehicles):
        if k % 10 == 0:  # parks after two fixes: 14 x 15 s off closes the trip
            arriving = [v.fix(5, 40.0, ON) for _ in range(2)]
            rows.append(arriving + [v.fix(15, 0.0, OFF) for _ in range(14)])
        else:
            rows.append([v.fix(5, rng.uniform(20, 100), ON) for _ in range(16)])
    return batch_of(vehicles, rows)


def run_loop(batch: Batch) -> Result:
    """The worker today: a `TrackPoint` from each row of the columns, then `step`."""
    t, lat, lon, speed, ignition, odometer = (c.tolist() for c in batch.columns)
    bounds = batch.starts.tolist()
    states: list[State | None] = []
    out: list[tuple[int, Segment]] = []
    for k, state in enumerate(batch.states):
        for i in range(bounds[k], bounds[k + 1]):
            point = TrackPoint(
                t[i],
                None if lat[i] != lat[i] else lat[i],
                None if lon[i] != lon[i] else lon[i],
                None if speed[i] != speed[i] else speed[i],
                None if ignition[i] < 0 else ignition[i] > 0,
                None if odometer[i] != odometer[i] else odometer[i],
            )
            state, closed = step(state, point, TH)
            out.extend((k, segment) for segment in closed)
        states.append(state)
    return states, out


def run_advance(batch: Batch) -> Result:
    states, out = advance(batch.states, batch.starts, *batch.columns, TH)
    return list(states), out


def fresh(batch: Batch) -> Batch:
    """The batch with copies of its states (the lists in them are never changed in place)."""
    states = [None if s is None else State.from_dict(s.to_dict()) for s in batch.states]
    return Batch(states, batch.starts, batch.columns)


def check_same(batch: Batch) -> int:
    """Fail unless `advance` gives the loop's states and segments; the number of segments."""
    mine, my_segments = run_advance(fresh(batch))
    theirs, their_segments = run_loop(fresh(batch))
    for a, b in zip(mine, theirs, strict=True):
        for name in (f.name for f in fields(State)):
            x, y = getattr(a, name), getattr(b, name)
            close = isinstance(y, float) and math.isclose(x, y, rel_tol=1e-9)
            assert close or x == y, (name, x, y)
    assert [(k, type(s)) for k, s in my_segments] == [(k, type(s)) for k, s in their_segments]
    for (_, s), (_, r) in zip(my_segments, their_segments, strict=True):
        if isinstance(s, Trip) and isinstance(r, Trip):
            assert math.isclose(s.distance_m, r.distance_m, rel_tol=1e-9)
    return len(my_segments)


def best_of(run: Callable[[Batch], Result], batch: Batch, repeat: int) -> float:
    """Best wall-clock seconds over `repeat` runs, each on fresh states (copied untimed)."""
    best = math.inf
    for _ in range(repeat):
        fresh_batch = fresh(batch)
        start = time.perf_counter()
        run(fresh_batch)
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> None:
    parser = options(__doc__)
    parser.add_argument("--vehicles", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parse(parser, argv)
    rng = random.Random(7)
    n = args.vehicles
    scenarios = [
        (f"{n:,} x 16 fixes, all driving on", backlog(n, rng)),
        (f"{n:,} x 1 fix, half parked", live(n, rng)),
        (f"{n:,} x 16 fixes, 1 in 10 parks", backlog_with_arrivals(n, rng)),
    ]
    rows: list[tuple[str, ...]] = [
        ("batch", "fixes", "segments", "loop fixes/s", "advance fixes/s", "x loop")
    ]
    for name, batch in scenarios:
        segments = check_same(batch)
        loop_s = best_of(run_loop, batch, args.repeat)
        advance_s = best_of(run_advance, batch, args.repeat)
        rows.append(
            (
                name,
                f"{batch.fixes:,}",
                f"{segments:,}",
                f"{batch.fixes / loop_s:,.0f}",
                f"{batch.fixes / advance_s:,.0f}",
                f"{loop_s / advance_s:.1f}",
            )
        )
    print(table(rows), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
