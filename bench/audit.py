"""What the hash chain costs: appending audit entries, one change per transaction, beside a plain
INSERT of the same rows into an unchained copy of the table; and verifying the whole chain."""

from __future__ import annotations

import json

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench._support import bench_settings, table, timed
from fleet import audit
from fleet.db import make_engine

N = 2000
AFTER = {
    "plate": "浙A·D12345",
    "category": "general",
    "body_class": "sedan",
    "seats": 4,
    "energy": "bev",
    "battery_kwh": 85.4,
    "unit_id": 3,
    "status": "active",
}


def main() -> None:
    settings = bench_settings()
    engine = make_engine(settings)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE plain_entry (LIKE audit_entry INCLUDING DEFAULTS)"))

    def chained() -> None:
        for n in range(N):
            with Session(engine) as session, session.begin():
                audit.record(
                    session=session,
                    actor=audit.SYSTEM,
                    action="update",
                    entity="vehicle",
                    entity_id=n,
                    before=AFTER,
                    after=AFTER,
                )

    def plain() -> None:
        for n in range(N):
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO plain_entry (id, at, actor, action, entity, entity_id, before,"
                        " after, prev_hash, hash) VALUES (nextval('audit_entry_id_seq'), now(),"
                        " 'system', 'update', 'vehicle', :n, CAST(:a AS jsonb), CAST(:a AS jsonb),"
                        " '', md5(random()::text))"
                    ),
                    {"n": str(n), "a": json.dumps(AFTER)},
                )

    t_plain = timed(plain, repeat=1)
    t_chain = timed(chained, repeat=1)

    def verify() -> None:
        with Session(engine) as session:
            assert audit.verify(session=session).ok

    t_verify = timed(verify)
    with engine.connect() as conn:
        total = conn.execute(text("SELECT count(*) FROM audit_entry")).scalar_one()
    engine.dispose()
    print(
        table(
            [
                ("measure", "rate", "vs baseline"),
                (
                    "plain INSERT, 1 row/transaction (baseline)",
                    f"{N / t_plain:,.0f} rows/s",
                    "1.00",
                ),
                (
                    "audit.record, chained, 1/transaction",
                    f"{N / t_chain:,.0f} entries/s",
                    f"{t_plain / t_chain:.2f}",
                ),
                ("audit verify (whole chain)", f"{total / t_verify:,.0f} entries/s", ""),
            ]
        )
    )


if __name__ == "__main__":
    main()
