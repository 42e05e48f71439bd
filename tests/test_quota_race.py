"""Two registrations racing for a unit's last quota place, on real concurrent connections: the
second waits for the first (the quota row is locked) and is then refused; neither takes it twice."""

from __future__ import annotations

import threading

from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import migrate, quota, registry
from fleet.auth import Actor
from fleet.db import make_engine
from fleet.errors import Invalid
from fleet.models import OrgUnit, VehicleCategory
from fleet.settings import Settings
from tests.factories import add_vehicle


def test_the_last_place_goes_to_one_registration_and_the_other_is_refused(
    scratch_settings: Settings,
):
    migrate.upgrade(scratch_settings)
    engine = make_engine(scratch_settings, pool_size=4)
    with Session(engine) as session, session.begin():
        root = registry.create_root_unit(session=session, code="QRACE", name="编制测试")
        quota.set_quotas(
            session=session,
            actor=Actor.system(root),
            unit_id=root.id,
            quotas={VehicleCategory.GENERAL: 1},
        )
        unit_id = root.id
    outcome: list[str] = []

    def second() -> None:
        try:
            with Session(engine) as session, session.begin():
                add_vehicle(session, session.get_one(OrgUnit, unit_id), "浙A·Q2002")
            outcome.append("registered")
        except Invalid as error:
            outcome.append(f"refused on {error.field}")

    first = Session(engine)
    try:
        add_vehicle(first, first.get_one(OrgUnit, unit_id), "浙A·Q2001")  # holds the row lock
        racer = threading.Thread(target=second)
        racer.start()
        # The second registration is waiting for the first's lock before the first commits.
        with engine.connect() as watcher:
            waiting = 0
            for _ in range(600):
                waiting = watcher.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND wait_event_type = 'Lock'"
                    )
                ).scalar_one()
                if waiting or not racer.is_alive():
                    break
                watcher.execute(text("SELECT pg_sleep(0.05)"))
        assert waiting == 1
        first.commit()
    finally:
        first.close()
    racer.join()
    assert outcome == ["refused on unit_id"]
    with engine.connect() as conn:
        plates = conn.execute(text("SELECT plate FROM vehicle ORDER BY plate")).scalars().all()
    assert plates == ["浙A·Q2001"]
    engine.dispose()
