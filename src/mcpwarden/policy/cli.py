"""`mcpwarden policy test FILE` and `mcpwarden policy explain`: the decision function, offline.

Both build the same engine the gateway builds from the configuration (`-c`), resolve path
arguments the same way, and ask the same pure function, so what they print is what the gateway
will do. `test` runs a table of expected decisions and exits 1 on any mismatch (2 when the table
or configuration cannot be read); `explain` prints one decision and the rule that made it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcpwarden.config import load_settings
from mcpwarden.errors import MCPWardenError
from mcpwarden.policy import model
from mcpwarden.policy.compiler import compile_policy
from mcpwarden.policy.engine import PolicyEngine
from mcpwarden.policy.model import PolicyDecision, PolicyRequest, PrincipalFacts, ResourceRef
from mcpwarden.policy.paths import with_resolved_paths
from mcpwarden.router import RESOURCE_SCHEME

policy_app = typer.Typer(help="Test and explain authorization policy decisions.", no_args_is_help=True)
out = Console()
err = Console(stderr=True)

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", help="Configuration file (default: ./mcpwarden.yaml).", show_default=False
    ),
]
_ACTIONS_BY_KIND = {"tool": model.CALL_TOOL, "prompt": model.GET_PROMPT, "resource": model.READ_RESOURCE}


def _engine(config: Path | None) -> tuple[PolicyEngine, str]:
    try:
        settings = load_settings(config)
        base_dir = settings.source.parent if settings.source is not None else None
        return PolicyEngine(compile_policy(settings.policy, base_dir)), settings.gateway.separator
    except MCPWardenError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def build_request(
    *,
    principal: str,
    roles: list[str],
    scopes: list[str],
    name: str,
    arguments: dict[str, Any] | None,
    transport: str,
    separator: str,
    action: str | None = None,
    risk: str | None = None,
) -> PolicyRequest:
    kind: Literal["tool", "prompt", "resource"] = "resource" if name.startswith(RESOURCE_SCHEME) else "tool"
    server = (
        name[len(RESOURCE_SCHEME) :].partition("/")[0] if kind == "resource" else name.partition(separator)[0]
    )
    method = "stdio" if transport == "stdio" else "test"
    return PolicyRequest(
        principal=PrincipalFacts(principal, frozenset(roles), frozenset(scopes), method),
        action=action or _ACTIONS_BY_KIND[kind],
        resource=ResourceRef(server, name, kind, risk if kind == "tool" else None),
        arguments=arguments,
        transport=transport,
    )


def _decide(engine: PolicyEngine, request: PolicyRequest) -> PolicyDecision:
    return engine.decide(with_resolved_paths(engine, request))


@policy_app.command("test")
def test_command(
    file: Annotated[
        Path, typer.Argument(help="YAML or JSON list of cases (see --help).", show_default=False)
    ],
    config: ConfigOption = None,
) -> None:
    """Run a table of expected decisions; exit 1 on any mismatch.

    Each case: {principal, roles?, scopes?, tool, risk?, arguments?, transport? (http), action?,
    expect: allow|deny, code?}. `tool` is an exposed name (notes__search, or mcpwarden://S/URI).
    """
    engine, separator = _engine(config)
    try:
        cases = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        err.print(f"[red]error:[/red] {file}: cannot read the table: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    if isinstance(cases, dict) and isinstance(cases.get("cases"), list):
        cases = cases["cases"]
    if not isinstance(cases, list) or not cases:
        err.print(f"[red]error:[/red] {file}: expected a non-empty list of cases", highlight=False)
        raise typer.Exit(2)
    table = Table(title=f"policy test: {file.name}")
    table.add_column("#", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("rule / reason", no_wrap=True)
    for column in ("principal", "roles", "tool", "expected", "got", "arguments"):
        table.add_column(column, overflow="fold")
    failures = 0
    for index, case in enumerate(cases, 1):
        try:
            request, expected, expected_code = _case(case, separator)
            decision = _decide(engine, request)
        except (TypeError, ValueError, KeyError) as exc:
            err.print(f"[red]error:[/red] {file}: case {index}: {exc}", highlight=False, markup=False)
            raise typer.Exit(2) from None
        got = "allow" if decision.allowed else "deny"
        ok = got == expected and (expected_code is None or expected_code == decision.code)
        failures += not ok
        table.add_row(
            str(index),
            "[green]ok[/green]" if ok else "[red]MISMATCH[/red]",
            ", ".join(decision.rules) or f"{decision.code} ({decision.nearest_rule or 'no rule'})",
            request.principal.name,
            ",".join(sorted(request.principal.roles)),
            request.resource.name,
            expected + (f" ({expected_code})" if expected_code else ""),
            got,
            json.dumps(dict(request.arguments or {}))[:60],
        )
    out.print(table)
    out.print(f"{len(cases) - failures} passed, {failures} failed")
    raise typer.Exit(1 if failures else 0)


def _case(case: Any, separator: str) -> tuple[PolicyRequest, str, str | None]:
    if not isinstance(case, dict):
        raise TypeError("each case must be a mapping")
    unknown = set(case) - {
        "principal",
        "roles",
        "scopes",
        "tool",
        "arguments",
        "transport",
        "action",
        "expect",
        "code",
    }
    if unknown:
        raise KeyError(f"unknown key {sorted(unknown)[0]!r}")
    expected = case.get("expect")
    if expected not in ("allow", "deny"):
        raise ValueError("'expect' must be allow or deny")
    arguments = case.get("arguments")
    if arguments is not None and not isinstance(arguments, dict):
        raise TypeError("'arguments' must be a mapping")
    action = case.get("action")
    if action is not None and action not in model.ACTIONS:
        raise ValueError(f"'action' must be one of {', '.join(model.ACTIONS)}")
    request = build_request(
        principal=str(case["principal"]),
        roles=[str(r) for r in case.get("roles") or []],
        scopes=[str(s) for s in case.get("scopes") or []],
        name=str(case["tool"]),
        arguments=arguments,
        transport=str(case.get("transport", "http")),
        separator=separator,
        action=action,
        risk=str(case["risk"]) if case.get("risk") is not None else None,
    )
    code = case.get("code")
    return request, expected, str(code) if code is not None else None


@policy_app.command("explain")
def explain_command(
    principal: Annotated[
        str, typer.Option("--principal", help="The caller's principal name.", show_default=False)
    ],
    tool: Annotated[
        str,
        typer.Option(
            "--tool", help="Exposed name: S__tool, S__prompt or mcpwarden://S/URI.", show_default=False
        ),
    ],
    role: Annotated[
        list[str] | None, typer.Option("--role", help="A role of the caller (repeatable).")
    ] = None,
    scope: Annotated[
        list[str] | None, typer.Option("--scope", help="A scope of the caller (repeatable).")
    ] = None,
    args: Annotated[str | None, typer.Option("--args", help="Arguments as a JSON object.")] = None,
    transport: Annotated[str, typer.Option("--transport", help="http or stdio.")] = "http",
    action: Annotated[
        str | None, typer.Option("--action", help="call_tool, list_tools, ... (default from --tool).")
    ] = None,
    risk: Annotated[str | None, typer.Option("--risk", help="The tool's risk tier (low..critical).")] = None,
    config: ConfigOption = None,
) -> None:
    """Print the decision for one request and the rule that made it (exit 0 allow, 1 deny)."""
    engine, separator = _engine(config)
    try:
        arguments = json.loads(args) if args is not None else None
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --args is not valid JSON: {exc.msg}", highlight=False, markup=True)
        raise typer.Exit(2) from None
    if arguments is not None and not isinstance(arguments, dict):
        err.print("[red]error:[/red] --args must be a JSON object", highlight=False)
        raise typer.Exit(2)
    if action is not None and action not in model.ACTIONS:
        err.print(f"[red]error:[/red] --action must be one of {', '.join(model.ACTIONS)}", highlight=False)
        raise typer.Exit(2)
    request = build_request(
        principal=principal,
        roles=role or [],
        scopes=scope or [],
        name=tool,
        arguments=arguments,
        transport=transport,
        separator=separator,
        action=action,
        risk=risk,
    )
    decision = _decide(engine, request)
    verdict = "[green]ALLOW[/green]" if decision.allowed else "[red]DENY[/red]"
    out.print(f"{verdict} {request.action} {tool} for {principal!r}", highlight=False)
    out.print(f"  code:    {decision.code}", highlight=False, markup=False)
    decided_by = ", ".join(decision.rules) or "(none: deny by default)"
    out.print(f"  rule:    {decided_by}", highlight=False, markup=False)
    if decision.nearest_rule is not None:
        out.print(
            f"  nearest: {decision.nearest_rule} (matches, but a condition failed)",
            highlight=False,
            markup=False,
        )
    out.print(f"  detail:  {decision.message}", highlight=False, markup=False)
    if decision.argument is not None:
        out.print(f"  argument: {decision.argument} ({decision.condition})", highlight=False, markup=False)
    if engine.mode == "dry-run":
        out.print(
            "  mode:    dry-run (the gateway would log this, not enforce it)", highlight=False, markup=False
        )
    for error in decision.errors:
        out.print(f"  engine:  {error}", highlight=False, markup=False)
    raise typer.Exit(0 if decision.allowed else 1)
