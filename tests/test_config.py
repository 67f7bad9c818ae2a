"""Configuration: the CONTRACT.md shape, clear errors naming file, key and line, ${VAR} expansion."""

from __future__ import annotations

from pathlib import Path

import pytest

from mcpwarden.config import load_settings, parse_settings
from mcpwarden.errors import ConfigError

CONTRACT_EXAMPLE = """\
servers:
  notes:
    command: python
    args: [notes_server.py]
    env: {NOTES_DIR: ./notes}
  tickets:
    url: http://127.0.0.1:9001/mcp
    headers: {Authorization: "Bearer ${TICKETS_TOKEN}"}
state_dir: .mcpwarden
auth:
  api_keys: true
  oauth:
    issuer: https://idp.example
    audience: http://127.0.0.1:8765/mcp
    jwks_uri: https://idp.example/jwks.json
policy:
  allow:
    - principal: "*"
      tool: "notes__*"
limits:
  - principal: "*"
    tool: "*"
    rate: 5/s
    concurrency: 4
    cost: 1
    budget: {units: 1000, per: day}
    max_result_kb: 512
    loop: {repeats: 10, window: 60s}
"""


def parse(text: str, tmp_path: Path, **env: str) -> object:
    return parse_settings(text, tmp_path / "mcpwarden.yaml", env)


def test_contract_example_parses(tmp_path: Path) -> None:
    settings = parse_settings(CONTRACT_EXAMPLE, tmp_path / "mcpwarden.yaml", {"TICKETS_TOKEN": "s3cret"})
    assert settings.servers["notes"].command == "python"
    assert settings.servers["notes"].args == ("notes_server.py",)
    assert settings.servers["tickets"].headers == {"Authorization": "Bearer s3cret"}
    assert settings.state_dir == (tmp_path / ".mcpwarden").resolve()
    assert settings.limits[0].budget is not None and settings.limits[0].budget.per == "day"


def test_mcpservers_shape_is_accepted(tmp_path: Path) -> None:
    text = (
        '{"mcpServers": {"fs": {"type": "stdio", "command": "npx", "args": ["-y", "x"]}, '
        '"web": {"type": "http", "url": "https://example.com/mcp"}}}'
    )
    settings = parse_settings(text, tmp_path / "c.json", {})
    assert set(settings.servers) == {"fs", "web"}
    assert settings.servers["web"].url == "https://example.com/mcp"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "servers:\n  a:\n    command: x\n    bogus: 1\n",
            "mcpwarden.yaml:4: key 'servers.a.bogus': unknown key",
        ),
        ("no_such_key: 1\n", "key 'no_such_key': unknown key"),
        ("servers:\n  Bad_Id:\n    command: x\n", "servers.Bad_Id"),
        ("servers:\n  a:\n    url: ftp://x\n", "'url' must start with http:// or https://"),
        ("servers:\n  a: {command: x, url: 'http://y'}\n", "give either 'command'"),
        ("servers:\n  a__b:\n    command: x\n", "contains the separator"),
        ("servers:\n  a_:\n    command: x\n", "ends with part of the separator"),
        ("servers:\n  a-:\n    command: x\ngateway: {separator: '--'}\n", "ends with part of the separator"),
        ("limits:\n  - rate: 5/x\n", "mcpwarden.yaml:2: key 'limits.0.rate'"),
        ("servers: [1, 2\n", "mcpwarden.yaml: line"),
        ("- just a list\n", "top level must be a mapping"),
    ],
)
def test_errors_name_file_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(text, tmp_path)
    assert expected in str(caught.value)


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="TOKEN is not set"):
        parse("servers:\n  a:\n    url: http://x\n    headers: {A: '${TOKEN}'}\n", tmp_path)


def test_environment_default_and_no_secret_echo(tmp_path: Path) -> None:
    settings = parse_settings(
        "servers:\n  a:\n    url: http://x\n    headers: {A: '${MISSING:-fallback}'}\n",
        tmp_path / "c.yaml",
        {},
    )
    assert settings.servers["a"].headers["A"] == "fallback"
    with pytest.raises(ConfigError) as caught:
        parse_settings(
            "servers:\n  a:\n    command: x\n    args: '${SECRET}'\n",
            tmp_path / "c.yaml",
            {"SECRET": "hunter2-value"},
        )
    assert "hunter2-value" not in str(caught.value)


def test_load_settings_default_and_explicit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().servers == {}
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_settings(tmp_path / "absent.yaml")
