"""Scan targets: MCP client config files, mcpwarden configs and URLs, turned into server entries.

First stage of `mcpwarden scan`. A target is a file (a client's config, whichever client wrote it,
or an mcpwarden YAML config) or an `http(s)://` MCP endpoint. With no target, `discover()` looks in
the places the common clients keep their configs under $HOME (and the project files in the current
directory) and reports which files it read.

Values are kept exactly as written: `${VAR}` references stay unexpanded here, so the static checks
can tell a secret pasted into a file from a reference to the environment (the good practice).
The live checks expand references just before connecting (see live.py).

Client formats handled (all JSON may carry JSONC comments and trailing commas; VS Code, Zed and
Claude Code accept them, the others are tolerated the same way):
- `mcpServers` {name: entry}: Claude Desktop, Cursor, Windsurf (`serverUrl`), Claude Code, `.mcp.json`
- `servers` {name: entry}: VS Code `mcp.json`; `mcp.servers` / `"mcp": {"servers"}`: VS Code settings
- `projects.<dir>.mcpServers`: Claude Code `~/.claude.json`
- `context_servers`: Zed (`command` as a string or as {path, args, env})
- Continue: `mcpServers` as a list in config.yaml, `experimental.modelContextProtocolServers` in
  config.json (`transport` sub-object)
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from mcpwarden.config import load_settings
from mcpwarden.errors import ConfigError
from mcpwarden.scan.model import ServerEntry

__all__ = ["TargetError", "TargetSet", "discover", "load_targets", "parse_config_file", "strip_jsonc"]


class TargetError(ConfigError):
    """A target named on the command line cannot be read or understood."""


@dataclass(frozen=True)
class TargetSet:
    entries: tuple[ServerEntry, ...]
    files_read: tuple[str, ...]
    warnings: tuple[str, ...] = ()


def candidate_paths(home: Path, cwd: Path, environ: Mapping[str, str]) -> list[tuple[str, Path]]:
    """Every place a known client keeps MCP servers, as (client, path); most need not exist."""
    appdata = Path(environ["APPDATA"]) if environ.get("APPDATA") else home / "AppData" / "Roaming"
    xdg = Path(environ["XDG_CONFIG_HOME"]) if environ.get("XDG_CONFIG_HOME") else home / ".config"
    mac = home / "Library" / "Application Support"
    paths: list[tuple[str, Path]] = [
        ("Claude Desktop", xdg / "Claude" / "claude_desktop_config.json"),
        ("Claude Desktop", mac / "Claude" / "claude_desktop_config.json"),
        ("Claude Desktop", appdata / "Claude" / "claude_desktop_config.json"),
        ("Cursor", home / ".cursor" / "mcp.json"),
        ("Windsurf", home / ".codeium" / "windsurf" / "mcp_config.json"),
        ("Claude Code", home / ".claude.json"),
        ("Zed", xdg / "zed" / "settings.json"),
        ("Continue", home / ".continue" / "config.yaml"),
        ("Continue", home / ".continue" / "config.json"),
    ]
    for edition in ("Code", "Code - Insiders", "VSCodium"):
        for base in (xdg, mac, appdata):
            paths.append(("VS Code", base / edition / "User" / "mcp.json"))
            paths.append(("VS Code", base / edition / "User" / "settings.json"))
    # Project-level files in the directory the scan runs from.
    paths += [
        ("Cursor (project)", cwd / ".cursor" / "mcp.json"),
        ("VS Code (workspace)", cwd / ".vscode" / "mcp.json"),
        ("Claude Code (project)", cwd / ".mcp.json"),
    ]
    continue_dir = home / ".continue" / "mcpServers"
    if continue_dir.is_dir():
        paths += [("Continue", p) for p in sorted(continue_dir.glob("*.y*ml"))]
    unique: dict[Path, tuple[str, Path]] = {}
    for client, path in paths:
        unique.setdefault(path, (client, path))
    return list(unique.values())


def discover(
    home: Path | None = None, cwd: Path | None = None, environ: Mapping[str, str] | None = None
) -> TargetSet:
    """Read every client config found under `home` (default $HOME) and `cwd`; unreadable ones warn."""
    env = os.environ if environ is None else environ
    home = home or Path(env.get("HOME") or Path.home())
    cwd = cwd or Path.cwd()
    entries: list[ServerEntry] = []
    files: list[str] = []
    warnings: list[str] = []
    for client, path in candidate_paths(home, cwd, env):
        if not path.is_file():
            continue
        try:
            found = parse_config_file(path)
        except TargetError as exc:
            # One broken file must not hide the servers configured in the others.
            warnings.append(f"{client}: {exc}")
            continue
        files.append(str(path))
        entries.extend(found)
    return TargetSet(tuple(entries), tuple(files), tuple(warnings))


def load_targets(targets: list[str]) -> TargetSet:
    """Entries for targets named on the command line; any unreadable target is a `TargetError`."""
    entries: list[ServerEntry] = []
    files: list[str] = []
    for target in targets:
        if target.startswith(("http://", "https://")):
            entries.append(_url_entry(target))
            continue
        path = Path(target).expanduser()
        if not path.is_file():
            raise TargetError(f"{target}: not a file or an http(s):// URL")
        entries.extend(parse_config_file(path))
        files.append(str(path))
    return TargetSet(tuple(entries), tuple(files))


def _url_entry(url: str) -> ServerEntry:
    parts = urlsplit(url)
    if not parts.hostname:
        raise TargetError(f"{url}: not a valid URL")
    name = parts.hostname + (f":{parts.port}" if parts.port else "") + (parts.path.rstrip("/") or "")
    return ServerEntry(
        name=name, source=url, transport="http", url=url, group="(command line)", direct_url=True
    )


def parse_config_file(path: Path) -> list[ServerEntry]:
    """The server entries in one config file, whatever client (or mcpwarden) wrote it."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise TargetError(f"{path}: cannot read: {exc}") from None
    source = str(path)
    if path.suffix.lower() in {".yaml", ".yml"}:
        return _parse_yaml(text, path)
    try:
        data = json.loads(strip_jsonc(text)) if text.strip() else {}
    except json.JSONDecodeError as exc:
        raise TargetError(f"{path}: line {exc.lineno}: invalid JSON: {exc.msg}") from None
    if not isinstance(data, dict):
        raise TargetError(f"{path}: the top level must be a JSON object")
    return list(_entries_from_json(data, source))


