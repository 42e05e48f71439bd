"""`fleet ...`: the one command line that starts every role of the system. The composition root.

The commands live by what they work on (install, audit, report, data, processes); `common` holds
what they share, the one way to reach the database and Redis among it."""

from __future__ import annotations

import typer
from pydantic import ValidationError

from app.cli import data, processes
from app.cli.archive import archive_app
from app.cli.audit import audit_app
from app.cli.common import Exit, fail
from app.cli.install import db_app, seed_app, user_app
from app.cli.report import report_app
from fleet.settings import Settings

__all__ = ["Exit", "app", "main"]

app = typer.Typer(
    help="Fleet: telematics and dispatch for official-vehicle pools.", no_args_is_help=True
)
app.add_typer(db_app, name="db")
app.add_typer(user_app, name="user")
app.add_typer(seed_app, name="seed")
app.add_typer(audit_app, name="audit")
app.add_typer(data.roads_app, name="roads")
app.add_typer(data.calendar_app, name="calendar")
app.add_typer(data.fences_app, name="fences")
app.add_typer(report_app, name="report")
app.add_typer(data.costs_app, name="costs")
app.add_typer(data.positions_app, name="positions")
app.add_typer(archive_app, name="archive")
app.command("replay")(data.replay)
app.command("serve")(processes.serve)
app.command("gateway")(processes.gateway)
app.command("worker")(processes.worker)
app.command("simulate")(processes.simulate)
app.command("forward")(processes.forward)
app.command("up")(processes.up)


@app.callback()
def main_callback(ctx: typer.Context) -> None:
    """Settings are read once here (tests pass their own in ctx.obj)."""
    if ctx.obj is None:
        try:
            ctx.obj = Settings()
        except ValidationError as error:
            raise fail(f"bad FLEET_ settings:\n{error}", Exit.BAD_SETTINGS) from None


def main() -> None:
    app()
