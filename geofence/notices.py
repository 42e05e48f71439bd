"""Who hears of an alert outside the page: the supervisors who answer for its unit (its own, or
the nearest unit above with any), when a critical one opens. Read from the alert's outbox event
by `fleet forward`'s notifier (fleet/notifications.py)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from fleet.models import OutboxEvent, Role, Vehicle
from fleet.notifications import Notice, nearest_with_role

# The names supervisors know the kinds by (as the pages show them).
KIND_NAMES: dict[str, tuple[str, str]] = {
    "no_order": ("无单出车", "no order"),
    "off_hours": ("非工作时间用车", "off hours"),
    "off_route": ("偏离路线", "off route"),
    "region_exit": ("驶出辖区", "left the region"),
    "prohibited_zone": ("禁入区域", "prohibited place"),
    "overnight_away": ("夜间未回停车点", "overnight away"),
    "overspeed": ("超速", "overspeed"),
    "signal_loss": ("信号中断", "signal loss"),
    "device_alarm": ("终端报警", "device alarm"),
    "device_identity_mismatch": ("终端身份冒用", "terminal identity mismatch"),
}
OPENED = frozenset({"open", "record"})  # `record`: an episode opened and ended at once


def critical_opened(state: dict[str, Any], action: str) -> bool:
    return action in OPENED and state.get("severity") == "critical"


def texts(
    alert_id: int, kind: str, plate: str, started_at: datetime, zone: ZoneInfo
) -> dict[str, tuple[str, str]]:
    zh, en = KIND_NAMES.get(kind, (kind, kind.replace("_", " ")))
    at = started_at.astimezone(zone).strftime("%m-%d %H:%M")
    return {
        "zh": (f"严重告警：{plate} {zh}", f"告警 #{alert_id}：{plate} {zh}，{at} 起，请复核。"),
        "en": (
            f"Critical alert: {plate} {en}",
            f"Alert #{alert_id}: {plate} {en} since {at}; please review.",
        ),
    }


def alert_notices(session: Session, event: OutboxEvent, zone: ZoneInfo) -> list[Notice]:
    payload = event.payload
    state = payload.get("state") or {}
    if not critical_opened(state, str(payload.get("action"))):
        return []
    supervisors = nearest_with_role(session, int(state["unit_id"]), Role.SUPERVISOR)
    if not supervisors:
        return []
    plate = session.scalar(select(Vehicle.plate).where(Vehicle.id == state.get("vehicle_id")))
    alert_id = int(payload["id"])
    return [
        Notice(
            kind="alert_critical",
            user_ids=supervisors,
            path=f"/review#alert-{alert_id}",
            texts=texts(
                alert_id,
                str(state.get("kind")),
                plate or "-",
                datetime.fromisoformat(str(state["started_at"])),
                zone,
            ),
        )
    ]