def _parse_yaml(text: str, path: Path) -> list[ServerEntry]:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TargetError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, dict):
        raise TargetError(f"{path}: the top level must be a mapping")
    source = str(path)
    servers = data.get("mcpServers")
    if isinstance(servers, list):
        # Continue's config.yaml (and .continue/mcpServers/*.yaml): a list of named entries.
        return [e for i, raw in enumerate(servers) if (e := _continue_entry(raw, i, source)) is not None]
    # An mcpwarden config: validated by the project's own loader, but with ${VAR} kept verbatim.
    try:
        settings = load_settings(path, environ=_VerbatimEnvironment())
    except ConfigError as exc:
        raise TargetError(str(exc)) from None
    entries = []
    for name, spec in settings.servers.items():
        entries.append(
            ServerEntry(
                name=name,
                source=source,
                transport="stdio" if spec.is_stdio else "http",
                command=spec.command,
                args=tuple(spec.args),
                env=tuple(spec.env.items()),
                cwd=spec.cwd,
                url=spec.url,
                headers=tuple(spec.headers.items()),
                group=source,
            )
        )
    return entries


class _VerbatimEnvironment(Mapping[str, str]):
    """An environment in which every `${NAME}` expands to itself, so references stay visible."""

    def __getitem__(self, key: str) -> str:
        return "${" + key + "}"

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _entries_from_json(data: dict[str, Any], source: str) -> Iterator[ServerEntry]:
    sections: list[tuple[str, Any]] = [("", data.get("mcpServers"))]
    if isinstance(data.get("servers"), dict):
        sections.append(("", data["servers"]))  # VS Code mcp.json
    if isinstance(data.get("mcp.servers"), dict):
        sections.append(("", data["mcp.servers"]))  # VS Code settings.json, dotted key
    mcp = data.get("mcp")
    if isinstance(mcp, dict) and isinstance(mcp.get("servers"), dict):
        sections.append(("", mcp["servers"]))  # VS Code settings.json, nested
    if isinstance(data.get("context_servers"), dict):
        sections.append(("", data["context_servers"]))  # Zed
    for name, server in _mapping_items(sections):
        entry = _entry(name, server, source, source)
        if entry is not None:
            yield entry
    projects = data.get("projects")
    if isinstance(projects, dict):
        # Claude Code: each project directory has its own servers, seen with the user-level ones.
        for project, settings in projects.items():
            if isinstance(settings, dict) and isinstance(settings.get("mcpServers"), dict):
                for name, server in settings["mcpServers"].items():
                    entry = _entry(f"{project}:{name}", server, source, f"{source}#{project}")
                    if entry is not None:
                        yield entry
    experimental = data.get("experimental")
    if isinstance(experimental, dict) and isinstance(experimental.get("modelContextProtocolServers"), list):
        for index, raw in enumerate(experimental["modelContextProtocolServers"]):
            entry = _continue_entry(raw, index, source)
            if entry is not None:
                yield entry


