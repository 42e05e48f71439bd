"""Vector tiles from PostGIS and the GCJ-02 shift, without a browser."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import registry
from fleet.auth import Actor
from tests.factories import add_circle
from web import gcj02, tiles

HANGZHOU = (120.2106, 30.2452)


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    n = 2**z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def _road(db: Session, name: str, lon: float, lat: float) -> None:
    db.execute(
        text(
            "INSERT INTO road (osm_id, name, highway, oneway, maxspeed_kmh, source, target,"
            " length_m, cost_s, reverse_cost_s, geom) VALUES (1, :name, 'residential', false,"
            " 30, 1, 2, 100, 12, 12, ST_SetSRID(ST_MakeLine(ST_MakePoint(:lon, :lat),"
            " ST_MakePoint(:lon + 0.001, :lat)), 4326))"
        ),
        {"name": name, "lon": lon, "lat": lat},
    )


def test_tile_carries_roads_and_only_the_fences_in_scope(db: Session, root_unit, make_unit):
    _road(db, "文三路", *HANGZHOU)
    other_root = registry.create_root_unit(session=db, code="T-OTHER", name="外市")
    for owner, name in ((root_unit, "本市禁区"), (other_root, "外市禁区")):
        add_circle(db, owner, name, "prohibited", (HANGZHOU[0], HANGZHOU[1] + 0.001), 200)
    x, y = tile_of(*HANGZHOU, 15)
    data = tiles.tile(session=db, actor=Actor.system(root_unit), z=15, x=x, y=y)
    assert b"roads" in data
    assert "文三路".encode() in data
    assert "本市禁区".encode() in data
    assert "外市禁区".encode() not in data
    far = tile_of(10.0, 50.0, 15)
    assert tiles.tile(session=db, actor=Actor.system(root_unit), z=15, x=far[0], y=far[1]) == b""


def test_small_zooms_leave_out_minor_roads(db: Session, root_unit) -> None:
    _road(db, "小巷", *HANGZHOU)
    x, y = tile_of(*HANGZHOU, 9)
    assert b"roads" not in tiles.tile(session=db, actor=Actor.system(root_unit), z=9, x=x, y=y)


def test_gcj02_tiles_are_shifted(db: Session, root_unit) -> None:
    _road(db, "文三路", *HANGZHOU)
    actor = Actor.system(root_unit)
    x, y = tile_of(*HANGZHOU, 14)
    plain = tiles.tile(session=db, actor=actor, z=14, x=x, y=y)
    # Drawn where the GCJ-02 base map has the place: in the tile of the shifted position.
    gx, gy = tile_of(*gcj02.from_wgs84(*HANGZHOU), 14)
    shifted = tiles.tile(session=db, actor=actor, z=14, x=gx, y=gy, shift_gcj02=True)
    assert "文三路".encode() in plain
    assert "文三路".encode() in shifted
    assert plain != shifted


@pytest.mark.parametrize(("z", "x", "y"), [(-1, 0, 0), (23, 0, 0), (3, 8, 0), (3, 0, -1)])
def test_tiles_outside_the_pyramid_are_refused(db: Session, root_unit, z, x, y) -> None:
    from fleet.errors import Invalid

    with pytest.raises(Invalid):
        tiles.tile(session=db, actor=Actor.system(root_unit), z=z, x=x, y=y)


def test_gcj02_offset_is_a_few_hundred_metres_in_china_and_none_abroad() -> None:
    lon, lat = HANGZHOU
    glon, glat = gcj02.from_wgs84(lon, lat)
    east = (glon - lon) * 111_320 * math.cos(math.radians(lat))
    metres = math.hypot(east, (glat - lat) * 110_574)
    assert 300 < metres < 700
    assert gcj02.from_wgs84(2.35, 48.85) == (2.35, 48.85)
    back = gcj02.to_wgs84(glon, glat)
    assert back == pytest.approx((lon, lat), abs=1e-7)
