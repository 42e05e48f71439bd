"""`fleet audit ...`: verify the tamper-evident audit log, sign checkpoints of its head, make the
key that signs them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from app.cli.common import Exit, fail, reading
from fleet import audit, checkpoint
from fleet.db import utcnow
from fleet.settings import Settings

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)


@audit_app.command("verify")
def audit_verify(
    ctx: typer.Context,
    checkpoints: Annotated[
        Path | None,
        typer.Option(
            help="A file of signed checkpoints (`fleet audit checkpoint`): the chain must still"
            " hold every head it names, which a rewrite with every hash recomputed does not."
        ),
    ] = None,
) -> None:
    """Recompute the hash chain; exit 1 naming the first entry that does not match."""

    settings: Settings = ctx.obj
    pinned: list[checkpoint.Checkpoint] = []
    if checkpoints is not None:
        key_file = settings.audit_verify_key_file or settings.audit_signing_key_file
        if not key_file:
            raise fail(
                "--checkpoints needs FLEET_AUDIT_VERIFY_KEY_FILE (or the signing key)", Exit.FAILED
            )
        try:
            key = checkpoint.load_public_key(Path(key_file))
            pinned, problem = checkpoint.read(checkpoints, key)
        except (OSError, ValueError) as error:
            raise fail(f"cannot read the checkpoints: {error}", Exit.FAILED) from None
        if problem:
            raise fail(f"{checkpoints}: {problem}", Exit.FAILED)
    with reading(settings) as session:
        result = audit.verify(session=session)
        held = checkpoint.check(session=session, checkpoints=pinned)
    if not result.ok:
        raise fail(
            f"audit log entry {result.first_bad_id} does not verify: {result.reason} "
            f"({result.checked} entries before it are intact)",
            Exit.FAILED,
        )
    if not held.ok:
        raise fail(
            f"the audit log does not match its checkpoints: {held.problem}"
            f" ({held.checked} checkpoints before it hold)",
            Exit.FAILED,
        )
    pins = f"; {held.checked} signed checkpoints hold" if checkpoints is not None else ""
    typer.echo(f"audit log intact: {result.checked} entries verified{pins}")


@audit_app.command("checkpoint")
def audit_checkpoint(
    ctx: typer.Context,
    file: Annotated[
        Path | None, typer.Option(help="Append here (default FLEET_AUDIT_CHECKPOINT_FILE).")
    ] = None,
) -> None:
    """Append a signed checkpoint of the chain's head (entry id, hash, count, time) to a file
    outside the database, signed with FLEET_AUDIT_SIGNING_KEY_FILE (Ed25519)."""

    settings: Settings = ctx.obj
    if not settings.audit_signing_key_file:
        raise fail("set FLEET_AUDIT_SIGNING_KEY_FILE (`fleet audit keygen` makes one)", 1)
    try:
        key = checkpoint.load_private_key(Path(settings.audit_signing_key_file))
    except (OSError, ValueError) as error:
        raise fail(f"cannot load the signing key: {error}", Exit.FAILED) from None
    target = file or Path(settings.audit_checkpoint_file)
    try:
        with reading(settings) as session:
            head = checkpoint.write(session=session, key=key, path=target, at=utcnow())
    except checkpoint.ChainBroken as error:
        raise fail(f"no checkpoint signed: {error}", Exit.FAILED) from None
    typer.echo(f"checkpoint: entry {head.entry_id}, {head.count} entries, appended to {target}")


@audit_app.command("keygen")
def audit_keygen(
    out: Annotated[Path, typer.Argument(help="Where to write the private key (PEM).")],
) -> None:
    """Make an Ed25519 key for the checkpoints: OUT (private, mode 0600) and OUT.pub."""

    if out.exists():
        raise fail(f"{out} exists; not overwriting a key", Exit.FAILED)
    pem = checkpoint.generate_key()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.touch(mode=0o600)
    out.write_bytes(pem)
    public = out.with_name(out.name + ".pub")
    public.write_bytes(checkpoint.public_pem(checkpoint.load_private_key(out)))
    typer.echo(f"private key {out} (FLEET_AUDIT_SIGNING_KEY_FILE), public key {public}")