def _mapping_items(sections: list[tuple[str, Any]]) -> Iterator[tuple[str, Any]]:
    for prefix, section in sections:
        if isinstance(section, dict):
            for name, server in section.items():
                yield f"{prefix}{name}", server


def _continue_entry(raw: Any, index: int, source: str) -> ServerEntry | None:
    if not isinstance(raw, dict):
        return None
    name = str(raw.get("name") or f"server-{index + 1}")
    transport = raw.get("transport")
    body = transport if isinstance(transport, dict) else raw
    return _entry(name, body, source, source)


def _entry(name: str, raw: Any, source: str, group: str) -> ServerEntry | None:
    if not isinstance(raw, dict) or raw.get("disabled") is True:
        return None
    command: Any = raw.get("command")
    args: Any = raw.get("args") or []
    env: Any = raw.get("env") or {}
    if isinstance(command, dict):  # Zed's older {"command": {"path", "args", "env"}}
        args = command.get("args") or []
        env = command.get("env") or {}
        command = command.get("path")
    url = raw.get("url") or raw.get("serverUrl") or raw.get("httpUrl")
    request_init = raw.get("requestInit")
    headers: Any = (
        raw.get("headers") or (request_init.get("headers") if isinstance(request_init, dict) else None) or {}
    )
    if isinstance(command, str) and command:
        return ServerEntry(
            name=name,
            source=source,
            transport="stdio",
            command=command,
            args=tuple(str(a) for a in args) if isinstance(args, list) else (),
            env=tuple((str(k), str(v)) for k, v in env.items()) if isinstance(env, dict) else (),
            cwd=str(raw["cwd"]) if isinstance(raw.get("cwd"), str) else None,
            group=group,
        )
    if isinstance(url, str) and url:
        return ServerEntry(
            name=name,
            source=source,
            transport="http",
            url=url,
            headers=tuple((str(k), str(v)) for k, v in headers.items()) if isinstance(headers, dict) else (),
            group=group,
        )
    return None


def strip_jsonc(text: str) -> str:
    """JSON with `//` and `/* */` comments and trailing commas, made plain JSON.

    A small scanner rather than regular expressions, because `//` inside a string ("https://…")
    must survive. Removed comments become spaces/newlines so error line numbers stay right.
    """
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if char == '"':
                in_string = False
            i += 1
            continue
        if char == '"':
            in_string = True
            out.append(char)
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end == -1 else end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            block = text[i : n if end == -1 else end + 2]
            out.append("\n" * block.count("\n") or " ")
            i = n if end == -1 else end + 2
        else:
            out.append(char)
            i += 1
    return _drop_trailing_commas("".join(out))


def _drop_trailing_commas(text: str) -> str:
    out: list[str] = []
    in_string = False
    i, n = 0, len(text)
    while i < n:
        char = text[i]
        if in_string:
            out.append(char)
            if char == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            in_string = char != '"'
            i += 1
            continue
        if char == '"':
            in_string = True
        elif char == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j < n and text[j] in "}]":
                i += 1
                continue
        out.append(char)
        i += 1
    return "".join(out)
