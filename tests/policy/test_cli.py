"""`mcpwarden policy test|explain`, and a policy enforced end to end through `mcpwarden stdio`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from mcpwarden.cli import app
from tests.support import MCPWARDEN, gateway_client, stdio_upstream, write_config

POLICY = {
    "allow": [
        {"principal": "stdio", "tool": "alpha__echo"},
        {"principal": "stdio", "tool": "alpha__add", "where": {"a": {"sql": "read-only"}}},
        {"principal": "role:dev", "tool": "fs__*", "where": {"path": {"within": ["/srv/data"]}}},
        {"principal": "*", "tool": "mail__send", "where": {"to": {"recipients": ["*@example.com"]}}},
    ],
    "deny": [{"principal": "role:contractor", "tool": "*"}],
}

runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    return write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, policy=POLICY)


def write_table(tmp_path: Path, cases: list[dict[str, object]]) -> Path:
    path = tmp_path / "cases.yaml"
    path.write_text(yaml.safe_dump(cases))
    return path


GOOD_TABLE = [
    {
        "principal": "dora",
        "roles": ["dev"],
        "tool": "fs__read",
        "arguments": {"path": "/srv/data/x"},
        "expect": "allow",
    },
    {
        "principal": "dora",
        "roles": ["dev"],
        "tool": "fs__read",
        "arguments": {"path": "/srv/data_x"},
        "expect": "deny",
        "code": "argument-not-permitted",
    },
    {
        "principal": "carl",
        "roles": ["dev", "contractor"],
        "tool": "fs__read",
        "arguments": {"path": "/srv/data/x"},
        "expect": "deny",
        "code": "denied-by-rule",
    },
    {"principal": "x", "tool": "mail__send", "arguments": {"to": "a@example.com"}, "expect": "allow"},
    {"principal": "x", "tool": "mail__send", "arguments": {"to": "attacker@pwnd.com"}, "expect": "deny"},
    {"principal": "stdio", "tool": "alpha__echo", "transport": "stdio", "expect": "allow"},
    {"principal": "dora", "roles": ["dev"], "tool": "fs__read", "action": "list_tools", "expect": "allow"},
]


def test_policy_test_passes_a_matching_table(config: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["policy", "test", str(write_table(tmp_path, GOOD_TABLE)), "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "7 passed, 0 failed" in result.output
    assert "allow[2]" in result.output and "deny[0]" in result.output


def test_policy_test_fails_on_a_mismatch(config: Path, tmp_path: Path) -> None:
    table = [
        *GOOD_TABLE,
        {"principal": "x", "tool": "fs__read", "arguments": {"path": "/srv/data/x"}, "expect": "allow"},
    ]
    path = write_table(tmp_path, table)
    # A real process, for the exit code a CI job sees.
    done = subprocess.run(
        [*MCPWARDEN, "policy", "test", str(path), "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "MISMATCH" in done.stdout and "7 passed, 1 failed" in done.stdout


def test_policy_test_checks_the_code_too(config: Path, tmp_path: Path) -> None:
    table = [
        {"principal": "x", "tool": "fs__read", "expect": "deny", "code": "denied-by-rule"}
    ]  # it is no-grant
    result = runner.invoke(app, ["policy", "test", str(write_table(tmp_path, table)), "-c", str(config)])
    assert result.exit_code == 1


@pytest.mark.parametrize(
    "table",
    [
        [{"principal": "x", "tool": "y", "expect": "maybe"}],
        [{"principal": "x", "tool": "y", "expect": "allow", "extra": 1}],
        [],
        "just text",
    ],
)
def test_policy_test_refuses_a_bad_table(config: Path, tmp_path: Path, table: object) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(table))
    result = runner.invoke(app, ["policy", "test", str(path), "-c", str(config)])
    assert result.exit_code == 2


def test_policy_explain_names_the_deciding_rule(config: Path) -> None:
    result = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "--principal",
            "dora",
            "--role",
            "dev",
            "--tool",
            "fs__read",
            "--args",
            json.dumps({"path": "/srv/data/a.txt"}),
            "-c",
            str(config),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "ALLOW" in result.output and "allow[2]" in result.output
    denied = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "--principal",
            "carl",
            "--role",
            "dev",
            "--role",
            "contractor",
            "--tool",
            "fs__read",
            "-c",
            str(config),
        ],
    )
    assert denied.exit_code == 1
    assert "DENY" in denied.output and "denied-by-rule" in denied.output and "deny[0]" in denied.output
    near = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "--principal",
            "dora",
            "--role",
            "dev",
            "--tool",
            "fs__read",
            "--args",
            '{"path": "/etc/passwd"}',
            "-c",
            str(config),
        ],
    )
    assert near.exit_code == 1
    assert "nearest: allow[2]" in near.output and "argument: path (within)" in near.output


def test_policy_explain_without_a_policy_shows_the_defaults(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, policy=None)
    http = runner.invoke(
        app, ["policy", "explain", "--principal", "p", "--tool", "alpha__echo", "-c", str(config)]
    )
    assert http.exit_code == 1 and "no policy is configured" in http.output
    stdio = runner.invoke(
        app,
        [
            "policy",
            "explain",
            "--principal",
            "stdio",
            "--tool",
            "alpha__echo",
            "--transport",
            "stdio",
            "-c",
            str(config),
        ],
    )
    assert stdio.exit_code == 0 and "stdio-default" in stdio.output


def test_policy_explain_refuses_bad_json(config: Path) -> None:
    result = runner.invoke(
        app, ["policy", "explain", "--principal", "p", "--tool", "t", "--args", "{", "-c", str(config)]
    )
    assert result.exit_code == 2


def test_serve_refuses_a_broken_cedar_file(tmp_path: Path) -> None:
    (tmp_path / "bad.cedar").write_text("permit (")
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, policy={"cedar_file": "bad.cedar"})
    done = subprocess.run(
        [*MCPWARDEN, "stdio", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "bad.cedar" in done.stderr and "not a valid Cedar policy file" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["enforce", "dry-run"])
async def test_policy_end_to_end_through_mcpwarden_stdio(tmp_path: Path, mode: str) -> None:
    policy = {**POLICY, "mode": mode}
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, policy=policy)
    async with gateway_client("stdio", config) as client:
        names = {tool.name for tool in (await client.list_tools()).tools}
        echoed = await client.call_tool("alpha__echo", {"text": "hi"})
        try:
            await client.call_tool("alpha__pid", {})
            refusal = None
        except MCPError as exc:
            refusal = exc
    assert echoed.content[0].text == "hi"  # type: ignore[union-attr]
    if mode == "enforce":
        assert names == {"alpha__echo", "alpha__add"}
        assert refusal is not None and refusal.error.data["reason"] == "tool-not-permitted"
        assert "'stdio' may not use alpha__pid" in refusal.message
    else:
        assert {"alpha__echo", "alpha__add", "alpha__pid"} <= names
        assert refusal is None


@pytest.mark.anyio
async def test_policy_end_to_end_through_mcpwarden_serve_with_api_key_roles(tmp_path: Path) -> None:
    """HTTP: roles come from the API key (`keys create --role`), the policy decides per caller."""
    from mcp import Client

    from tests.support import authenticated, http_gateway, mint_key

    policy = {
        "allow": [
            {"principal": "role:dev", "tool": "alpha__*"},
            {"principal": "*", "tool": "alpha__echo"},
        ],
        "deny": [{"principal": "role:contractor", "tool": "alpha__add"}],
    }
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, policy=policy)
    keys = {
        "dora": mint_key(config, "dora", ["dev"]),
        "carl": mint_key(config, "carl", ["dev", "contractor"]),
        "eve": mint_key(config, "eve"),
    }
    seen: dict[str, set[str]] = {}
    refused: dict[str, str | None] = {}
    with http_gateway(config, api_key=False) as url:
        for who, key in keys.items():
            async with Client(authenticated(url, key)) as client:  # type: ignore[arg-type]
                seen[who] = {tool.name for tool in (await client.list_tools()).tools}
                assert (await client.call_tool("alpha__echo", {"text": who})).content[0].text == who  # type: ignore[union-attr]
                try:
                    await client.call_tool("alpha__add", {"a": 1, "b": 2})
                    refused[who] = None
                except MCPError as exc:
                    refused[who] = exc.error.data["reason"]
    assert "alpha__add" in seen["dora"] and "alpha__pid" in seen["dora"]
    assert "alpha__add" not in seen["carl"] and "alpha__pid" in seen["carl"]
    assert seen["eve"] == {"alpha__echo"}
    assert refused == {"dora": None, "carl": "tool-not-permitted", "eve": "tool-not-permitted"}
