"""`fleet report order`: an order's dossier for audit, written as PDF, HTML or JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.cli.common import Exit, fail, refusals, transaction
from fleet import checkpoint
from fleet.auth import Actor
from fleet.models import OrgUnit
from fleet.settings import Settings

report_app = typer.Typer(
    help="Reports for audit: order dossiers, vehicle files.", no_args_is_help=True
)


def _cli_client() -> str:
    """Where a command-line read comes from, for the audit log: the machine's user and host."""
    import getpass
    import socket

    return f"command line ({getpass.getuser()}@{socket.gethostname()})"


def _order_root(session: Session, order_id: int) -> Actor:
    """The system acting over the root of the order's unit tree."""
    path = session.scalar(
        text(
            "SELECT u.path FROM trip_order o JOIN org_unit u ON u.id = o.unit_id WHERE o.id = :id"
        ),
        {"id": order_id},
    )
    if path is None:
        raise fail(f"no trip order {order_id}", Exit.FAILED)
    root = session.get_one(OrgUnit, int(path.strip("/").split("/")[0]))
    return Actor.system(root)


@report_app.command("order")
def report_order(
    ctx: typer.Context,
    order_id: Annotated[int, typer.Argument(help="The trip order's id.")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write; default order-ID.pdf (or .html/.json).")
    ] = None,
    format: Annotated[str, typer.Option(help="pdf, html or json.")] = "pdf",
) -> None:
    """Write the order's dossier (request, approvals, assignment, route and track, costs,
    alerts and reviews, audit entries and the chain's verification) as PDF, HTML or JSON."""
    from dispatch.settings import DispatchSettings
    from reports import dossier
    from reports import render as report

    settings: Settings = ctx.obj
    if format not in ("pdf", "html", "json"):
        raise fail("--format is pdf, html or json", Exit.FAILED)
    target = out or Path(f"order-{order_id}.{format}")
    with refusals(), transaction(settings) as session:
        try:
            anchors = checkpoint.anchors(settings)
        except ValueError as error:
            raise fail(str(error), Exit.FAILED) from None
        actor = _order_root(session, order_id)
        data = dossier.order_dossier(
            session=session, actor=actor, order_id=order_id, anchors=anchors
        )
        # An export like any other: who ran it is the machine's user, from the command line.
        dossier.record_order_read(
            session=session, actor=actor, client=_cli_client(), dossier=data, format=format
        )
    try:
        if format == "pdf":
            font = Path(DispatchSettings().report_font)
            target.write_bytes(report.render_order_pdf(data, zone=settings.zone, font_path=font))
        elif format == "html":
            target.write_text(report.render_order_html(data, zone=settings.zone), "utf-8")
        else:
            target.write_text(json.dumps(data, ensure_ascii=False, indent=2), "utf-8")
    except report.ReportFontMissing as error:
        raise fail(str(error), Exit.FAILED) from None
    typer.echo(f"wrote {target} ({target.stat().st_size:,} bytes)")
