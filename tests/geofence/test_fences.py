"""Fence membership: the grid of candidates and GEOS together say what `intersects` says of
each fence and each point, boundaries and the grid's own cell edges included."""

from __future__ import annotations

import numpy as np
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st

from geofence.fences import CompiledFence, FenceSet

COORDINATE = st.integers(0, 40).map(lambda k: 120 + k / 40)  # a lattice: edges meet points


@st.composite
def fences(draw: st.DrawFn) -> list[CompiledFence]:
    found = []
    for i in range(draw(st.integers(1, 12))):
        x0, x1 = sorted(draw(st.lists(COORDINATE, min_size=2, max_size=2, unique=True)))
        y0, y1 = sorted(draw(st.lists(COORDINATE, min_size=2, max_size=2, unique=True)))
        area = draw(
            st.sampled_from(
                [
                    shapely.box(x0, y0, x1, y1),
                    shapely.Polygon([(x0, y0), (x1, y0), (x0, y1)]),
                    shapely.Point((x0 + x1) / 2, (y0 + y1) / 2).buffer((x1 - x0) / 2),
                ]
            )
        )
        found.append(CompiledFence(id=i + 1, name="", kind="custom", area=area))
    return found


@settings(max_examples=200, deadline=None)
@given(chosen=fences(), points=st.lists(st.tuples(COORDINATE, COORDINATE), max_size=60))
def test_membership_is_what_intersects_says(
    chosen: list[CompiledFence], points: list[tuple[float, float]]
) -> None:
    # the fences' own vertices, and points off every fence and missing a coordinate
    vertices = shapely.get_coordinates([f.area for f in chosen]).tolist()
    lons, lats = (
        np.array([p[k] for p in [*points, *vertices, (119.0, 29.0), (np.nan, 120.5)]])
        for k in (0, 1)
    )
    point, fence = FenceSet(chosen).pairs(lons, lats)
    expected = [
        (p, f)
        for p in range(len(lons))
        for f, candidate in enumerate(chosen)
        if shapely.intersects_xy(candidate.area, lons[p], lats[p])
    ]
    assert list(zip(point.tolist(), fence.tolist(), strict=True)) == expected
