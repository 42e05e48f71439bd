"""Setting an installation up: `fleet db ...` (the schema), `fleet user create` and
`fleet seed demo`."""

from __future__ import annotations

from typing import Annotated

import typer
from pydantic import ValidationError

from app.cli.common import (
    Exit,
    check_database,
    ensure_database,
    fail,
    redis_client,
    refusals,
    root_units,
    transaction,
    unit_by_code,
    where,
)
from fleet import migrate, registry
from fleet.db import utcnow
from fleet.models import Role
from fleet.schemas import UserCreate
from fleet.settings import Settings

db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
user_app = typer.Typer(help="User accounts.", no_args_is_help=True)
seed_app = typer.Typer(help="Demo data.", no_args_is_help=True)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context, revision: str = "head") -> None:
    """Create the database if needed and migrate it up to REVISION (default: the newest)."""
    settings: Settings = ctx.obj
    ensure_database(settings)
    try:
        migrate.upgrade(settings, revision)
    except migrate.RoleError as error:
        raise fail(str(error), Exit.FAILED) from None
    if settings.app_role is None:
        typer.echo(
            "note: the processes connect as the schema's owner; set FLEET_DATABASE_OWNER (README,"
            " Security) so that their role cannot rewrite the audit log"
        )
    typer.echo(f"database {where(settings.database)} is at {revision}")


@db_app.command("downgrade")
def db_downgrade(ctx: typer.Context, revision: Annotated[str, typer.Argument()] = "-1") -> None:
    """Migrate down to REVISION (default: one step; `base` removes every table)."""
    settings: Settings = ctx.obj
    check_database(settings)
    migrate.downgrade(settings, revision)
    typer.echo(f"database {where(settings.database)} downgraded to {revision}")


@user_app.command("create")
def user_create(
    ctx: typer.Context,
    username: Annotated[str, typer.Option(help="Login name.")],
    password: Annotated[str, typer.Option(help="At least 8 characters.")],
    role: Annotated[list[Role], typer.Option(help="A role; repeat for several.")],
    unit: Annotated[str | None, typer.Option(help="Unit code; default: the root unit.")] = None,
) -> None:
    """Create a user. On an empty installation this also creates the root unit."""
    with transaction(ctx.obj) as session:
        if unit is not None:
            found = unit_by_code(session, unit)
        else:
            roots = root_units(session)
            if len(roots) > 1:
                raise fail("several root units exist: name one with --unit", Exit.FAILED)
            found = (
                roots[0]
                if roots
                else registry.create_root_unit(session=session, code="ROOT", name="本级单位")
            )
        try:
            data = UserCreate(username=username, password=password, roles=role, unit_id=found.id)
        except ValidationError as error:
            raise fail(str(error), Exit.FAILED) from None
        with refusals():
            user = registry.create_user(session=session, actor=None, data=data)
        typer.echo(f"created user {user.username} (id {user.id}) in unit {found.code}")


@seed_app.command("demo")
def seed_demo(ctx: typer.Context) -> None:
    """Load the demo fleet (idempotent: only what is missing is added)."""
    from app import demo

    settings: Settings = ctx.obj
    with redis_client(settings) as redis, transaction(settings) as session:
        report = demo.seed(
            session=session, redis=redis, zone_name=settings.display_timezone, now=utcnow()
        )
    added = ", ".join(f"{n} {k}" for k, n in sorted(report.created.items())) or "nothing new"
    typer.echo(
        f"demo data: {added}; {report.vehicles} vehicles, {report.new_energy_share:.0%} new-energy"
    )
