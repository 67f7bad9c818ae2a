"""Live checks: connect to a server, list what it tells a model, and judge every string of it.

Third stage of `mcpwarden scan`. `fetch_inventory` connects with the `mcp` SDK (stdio child or
Streamable HTTP) under a deadline and collects tools, prompts, resources, resource templates and
the server's instructions. `inventory_findings` runs the shared detection engine on all of it:
whole tool definitions (description, every schema key and string: C1, C2, C10), instructions (C6),
prompts and resources, hidden characters (ANSI escapes, invisible Unicode: C7, C8), tool-name
validity and icon URLs (C22). `collision_findings` compares servers one client sees together (C13).

A stdio server's code runs when it starts, so it is started only when the user asked for it
(--run-stdio), and with a scrubbed environment: PATH, HOME and LANG from ours plus the entry's own
`env` (references expanded now). The SDK adds its fixed list of non-secret variables (LOGNAME,
SHELL, TERM, USER); nothing else of the user's environment (tokens, cloud credentials) reaches it.
"""

from __future__ import annotations

import os
import re
import tempfile
import unicodedata
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import anyio
import httpx2
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from mcpwarden.scan.engine import Detection, TextKind, detect_text, detect_tool, has_hidden, visible
from mcpwarden.scan.model import ScanFinding, ServerEntry, Severity

__all__ = [
    "Inventory",
    "collision_findings",
    "expand_references",
    "fetch_inventory",
    "inventory_findings",
    "risk_tier",
    "scrubbed_environment",
]

