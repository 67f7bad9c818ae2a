"""What the `mcpwarden` sub-commands print with: the two consoles and the `--format` option."""

from __future__ import annotations

import enum
from typing import Annotated

import typer
from rich.console import Console

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


class OutputFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


FormatOption = Annotated[OutputFormat, typer.Option("--format", help="table or json.")]
