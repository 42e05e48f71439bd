"""A reconnection storm: hundreds of JT/T 808 terminals registering at once, as after a gateway
restart, some binding for the first time and some bound already, with an impostor among them.
Each must still get its own code and authenticate with it, and the impostor must still be
refused and reported (no timing is asserted: the machine is shared)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from fleet import audit
from telematics import terminals
from telematics.protocols import jt808
from telematics.protocols.jt808 import MsgId, RegisterResult, Result
from telematics.settings import TelematicsSettings
from telematics.terminals import Claim, Identity, Verdict, code_digest
from tests.support import free_port
from tests.telematics.conftest import Fleetlet
from tests.telematics.test_gateway import result_of, terminal
from tests.telematics.test_terminals import Sink, serving

TERMINALS = 300
BOUND = 150  # the first this many are bound already (a restart); the rest bind now
FIRST_PHONE = 13700000000


def phone(n: int) -> str:
    return str(FIRST_PHONE + n)


def terminal_id(n: int) -> str:
    return f"S{n:06d}"  # 7 characters, as a 2013 terminal id is


@pytest.fixture
def gw_settings() -> TelematicsSettings:
    return TelematicsSettings(
        gateway_host="127.0.0.1", jt808_port=free_port(), osmand_port=free_port(), stream_shards=4
    )


@pytest.fixture
def storm_fleet(fleetlet: Fleetlet) -> Iterator[dict[str, int]]:
    """`TERMINALS` vehicles with a JT/T 808 device each; the first `BOUND` bound to their
    terminal (plate and colour left empty, as the registry may hold them). Phone -> device id."""
    with fleetlet.engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO vehicle (plate, category, body_class, seats, energy, unit_id)"
                " SELECT '浙A·S' || lpad(n::text, 5, '0'), 'general', 'sedan', 4, 'bev', :u"
                " FROM generate_series(0, :n - 1) n"
            ),
            {"u": fleetlet.unit_id, "n": TERMINALS},
        )
        rows = conn.execute(
            text(
                "INSERT INTO device (protocol, identifier, vehicle_id, unit_id)"
                " SELECT 'jt808', (:first + substr(plate, 5)::int)::text, id, unit_id"
                " FROM vehicle WHERE plate LIKE '浙A·S%' RETURNING identifier, id"
            ),
            {"first": FIRST_PHONE},
        ).all()
        conn.execute(
            text(
                "UPDATE device SET terminal_maker = 'FLEET', terminal_model = 'SIM-808',"
                " terminal_id = 'S' || lpad((identifier::bigint - :first)::text, 6, '0'),"
                " bound_at = now() WHERE identifier::bigint < :first + :bound"
                " AND protocol = 'jt808' AND identifier LIKE '137%'"
            ),
            {"first": FIRST_PHONE, "bound": BOUND},
        )
    yield dict(rows)  # type: ignore[arg-type]
    with fleetlet.engine.begin() as conn:
        conn.execute(text("DELETE FROM device WHERE identifier LIKE '137%'"))
        conn.execute(text("DELETE FROM vehicle WHERE plate LIKE '浙A·S%'"))


def test_a_storm_of_registrations_all_get_codes_and_the_impostor_is_still_refused(
    fleetlet, redis, gw_settings, storm_fleet, clean_tracks
):
    sink = Sink()

    async def register_and_authenticate(n: int) -> tuple[int, str, int]:
        t = await terminal(gw_settings.jt808_port)
        try:
            reply = await t.send(
                MsgId.REGISTER, jt808.register_body(terminal_id=terminal_id(n)), phone=phone(n)
            )
            code = reply.body[3:].decode()
            if reply.body[2] != RegisterResult.OK:
                return reply.body[2], code, -1
            authenticated = await t.send(
                MsgId.AUTHENTICATE, jt808.authenticate_body(code), phone=phone(n)
            )
            return reply.body[2], code, result_of(authenticated)
        finally:
            t.writer.close()

    async def impostor() -> tuple[int, int]:
        """Another terminal naming terminal 7's number (bound already), then trying a code."""
        t = await terminal(gw_settings.jt808_port)
        try:
            reply = await t.send(
                MsgId.REGISTER, jt808.register_body(terminal_id="X999999"), phone=phone(7)
            )
            guessed = await t.send(
                MsgId.AUTHENTICATE, jt808.authenticate_body("0" * 16), phone=phone(7)
            )
            return reply.body[2], result_of(guessed)
        finally:
            t.writer.close()

    async def scenario() -> tuple[list[tuple[int, str, int]], tuple[int, int]]:
        stop, task = await serving(fleetlet, gw_settings, sink)
        try:
            storm = asyncio.gather(*(register_and_authenticate(n) for n in range(TERMINALS)))
            refused = asyncio.create_task(impostor())
            return await storm, await refused
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)

    answers, (impostor_registered, impostor_authenticated) = asyncio.run(scenario())

    assert [(registered, authenticated) for registered, _, authenticated in answers] == [
        (RegisterResult.OK, Result.OK)
    ] * TERMINALS
    codes = [code for _, code, _ in answers]
    assert len(set(codes)) == TERMINALS
    assert (impostor_registered, impostor_authenticated) == (
        RegisterResult.TERMINAL_TAKEN,
        Result.FAILURE,
    )
    (reported,) = sink.reported
    assert (reported.phone, reported.claimed.terminal_id) == (phone(7), "X999999")
    assert reported.bound is not None
    assert reported.bound.terminal_id == terminal_id(7)

    with Session(fleetlet.engine) as session:
        stored = dict(
            session.execute(
                text("SELECT identifier, auth_code_digest FROM device WHERE identifier LIKE '137%'")
            ).all()
        )
        assert stored == {phone(n): code_digest(codes[n]) for n in range(TERMINALS)}
        bound_now = session.execute(
            text("SELECT entity_id FROM audit_entry WHERE action = 'bind'")
        ).scalars()
        assert sorted(map(int, bound_now)) == sorted(
            storm_fleet[phone(n)] for n in range(BOUND, TERMINALS)
        )
        assert audit.verify(session=session).ok


def test_claims_in_one_batch_are_decided_as_if_one_after_another(fleetlet, storm_fleet):
    """Three registrations naming one unbound number: the first terminal binds, another is then
    an impostor, and the first registering again is recognised; only the last code stands."""
    device_id = storm_fleet[phone(TERMINALS - 1)]
    real = Identity("FLEET", "SIM-808", terminal_id(TERMINALS - 1), "", 0)
    other = Identity("FLEET", "SIM-808", "X999999", "", 0)
    now = datetime.now(UTC)
    with Session(fleetlet.engine) as session:
        session.begin()
        try:
            found = terminals.register_many(
                session=session,
                claims=[
                    Claim(device_id, real, "10.0.0.1:1", now),
                    Claim(device_id, other, "10.0.0.9:1", now),
                    Claim(device_id, real, "10.0.0.1:2", now),
                ],
            )
            digest = session.execute(
                text("SELECT auth_code_digest FROM device WHERE id = :d"), {"d": device_id}
            ).scalar_one()
        finally:
            session.rollback()
    assert [f.verdict for f in found] == [Verdict.BIND, Verdict.MISMATCH, Verdict.MATCH]
    assert found[1].code is None
    assert digest == code_digest(found[2].code or "") != code_digest(found[0].code or "")
