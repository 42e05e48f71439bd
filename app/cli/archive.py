"""`fleet archive ...`: months of positions moved to GeoParquet and back (telematics.archive)."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli.common import Exit, database, fail, log_to_stderr, reading
from app.cli.progress import progress
from fleet.db import utcnow
from fleet.errors import FleetError
from fleet.settings import Settings

archive_app = typer.Typer(
    help="Old months of positions in GeoParquet files (FLEET_ARCHIVE_URL).",
    invoke_without_command=True,
)


@archive_app.callback()
def archive(
    ctx: typer.Context,
    month: Annotated[
        list[str] | None,
        typer.Option(help="Only this month, YYYY-MM (repeatable); default every month due."),
    ] = None,
    hot_months: Annotated[
        int | None,
        typer.Option(
            min=0, help="Months kept in PostGIS before the current one (default FLEET_HOT_MONTHS)."
        ),
    ] = None,
) -> None:
    """Archive every month of positions older than FLEET_HOT_MONTHS (or the ones named): each
    written, verified and recorded before its partition is dropped. The worker does this daily."""
    if ctx.invoked_subcommand is not None:
        return
    from telematics import archive as tiered
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    telematics_settings = TelematicsSettings()
    keep = telematics_settings.hot_months if hot_months is None else hot_months
    log_to_stderr()
    try:
        store = tiered.Store.from_settings(telematics_settings)
        with database(settings, pool_size=2) as engine:
            with reading(settings) as session:
                due = tiered.months_due(session, utcnow(), keep)
                if month:
                    wanted = [tiered.month_of(m) for m in month]
                    now = utcnow()
                    current = now.date().replace(day=1)
                    if any(m >= current for m in wanted):
                        raise fail(
                            f"only months before {current:%Y-%m} are archived: the current one"
                            " still receives fixes",
                            Exit.FAILED,
                        )
                    present = set(tiered.hot_partitions(session))
                    due = [m for m in wanted if m in present]
                    for missing in sorted(set(wanted) - present):
                        typer.echo(f"{missing:%Y-%m}: no partition in PostGIS", err=True)
            if not due:
                typer.echo(f"nothing to archive (keeping {keep} months before the current one)")
                return
            for each in due:
                with progress(f"archiving {each:%Y-%m}", "rows") as report:
                    done = tiered.archive_month(engine, store, each, progress=report)
                typer.echo(
                    f"{each:%Y-%m}: {done.rows} rows in {len(done.files)} files,"
                    f" {done.bytes} bytes, part {done.part} (archived to {store.url})"
                )
    except (FleetError, tiered.ArchiveError, OSError) as error:
        raise fail(str(error), Exit.FAILED) from None


@archive_app.command("restore")
def restore(
    ctx: typer.Context,
    month: Annotated[str, typer.Argument(help="The month to bring back, YYYY-MM.")],
) -> None:
    """Bring an archived month of positions back into PostGIS (its files stay in the archive)."""
    from telematics import archive as tiered
    from telematics.settings import TelematicsSettings

    settings: Settings = ctx.obj
    log_to_stderr()
    try:
        wanted = tiered.month_of(month)
        store = tiered.Store.from_settings(TelematicsSettings())
        with (
            database(settings, pool_size=2) as engine,
            progress(f"restoring {wanted:%Y-%m}", "rows") as report,
        ):
            rows = tiered.restore_month(engine, store, wanted, progress=report)
    except (FleetError, tiered.ArchiveError, OSError) as error:
        raise fail(str(error), Exit.FAILED) from None
    typer.echo(f"{wanted:%Y-%m}: {rows} rows restored into PostGIS")


@archive_app.command("list")
def listing(ctx: typer.Context) -> None:
    """The archived parts: month, part, state, rows, bytes, where."""
    from sqlalchemy import text

    with reading(ctx.obj) as session:
        rows = session.execute(
            text(
                "SELECT month, part, state, rows, bytes, url FROM archive_partition"
                " ORDER BY month, part"
            )
        ).all()
    if not rows:
        typer.echo("nothing archived")
    for r in rows:
        per_fix = f"{r.bytes / r.rows:.1f} bytes/fix" if r.rows else "empty"
        typer.echo(
            f"{r.month:%Y-%m}\tpart {r.part}\t{r.state}\t{r.rows} rows\t{r.bytes} bytes"
            f" ({per_fix})\t{r.url}"
        )


@archive_app.command("verify")
def verify(ctx: typer.Context) -> None:
    """Read every archived file back and check its SHA-256, rows and times against the record."""
    from telematics import archive as tiered
    from telematics.settings import TelematicsSettings

    options = TelematicsSettings().archive_options
    bad = 0
    with reading(ctx.obj) as session:
        checked = tiered.verify_archived(session, options)
    for part, error in checked:
        if error is None:
            typer.echo(f"{part}: intact")
        else:
            bad += 1
            typer.echo(f"{part}: {error}", err=True)
    if bad:
        raise typer.Exit(Exit.FAILED)