TOOL_NAME = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_REFERENCE = re.compile(r"\$\{(?:env:)?([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class Inventory:
    """Everything a server tells a client about itself, as plain JSON (the SDK's wire shape)."""

    tools: tuple[dict[str, Any], ...] = ()
    prompts: tuple[dict[str, Any], ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    resource_templates: tuple[dict[str, Any], ...] = ()
    instructions: str | None = None
    server_name: str | None = None
    protocol_version: str | None = None
    errors: tuple[str, ...] = field(default_factory=tuple)


def expand_references(value: str, environ: Mapping[str, str]) -> str:
    """`${VAR}`, `${env:VAR}` and `${VAR:-default}` from `environ`; unknown ones become empty."""

    def substitute(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        return environ.get(name, default if default is not None else "")

    return _REFERENCE.sub(substitute, value)


def scrubbed_environment(entry: ServerEntry, environ: Mapping[str, str]) -> dict[str, str]:
    base = {key: environ[key] for key in ("PATH", "HOME", "LANG") if key in environ}
    return base | {key: expand_references(value, environ) for key, value in entry.env}


def _transport(
    entry: ServerEntry, errlog: Any, http_client: httpx2.AsyncClient
) -> AbstractAsyncContextManager[Any]:
    environ = os.environ
    if entry.transport == "stdio":
        assert entry.command is not None
        params = StdioServerParameters(
            command=expand_references(entry.command, environ),
            args=[expand_references(arg, environ) for arg in entry.args],
            env=scrubbed_environment(entry, environ),
            cwd=entry.cwd,
        )
        return stdio_client(params, errlog=errlog)
    assert entry.url is not None
    return streamable_http_client(expand_references(entry.url, environ), http_client=http_client)


async def fetch_inventory(entry: ServerEntry, timeout: float) -> Inventory:
    """Connect, list everything, disconnect; raises TimeoutError or the connection's error."""
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errlog:
        try:
            with anyio.fail_after(timeout):
                return await _collect(entry, timeout, errlog)
        except Exception as exc:
            # The server's own complaint (a traceback, "command not found") is the useful part.
            errlog.seek(0)
            tail = errlog.read()[-300:].strip()
            if tail:
                raise ConnectionError(f"{_describe(exc)}; server stderr: {visible(tail)}") from exc
            raise


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


async def _collect(entry: ServerEntry, timeout: float, errlog: Any) -> Inventory:
    errors: list[str] = []
    headers = {key: expand_references(value, os.environ) for key, value in entry.headers}
    # Our own HTTP client (closed here): the entry's headers, our deadline, no redirects off the endpoint.
    async with (
        httpx2.AsyncClient(
            headers=headers, timeout=httpx2.Timeout(timeout), follow_redirects=False
        ) as http_client,
        Client(_transport(entry, errlog, http_client), read_timeout_seconds=timeout, cache=None) as client,
    ):
        capabilities = client.server_capabilities
        tools: list[dict[str, Any]] = []
        prompts: list[dict[str, Any]] = []
        resources: list[dict[str, Any]] = []
        templates: list[dict[str, Any]] = []
        # Servers may omit a capability yet still answer; we list what is declared and tolerate errors,
        # because one broken list must not hide what the others reveal.
        cursor: str | None = None
        for _ in range(100):
            page = await client.list_tools(cursor=cursor)
            tools += [_dump(tool) for tool in page.tools]
            cursor = page.next_cursor
            if not cursor:
                break
        if capabilities.prompts is not None:
            try:
                listed = await client.list_prompts()
                prompts = [_dump(prompt) for prompt in listed.prompts]
            except Exception as exc:
                errors.append(f"prompts/list: {_describe(exc)}")
        if capabilities.resources is not None:
            try:
                listed_resources = await client.list_resources()
                resources = [_dump(resource) for resource in listed_resources.resources]
                listed_templates = await client.list_resource_templates()
                templates = [_dump(template) for template in listed_templates.resource_templates]
            except Exception as exc:
                errors.append(f"resources/list: {_describe(exc)}")
        server_info = client.server_info
        return Inventory(
            tools=tuple(tools),
            prompts=tuple(prompts),
            resources=tuple(resources),
            resource_templates=tuple(templates),
            instructions=client.instructions,
            server_name=server_info.name if server_info is not None else None,
            protocol_version=client.protocol_version,
            errors=tuple(errors),
        )


def _dump(model: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = model.model_dump(by_alias=True, exclude_none=True, mode="json")
    return dumped


# --- judging what the server said -----------------------------------------------------------------


def _severity(detection: Detection) -> Severity:
    return "critical" if detection.score >= 0.9 else "high"


def _reasons(detection: Detection) -> str:
    return ", ".join(detection.reasons) or f"score {detection.score:.2f}"


def _strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every string in a JSON value, keys included (schema poisoning hides text in keys: C10)."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key, inner in value.items():
            yield f"{path}.{key}" if path else str(key), str(key)
            yield from _strings(inner, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray):
        for index, inner in enumerate(value):
            yield from _strings(inner, f"{path}[{index}]")


def _clip(text: str, limit: int = 240) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def inventory_findings(inventory: Inventory) -> list[ScanFinding]:
    findings: list[ScanFinding] = []
    for tool in inventory.tools:
        name = str(tool.get("name", ""))
        findings += _name_findings(name, "tool")
        findings += _annotation_findings(tool, name)
        detection = detect_tool(tool)
        if detection.flagged:
            findings.append(
                ScanFinding(
                    "tool-poisoning",
                    _severity(detection),
                    "Tool definition carries instructions for the model (tool poisoning)",
                    "The description or input schema tries to steer the model: hidden instructions, "
                    "references to secrets or other tools, or demands for secrecy. Detector: "
                    + _reasons(detection),
                    tool=name,
                    evidence=_clip(detection.excerpt or visible(str(tool.get("description", "")))),
                    location="tool",
                )
            )
        findings += _hidden_findings(tool, name, "tool")
        findings += _icon_findings(tool, name, "tool")
    if inventory.instructions:
        detection = detect_text(inventory.instructions, "server_instructions")
        if detection.flagged:
            findings.append(
                ScanFinding(
                    "instructions-poisoning",
                    _severity(detection),
                    "Server instructions try to steer the model (line jumping)",
                    "The instructions every session receives contain injected directions; they act "
                    "before any tool is called (C6). Detector: " + _reasons(detection),
                    evidence=_clip(detection.excerpt or visible(inventory.instructions)),
                    location="instructions",
                )
            )
        findings += _hidden_findings(inventory.instructions, None, "instructions")
    for prompt in inventory.prompts:
        name = str(prompt.get("name", ""))
        findings += _text_item_findings(prompt, name, "prompt", "prompt-poisoning", "tool_description")
    for resource in (*inventory.resources, *inventory.resource_templates):
        name = str(resource.get("name") or resource.get("uri") or resource.get("uriTemplate") or "")
        findings += _text_item_findings(resource, name, "resource", "resource-poisoning", "tool_description")
    return findings


def _text_item_findings(
    item: Mapping[str, Any], name: str, location: str, finding_id: str, kind: TextKind
) -> list[ScanFinding]:
    text = "\n".join(value for path, value in _strings(item) if not path.endswith(("uri", "mimeType", "src")))
    findings: list[ScanFinding] = []
    detection = detect_text(text, kind)
    if detection.flagged:
        findings.append(
            ScanFinding(
                finding_id,
                _severity(detection),
                f"{location.capitalize()} metadata carries instructions for the model",
                f"The {location}'s name, description or arguments contain injected directions. Detector: "
                + _reasons(detection),
                tool=name,
                evidence=_clip(detection.excerpt or visible(str(item.get("description", "")) or text)),
                location=location,
            )
        )
    findings += _hidden_findings(item, name, location)
    findings += _icon_findings(item, name, location)
    return findings


# Verbs that make a tool change or destroy state, execute code or move data out (LLM06).
_DESTRUCTIVE = re.compile(
    r"(^|[_\-.\s])(delete|remove|drop|destroy|erase|purge|wipe|truncate|kill|terminate|rm)([_\-.\s]|$)"
)
_EXECUTE = re.compile(r"(^|[_\-.\s])(exec|execute|run|shell|eval|spawn|command|script)([_\-.\s]|$)")
_WRITE = re.compile(
    r"(^|[_\-.\s])(write|create|update|edit|set|put|post|send|upload|push|commit|merge|move|rename|transfer|pay|"
    r"publish|deploy|install|insert|modify|patch|approve|invite|share|email|message)([_\-.\s]|$)"
)


def risk_tier(tool: Mapping[str, Any]) -> str:
    """What calling the tool can do, judged from its name (annotations are untrusted hints):
    `destructive`, `execute`, `write` or `read`. The gateway's approval rules start from the same tiers."""
    name = re.sub(r"([a-z])([A-Z])", r"\1_\2", str(tool.get("name", ""))).lower()
    if _DESTRUCTIVE.search(name):
        return "destructive"
    if _EXECUTE.search(name):
        return "execute"
    if _WRITE.search(name):
        return "write"
    return "read"


def _annotation_findings(tool: Mapping[str, Any], name: str) -> list[ScanFinding]:
    annotations = tool.get("annotations")
    if not isinstance(annotations, Mapping):
        return []
    tier = risk_tier(tool)
    claims_read_only = annotations.get("readOnlyHint") is True
    claims_harmless = annotations.get("destructiveHint") is False
    if (tier in {"destructive", "execute"} and (claims_read_only or claims_harmless)) or (
        tier == "write" and claims_read_only
    ):
        claim = "readOnlyHint: true" if claims_read_only else "destructiveHint: false"
        return [
            ScanFinding(
                "misleading-annotations",
                "medium",
                "Tool annotations understate what the tool does",
                f"The tool is named like a {tier} operation but claims {claim}. Annotations are untrusted "
                "hints (MCP spec); clients that skip confirmation on them would run it unchecked.",
                tool=name,
                evidence=f"{visible(name)}: {claim}",
                location="tool",
            )
        ]
    return []


def _name_findings(name: str, location: str) -> list[ScanFinding]:
    if TOOL_NAME.match(name):
        return []
    non_ascii = any(ord(char) > 127 for char in name)
    return [
        ScanFinding(
            "invalid-tool-name",
            "high" if non_ascii else "medium",
            "Tool name outside the MCP character set"
            + (" (non-ASCII look-alike letters)" if non_ascii else ""),
            "Tool names should be 1-128 characters of A-Z a-z 0-9 _ . - (MCP spec). Other characters "
            "let a tool impersonate another (a Cyrillic letter in place of a Latin one) or hide text.",
            tool=name,
            evidence=visible(_codepoints(name) if non_ascii else name),
            location=location,
        )
    ]


def _codepoints(name: str) -> str:
    return "".join(char if ord(char) < 128 else f"<U+{ord(char):04X}>" for char in name)


def _hidden_findings(value: Any, name: str | None, location: str) -> list[ScanFinding]:
    for path, text in _strings(value):
        if has_hidden(text):
            return [
                ScanFinding(
                    "hidden-characters",
                    "high",
                    "Hidden characters in server metadata",
                    "Terminal escape sequences or invisible Unicode (zero-width, bidi, tag characters) "
                    "can show a person one text while the model reads another (C7, C8).",
                    tool=name,
                    evidence=_clip(f"{path or location}: {visible(text)}"),
                    location=location,
                )
            ]
    return []


def _icon_findings(item: Mapping[str, Any], name: str, location: str) -> list[ScanFinding]:
    icons = item.get("icons")
    if not isinstance(icons, list):
        return []
    for icon in icons:
        source = str(icon.get("src", "")) if isinstance(icon, Mapping) else ""
        scheme = source.split(":", 1)[0].lower() if ":" in source else ""
        if source and scheme not in {"https", "data"}:
            return [
                ScanFinding(
                    "unsafe-icon-url",
                    "medium",
                    "Icon URL that is neither https: nor data:",
                    "Clients may fetch icon URLs; javascript:, file: or internal http: addresses turn "
                    "that into script execution, local file reads or SSRF (C22).",
                    tool=name,
                    evidence=_clip(visible(source)),
                    location=location,
                )
            ]
    return []


# --- across servers -------------------------------------------------------------------------------

# Letters from other scripts that render like Latin ones (the common subset of Unicode's
# confusables.txt that attackers use in identifiers).
_CONFUSABLE_PAIRS = (
    "\u0430a\u0435e\u043eo\u0440p\u0441c\u0443y\u0445x\u0456i\u0458j\u0455s"
    "\u04bbh\u0501d\u051bq\u051dw\u0261g\u04cfl\u0432b\u043ak\u043cm\u043dh"
    "\u0442t\u0410A\u0412B\u0415E\u041aK\u041cM\u041dH\u041eO\u0420P\u0421C"
    "\u0422T\u0425X\u0406I\u0408J\u0405S\u03b1a\u03bfo\u03c1p\u03bdv\u03c4t"
    "\u03c5u\u03b9i\u03bak\u03c7x\u0391A\u0392B\u0395E\u0396Z\u0397H\u0399I"
    "\u039aK\u039cM\u039dN\u039fO\u03a1P\u03a4T\u03a5Y\u03a7X\u0131i\u2113l"
)
_CONFUSABLES = str.maketrans(_CONFUSABLE_PAIRS[0::2], _CONFUSABLE_PAIRS[1::2])


def name_skeleton(name: str) -> str:
    """A form under which look-alike names compare equal: NFKC, confusable letters folded to Latin,
    invisible characters and combining marks dropped. Case and separators are kept: `list_files`
    next to `listFiles` is a naming habit, not an impersonation."""
    folded = unicodedata.normalize("NFKC", name).translate(_CONFUSABLES)
    return "".join(char for char in folded if unicodedata.category(char) not in {"Cf", "Cc", "Mn"})


def collision_findings(tools_by_server: Mapping[str, Sequence[str]]) -> dict[str, list[ScanFinding]]:
    """Per server, the findings for tool names that collide with another server's in the same client."""
    findings: dict[str, list[ScanFinding]] = defaultdict(list)
    by_skeleton: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for server, names in tools_by_server.items():
        for name in set(names):
            by_skeleton[name_skeleton(name)].append((server, name))
    for holders in by_skeleton.values():
        servers = {server for server, _ in holders}
        if len(servers) < 2:
            continue
        for server, name in holders:
            rivals = sorted((other, other_name) for other, other_name in holders if other != server)
            same = [f"{other}:{other_name}" for other, other_name in rivals if other_name == name]
            lookalike = [f"{other}:{other_name}" for other, other_name in rivals if other_name != name]
            if same:
                findings[server].append(
                    ScanFinding(
                        "tool-name-collision",
                        "medium",
                        "Another server in the same client offers a tool with the same name",
                        "Clients that do not namespace tools may call the wrong server's tool, and a "
                        "squatting server can shadow a trusted one (C13).",
                        tool=name,
                        evidence="also on " + ", ".join(_codepoints(o) for o in same),
                        location="tool",
                    )
                )
            if lookalike:
                findings[server].append(
                    ScanFinding(
                        "confusable-tool-name",
                        "high",
                        "Tool name looks like another server's tool name",
                        "Two names that render alike but differ (look-alike letters, invisible characters) "
                        "let one server impersonate another's tool (C13).",
                        tool=name,
                        evidence=f"{_codepoints(name)} resembles "
                        + ", ".join(_codepoints(o) for o in lookalike),
                        location="tool",
                    )
                )
    return findings
