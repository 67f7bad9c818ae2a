"""The `mcpwarden` command line (typer + rich): the only way users and outside tools drive us.

Each command reads the configuration once, reports configuration errors as one clear message on
stderr with exit code 2, and never prints a traceback.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Annotated

import anyio
import typer
from rich.console import Console
from rich.markup import escape

import mcpwarden
from mcpwarden.approvals.cli import approvals_app
from mcpwarden.audit.cli import audit_app
from mcpwarden.auth.cli import keys_app
from mcpwarden.config import Settings, load_settings
from mcpwarden.detect.cli import detect_command
from mcpwarden.errors import MCPWardenError
from mcpwarden.pinning.cli import pins_app
from mcpwarden.policy.cli import policy_app
from mcpwarden.quota.cli import usage_command
from mcpwarden.risk_cli import tools_command
from mcpwarden.scan.cli import scan_command

app = typer.Typer(
    name="mcpwarden",
    help="Security gateway and scanner for the Model Context Protocol.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Sub-commands that live beside their feature (one line each).
app.add_typer(audit_app, name="audit")
app.add_typer(approvals_app, name="approvals")
app.add_typer(pins_app, name="pins")
app.command("tools")(tools_command)
app.add_typer(policy_app, name="policy")
app.add_typer(keys_app, name="keys")
app.command("scan")(scan_command)
app.command("detect")(detect_command)
app.command("usage")(usage_command)

err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", help="Configuration file (default: ./mcpwarden.yaml).", show_default=False
    ),
]
ExampleOption = Annotated[
    bool,
    typer.Option("--example", help="Use the bundled example servers instead of a configuration file."),
]
LogLevelOption = Annotated[str, typer.Option("--log-level", help="debug, info, warning or error.")]


def _settings(config: Path | None, example: bool) -> Settings:
    if example:
        from mcpwarden.examples import example_settings

        return example_settings(Path.cwd() / ".mcpwarden")
    try:
        settings = load_settings(config)
    except MCPWardenError as exc:
        err.print("[red]error:[/red]", escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    source = config or "mcpwarden.yaml"
    if not settings.servers:
        err.print(f"[red]error:[/red] {source}: no servers configured (see --example)", highlight=False)
        raise typer.Exit(2)
    try:  # a policy that cannot be compiled (bad Cedar file) stops start-up with a clear message
        from mcpwarden.policy import compile_policy

        compile_policy(settings.policy, settings.source.parent if settings.source is not None else None)
    except MCPWardenError as exc:
        err.print("[red]error:[/red]", escape(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    return settings


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # The SDK logs each request at INFO; at our default level that would drown the useful lines.
    logging.getLogger("mcp").setLevel(max(logging.WARNING, logging.getLogger().level))
    logging.getLogger("httpx2").setLevel(logging.WARNING)


@app.command()
def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    example: ExampleOption = False,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve the gateway over Streamable HTTP at http://HOST:PORT/mcp (GET /healthz when ready)."""
    import uvicorn

    from mcpwarden.transport.http import build_http_app

    _configure_logging(log_level)
    settings = _settings(config, example)
    app_ = build_http_app(settings, host)
    err.print(f"mcpwarden {mcpwarden.__version__}: http://{host}:{port}/mcp, state in {settings.state_dir}")
    # uvloop and httptools (dependencies) are what uvicorn's defaults pick up: a faster event loop
    # and HTTP parser, measured in bench/overhead.py.
    uvicorn.run(
        app_,
        host=host,
        port=port,
        log_level="warning",
        lifespan="on",
        loop="uvloop",
        http="httptools",
        # Nothing here reads the client's address, so X-Forwarded-* is not trusted; no access log
        # (the audit trail records every exchange) and no Server header advertising the stack.
        proxy_headers=False,
        access_log=False,
        server_header=False,
    )


@app.command()
def stdio(
    config: ConfigOption = None,
    example: ExampleOption = False,
    log_level: LogLevelOption = "info",
) -> None:
    """Serve one MCP client over stdin/stdout (for desktop clients); logs go to stderr."""
    from mcpwarden.transport.stdio import serve_stdio

    _configure_logging(log_level)
    settings = _settings(config, example)
    anyio.run(serve_stdio, settings, backend_options={"use_uvloop": True})  # see `serve`


config_app = typer.Typer(help="Check a configuration file; print the option reference.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("check")
def config_check(config: ConfigOption = None) -> None:
    """Validate the configuration and summarise it (exit 2 with the reason when it is invalid)."""
    try:
        settings = load_settings(config)
    except MCPWardenError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        raise typer.Exit(2) from None
    for server_id, spec in settings.servers.items():
        where = spec.url if spec.url is not None else " ".join([spec.command or "", *spec.args])
        typer.echo(f"server {server_id}: {'stdio' if spec.is_stdio else 'http'} {where}")
    typer.echo(f"state_dir: {settings.state_dir}")
    typer.echo("ok")


@config_app.command("reference")
def config_reference() -> None:
    """Print every configuration option with its type, default and meaning (Markdown)."""
    from mcpwarden.config_reference import reference_markdown

    typer.echo(reference_markdown(), nl=False)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(mcpwarden.__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
