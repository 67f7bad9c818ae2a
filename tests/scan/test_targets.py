"""Targets: every client's config format, JSONC, mcpwarden configs, URLs and discovery under $HOME."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mcpwarden.scan.targets import TargetError, discover, load_targets, parse_config_file, strip_jsonc


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _names(path: Path) -> dict[str, tuple[str, str | None, tuple[str, ...], str | None]]:
    return {e.name: (e.transport, e.command, e.args, e.url) for e in parse_config_file(path)}


def test_claude_desktop_and_cursor_mcpservers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "claude_desktop_config.json",
        json.dumps(
            {
                "mcpServers": {
                    "fs": {
                        "command": "npx",
                        "args": ["-y", "@modelcontextprotocol/server-filesystem", "/tmp"],
                    },
                    "remote": {
                        "url": "https://mcp.example/mcp",
                        "headers": {"Authorization": "Bearer ${TOKEN}"},
                    },
                    "off": {"command": "node", "args": ["x.js"], "disabled": True},
                }
            }
        ),
    )
    entries = parse_config_file(path)
    assert {e.name for e in entries} == {"fs", "remote"}
    remote = next(e for e in entries if e.name == "remote")
    # References stay verbatim: the static checks must see ${TOKEN}, not its value.
    assert remote.headers == (("Authorization", "Bearer ${TOKEN}"),)
    assert all(e.source == str(path) and e.group == str(path) for e in entries)


def test_vscode_mcp_json_with_comments_and_trailing_commas(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mcp.json",
        """{
  // VS Code allows comments
  "servers": {
    "github": { "type": "http", "url": "https://api.example/mcp/", }, /* block
    comment */
    "time": { "type": "stdio", "command": "uvx", "args": ["mcp-server-time==0.6.2", "--tz=https://x//y"], },
  },
  "inputs": [],
}""",
    )
    assert _names(path) == {
        "github": ("http", None, (), "https://api.example/mcp/"),
        "time": ("stdio", "uvx", ("mcp-server-time==0.6.2", "--tz=https://x//y"), None),
    }


def test_vscode_settings_both_spellings(tmp_path: Path) -> None:
    nested = _write(tmp_path / "a" / "settings.json", '{"mcp": {"servers": {"a": {"command": "node"}}}}')
    dotted = _write(tmp_path / "b" / "settings.json", '{"mcp.servers": {"b": {"command": "node"}}}')
    assert set(_names(nested)) == {"a"}
    assert set(_names(dotted)) == {"b"}


def test_windsurf_server_url(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mcp_config.json", '{"mcpServers": {"w": {"serverUrl": "https://w.example/mcp"}}}'
    )
    assert _names(path) == {"w": ("http", None, (), "https://w.example/mcp")}


def test_claude_code_user_and_project_servers(tmp_path: Path) -> None:
    path = _write(
        tmp_path / ".claude.json",
        json.dumps(
            {
                "mcpServers": {"top": {"type": "stdio", "command": "node", "args": ["a.js"]}},
                "projects": {
                    "/home/me/app": {"mcpServers": {"db": {"command": "uvx", "args": ["db-mcp==1.0.0"]}}},
                    "/home/me/empty": {"allowedTools": []},
                },
            }
        ),
    )
    entries = parse_config_file(path)
    assert {e.name for e in entries} == {"top", "/home/me/app:db"}
    project = next(e for e in entries if e.name.endswith(":db"))
    assert project.group == f"{path}#/home/me/app"


def test_zed_context_servers_both_shapes(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "settings.json",
        """{
  "theme": "One Dark", // Zed settings are JSONC
  "context_servers": {
    "old": {"command": {"path": "node", "args": ["srv.js"], "env": {"A": "1"}}},
    "new": {"source": "custom", "command": "uvx", "args": ["zed-mcp==2.0.0"]}
  }
}""",
    )
    entries = {e.name: e for e in parse_config_file(path)}
    assert entries["old"].command == "node" and entries["old"].args == ("srv.js",)
    assert entries["old"].env == (("A", "1"),)
    assert entries["new"].command == "uvx"


def test_continue_yaml_and_json(tmp_path: Path) -> None:
    yaml_path = _write(
        tmp_path / "config.yaml",
        "name: assistant\nmcpServers:\n  - name: sqlite\n    command: uvx\n    args: [mcp-server-sqlite]\n",
    )
    json_path = _write(
        tmp_path / "config.json",
        json.dumps(
            {
                "experimental": {
                    "modelContextProtocolServers": [{"transport": {"type": "stdio", "command": "node"}}]
                }
            }
        ),
    )
    assert _names(yaml_path) == {"sqlite": ("stdio", "uvx", ("mcp-server-sqlite",), None)}
    assert _names(json_path) == {"server-1": ("stdio", "node", (), None)}


def test_mcpwarden_config_keeps_references(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "mcpwarden.yaml",
        "servers:\n  tickets:\n    url: http://127.0.0.1:9001/mcp\n"
        "    headers: {Authorization: 'Bearer ${TICKETS_TOKEN}'}\n"
        "  notes:\n    command: python\n    args: [notes.py]\n",
    )
    entries = {e.name: e for e in parse_config_file(path)}
    assert entries["tickets"].headers == (("Authorization", "Bearer ${TICKETS_TOKEN}"),)
    assert entries["notes"].transport == "stdio"


def test_invalid_mcpwarden_config_is_a_target_error(tmp_path: Path) -> None:
    path = _write(tmp_path / "bad.yaml", "servers:\n  x:\n    command: a\n    url: http://b\n")
    with pytest.raises(TargetError, match=r"bad\.yaml"):
        parse_config_file(path)


def test_broken_json_names_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "mcp.json", '{\n  "mcpServers": {\n    "x": \n}')
    with pytest.raises(TargetError, match=r"mcp.json: line \d+"):
        parse_config_file(path)


def test_urls_and_missing_files(tmp_path: Path) -> None:
    found = load_targets(["http://127.0.0.1:9/mcp"])
    (entry,) = found.entries
    assert entry.transport == "http" and entry.direct_url and entry.source == "http://127.0.0.1:9/mcp"
    with pytest.raises(TargetError, match="not a file"):
        load_targets([str(tmp_path / "nope.json")])


def test_strip_jsonc_keeps_slashes_in_strings() -> None:
    text = '{"u": "https://a//b", "s": "/* not a comment */", "e": "quote \\" // still string"} // tail'
    assert json.loads(strip_jsonc(text)) == {
        "u": "https://a//b",
        "s": "/* not a comment */",
        "e": 'quote " // still string',
    }


def test_discover_reads_known_locations_under_home(tmp_path: Path) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    _write(
        home / ".config" / "Claude" / "claude_desktop_config.json",
        '{"mcpServers": {"a": {"command": "node"}}}',
    )
    _write(
        home / "Library" / "Application Support" / "Claude" / "claude_desktop_config.json",
        '{"mcpServers": {"mac": {"command": "node"}}}',
    )
    _write(
        home / "AppData" / "Roaming" / "Claude" / "claude_desktop_config.json",
        '{"mcpServers": {"win": {"command": "node"}}}',
    )
    _write(home / ".cursor" / "mcp.json", '{"mcpServers": {"b": {"url": "https://b.example/mcp"}}}')
    _write(
        home / ".codeium" / "windsurf" / "mcp_config.json",
        '{"mcpServers": {"c": {"serverUrl": "https://c.example"}}}',
    )
    _write(home / ".claude.json", '{"projects": {"/p": {"mcpServers": {"d": {"command": "node"}}}}}')
    _write(home / ".config" / "Code" / "User" / "mcp.json", '{"servers": {"e": {"command": "node"}}}')
    _write(home / ".config" / "zed" / "settings.json", '{"context_servers": {"f": {"command": "node"}}}')
    _write(home / ".continue" / "config.yaml", "mcpServers:\n  - name: g\n    command: node\n")
    _write(project / ".mcp.json", '{"mcpServers": {"h": {"command": "node"}}}')
    _write(project / ".cursor" / "mcp.json", "{ not json")  # broken: a warning, not a failure
    found = discover(home=home, cwd=project, environ={})
    assert {e.name for e in found.entries} == {"a", "mac", "win", "b", "c", "/p:d", "e", "f", "g", "h"}
    assert len(found.files_read) == 10
    assert any(".cursor" in warning and "invalid JSON" in warning for warning in found.warnings)


def test_discover_nothing(tmp_path: Path) -> None:
    found = discover(home=tmp_path, cwd=tmp_path, environ={})
    assert found.entries == () and found.files_read == ()
