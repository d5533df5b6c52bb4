"""``adapter auth``: keygen (the key that signs access tokens) and hash-secret (the
``secret_hash:`` of a client in the consortium file). docs/security.md."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from adapter.commands import common

group = typer.Typer(help="API clients: the token signing key, client secret hashes.")


@group.command()
def keygen(
    path: Annotated[Path, typer.Argument(help="Where to write the new private key (PEM)")],
) -> None:
    """Make a new Ed25519 key for signing access tokens (ADAPTER_AUTH_SIGNING_KEY)."""
    from adapter.auth.keys import new_key_file

    try:
        kid = new_key_file(path)
    except FileExistsError:
        raise common.fail(f"{path} exists: a key is never overwritten") from None
    typer.echo(f"token signing key {kid} written to {path} (mode 0600)")
    typer.echo(f"serve with ADAPTER_AUTH_SIGNING_KEY={path}")


@group.command("hash-secret")
def hash_secret() -> None:
    """Read a client secret (asked twice, not echoed) and print its argon2 hash for
    ``secret_hash:`` in the consortium file."""
    from adapter.auth.client_secrets import hash_secret as make_hash

    secret = typer.prompt("client secret", hide_input=True, confirmation_prompt=True)
    if len(secret) < 16:
        raise common.fail("a client secret needs at least 16 characters")
    typer.echo(make_hash(secret))


def register(app: typer.Typer) -> None:
    app.add_typer(group, name="auth")
