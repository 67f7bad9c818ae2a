"""HTTP posture probes: how a Streamable HTTP endpoint the user pointed at treats strangers.

Run only for URLs named on the command line (never for servers found in config files, and never
on any other host: each probe goes to the given URL or its own origin's well-known path). Four
questions, each a handful of requests with a deadline:

1. Does it serve MCP without credentials? (A13, C17)
2. Does it publish Protected Resource Metadata (RFC 9728), required for servers using OAuth?
3. Does it reject a foreign `Origin` with 403, as the transport spec requires? (A10, C17)
4. With a user-supplied `--test-token` minted for another audience: is that token refused? (A4, D7)
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from mcpwarden import __version__
from mcpwarden.scan.model import ScanFinding

__all__ = ["ProbeOutcome", "probe_http"]

FOREIGN_ORIGIN = "https://attacker.example"
_LEGACY_VERSION = "2025-11-25"
_MODERN_VERSION = "2026-07-28"


@dataclass(frozen=True)
class ProbeOutcome:
    findings: tuple[ScanFinding, ...]
    notes: tuple[str, ...]
    # The endpoint answered an anonymous MCP request with 401/403: it wants credentials.
    needs_auth: bool = False


def _initialize_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": _LEGACY_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "mcpwarden-scan", "version": __version__},
        },
    }


def _discover_body() -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "server/discover",
        "params": {
            "_meta": {
                "io.modelcontextprotocol/protocolVersion": _MODERN_VERSION,
                "io.modelcontextprotocol/clientCapabilities": {},
                "io.modelcontextprotocol/clientInfo": {"name": "mcpwarden-scan", "version": __version__},
            }
        },
    }


async def _mcp_post(client: httpx.AsyncClient, url: str, extra: dict[str, str]) -> httpx.Response:
    """POST an MCP opening request; try the modern era's discover if the legacy one is refused as such."""
    base = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}
    response = await client.post(
        url,
        content=json.dumps(_initialize_body()),
        headers=base | {"MCP-Protocol-Version": _LEGACY_VERSION} | extra,
    )
    if response.status_code in {400, 404, 405}:
        modern = base | {"MCP-Protocol-Version": _MODERN_VERSION, "Mcp-Method": "server/discover"} | extra
        second = await client.post(url, content=json.dumps(_discover_body()), headers=modern)
        if second.status_code < 400 or second.status_code in {401, 403}:
            return second
    return response


def _accepted(response: httpx.Response) -> bool:
    """A 2xx whose body is a JSON-RPC result (not an error) means the request was served."""
    if not 200 <= response.status_code < 300:
        return False
    text = response.text
    if "text/event-stream" in response.headers.get("content-type", ""):
        payloads = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    else:
        payloads = [text]
    for payload in payloads:
        try:
            message = json.loads(payload)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and "result" in message:
            return True
    return False


def _metadata_urls(url: str, challenge: str | None) -> list[str]:
    parts = urlsplit(url)
    origin = (parts.scheme, parts.netloc)
    path = parts.path.rstrip("/")
    candidates = [
        urlunsplit((*origin, f"/.well-known/oauth-protected-resource{path}", "", "")),
        urlunsplit((*origin, "/.well-known/oauth-protected-resource", "", "")),
    ]
    if challenge:
        match = re.search(r'resource_metadata="([^"]+)"', challenge)
        if match:
            advertised = urlsplit(match.group(1))
            # Only our target's own origin: a challenge pointing elsewhere is not fetched (SSRF, A5).
            if (advertised.scheme, advertised.netloc) == origin:
                candidates.insert(0, match.group(1))
    return list(dict.fromkeys(candidates))


async def probe_http(url: str, *, timeout: float, test_token: str | None = None) -> ProbeOutcome:
    findings: list[ScanFinding] = []
    notes: list[str] = []
    async with httpx.AsyncClient(
        timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False
    ) as client:
        anonymous = await _mcp_post(client, url, {})
        served_anonymously = _accepted(anonymous)
        needs_auth = anonymous.status_code in {401, 403}
        if served_anonymously:
            findings.append(
                ScanFinding(
                    "unauthenticated-access",
                    "high",
                    "Serves MCP without credentials",
                    "The endpoint answered an MCP request that carried no credentials: anyone who can "
                    "reach it (other users, local processes, web pages through DNS rebinding) can list "
                    "and call its tools.",
                    evidence=f"POST {url} without Authorization -> HTTP {anonymous.status_code}",
                    location="http",
                )
            )
        elif not needs_auth:
            notes.append(
                f"anonymous MCP request answered HTTP {anonymous.status_code}; authentication not assessed"
            )

        metadata: dict[str, Any] | None = None
        metadata_url = None
        for candidate in _metadata_urls(url, anonymous.headers.get("www-authenticate")):
            response = await client.get(candidate, headers={"Accept": "application/json"})
            if response.status_code == 200:
                try:
                    parsed = response.json()
                except ValueError:
                    continue
                if isinstance(parsed, dict):
                    metadata, metadata_url = parsed, candidate
                    break
        if metadata is None:
            findings.append(
                ScanFinding(
                    "missing-resource-metadata",
                    "medium" if needs_auth else "info",
                    "No Protected Resource Metadata (RFC 9728)",
                    "MCP servers that use OAuth must publish /.well-known/oauth-protected-resource so "
                    "clients learn which authorization server to use and which audience to ask for.",
                    evidence="tried "
                    + ", ".join(_metadata_urls(url, anonymous.headers.get("www-authenticate"))),
                    location="http",
                )
            )
        elif not metadata.get("authorization_servers") or not metadata.get("resource"):
            findings.append(
                ScanFinding(
                    "invalid-resource-metadata",
                    "low",
                    "Protected Resource Metadata lacks 'resource' or 'authorization_servers'",
                    evidence=str(metadata_url),
                    location="http",
                )
            )

        origin_headers = {"Origin": FOREIGN_ORIGIN}
        if test_token:
            origin_headers["Authorization"] = f"Bearer {test_token}"
        foreign = await _mcp_post(client, url, origin_headers)
        if foreign.status_code == 403:
            pass
        elif _accepted(foreign):
            findings.append(
                ScanFinding(
                    "origin-not-validated",
                    "high",
                    "Accepts requests from a foreign Origin",
                    "The transport spec requires a 403 for an invalid Origin. Without it a web page the "
                    "user visits can drive the server through the browser (DNS rebinding, CVE-2025-66416).",
                    evidence=f"Origin: {FOREIGN_ORIGIN} -> HTTP {foreign.status_code}",
                    location="http",
                )
            )
        else:
            notes.append(
                f"foreign Origin answered HTTP {foreign.status_code} (not 403); Origin check not confirmed"
            )

        if test_token:
            with_token = await _mcp_post(client, url, {"Authorization": f"Bearer {test_token}"})
            if _accepted(with_token) and not served_anonymously:
                findings.append(
                    ScanFinding(
                        "token-audience-not-validated",
                        "critical",
                        "Accepts a token minted for another audience",
                        "The server served a request carrying the test token, which was issued for a "
                        "different resource. Servers must check the token's audience (RFC 8707); one "
                        "that does not accepts tokens stolen from, or passed through by, other services.",
                        evidence=f"Authorization: Bearer <test token> -> HTTP {with_token.status_code}",
                        location="http",
                    )
                )
            elif served_anonymously:
                notes.append("token audience not assessed: the server needs no token at all")
    return ProbeOutcome(tuple(findings), tuple(notes), needs_auth)
