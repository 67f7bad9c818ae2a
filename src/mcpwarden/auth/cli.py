"""`mcpwarden keys create | list | revoke`: the API keys HTTP callers authenticate with.

All three open `state_dir/keys.db` of the configuration (`-c FILE`, else ./mcpwarden.yaml); a
running gateway sees a new or revoked key on its next request, without a restart. `create` prints
the key once, alone on the last line of standard output (scripts take the last line); it is stored
only as a keyed hash. `list` never shows secrets. Exit codes: 0 done, 1 no such key, 2 could not run.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcpwarden.console import FormatOption, OutputFormat
from mcpwarden.errors import MCPWardenError

if TYPE_CHECKING:
    from mcpwarden.auth.keys import ApiKeyStore

keys_app = typer.Typer(
    name="keys",
    help="Mint, list and revoke the API keys HTTP clients authenticate with.",
    no_args_is_help=True,
    add_completion=False,
)

ConfigOption = Annotated[
    Path | None,
    typer.Option("-c", "--config", help="Configuration file whose state_dir holds keys.db.", dir_okay=False),
]


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, highlight=False).print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _store(config: Path | None) -> ApiKeyStore:
    # Imported here so `mcpwarden --help` does not pay for pydantic and yaml.
    from mcpwarden.auth.keys import ApiKeyStore
    from mcpwarden.config import load_settings

    try:
        return ApiKeyStore(load_settings(config).state_dir)
    except MCPWardenError as exc:
        _fail(str(exc))
    except (OSError, sqlite3.Error) as exc:
        _fail(f"cannot open the key store: {exc}")


@keys_app.command("create")
def create_command(
    principal: Annotated[
        str, typer.Option("--principal", help="Who the key identifies (policy's principal).")
    ],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role of the principal; repeat for several.")
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Mint an API key; it is printed once, alone on the last line, and stored only hashed."""
    from mcpwarden.auth.keys import KeyStoreError

    store = _store(config)
    try:
        record, key = store.create(principal, tuple(role or ()))
    except KeyStoreError as exc:
        _fail(str(exc))
    finally:
        store.close()
    roles = ", ".join(record.roles) or "none"
    typer.echo(f"API key {record.id} for principal {record.principal} (roles: {roles}); shown only once:")
    typer.echo(key)


@keys_app.command("list")
def list_command(
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List minted keys (ids, principals, roles, status; never the keys themselves)."""
    store = _store(config)
    try:
        records = store.list()
    finally:
        store.close()
    if output is OutputFormat.JSON:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": r.id,
                        "principal": r.principal,
                        "roles": list(r.roles),
                        "created": _time(r.created),
                        "revoked": _time(r.revoked) if r.revoked is not None else None,
                    }
                    for r in records
                ]
            )
        )
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for column in ("id", "principal", "roles", "created (UTC)", "status"):
        table.add_column(column)
    for r in records:
        status = f"revoked {_time(r.revoked)}" if r.revoked is not None else "active"
        table.add_row(r.id, escape(r.principal), escape(", ".join(r.roles)), _time(r.created), status)
    Console(highlight=False).print(table)


@keys_app.command("revoke")
def revoke_command(
    key_id: Annotated[str, typer.Argument(help="The key's id (from `keys list`) or the key itself.")],
    config: ConfigOption = None,
) -> None:
    """Revoke a key; the gateway refuses it from the next request on."""
    from mcpwarden.auth.keys import KeyStoreError

    store = _store(config)
    try:
        record = store.revoke(key_id)
    except KeyStoreError as exc:
        _fail(str(exc), 1)
    finally:
        store.close()
    typer.echo(f"revoked API key {record.id} of principal {record.principal}")


def _time(value: float | None) -> str:
    if value is None:
        return ""
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")
