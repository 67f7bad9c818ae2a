"""Static checks: what a config entry reveals without starting or contacting the server.

Second stage of `mcpwarden scan`, run on every entry: startup-command vetting (vetting.py, A8/C19),
credentials written into the file in plain text (args, env, headers, URLs: MCP01), plain http://
to a host that is not this machine, and an unauthenticated HTTP upstream on localhost (C17: any web
page can reach it through DNS rebinding). Evidence never includes a secret's value.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit

from mcpwarden.scan.engine import credential_kinds
from mcpwarden.scan.model import ScanFinding, ServerEntry
from mcpwarden.vetting import vet_command

__all__ = ["is_loopback_host", "static_findings"]

PLAINTEXT_SECRET = "plaintext-secret"
INSECURE_TRANSPORT = "insecure-transport"
UNAUTHENTICATED_LOCAL_HTTP = "unauthenticated-local-http"
LIVE_CHECKS_SKIPPED = "live-checks-skipped"

# Names under which people put credentials (env vars, headers, --flags, query parameters).
_SECRET_NAME = re.compile(
    r"(token|secret|passw(or)?d|passwd|\bpwd\b|api[-_]?key|apikey|access[-_]?key|private[-_]?key|"
    r"credential|auth|session|cookie|^key$|(secret|signing|encryption|client|master|license|service|account|app)"
    r"[-_]?key|bearer)",
    re.IGNORECASE,
)
_NOT_SECRET_NAME = re.compile(
    r"(_url|_uri|_path|_file|_dir|_host|_endpoint|_id|_name|_region|_type)$", re.IGNORECASE
)
# A value that refers to a secret kept elsewhere is the right way to do it.
_REFERENCE = re.compile(r"^\s*(\$\{[^}]+\}|\$[A-Za-z_][A-Za-z0-9_]*|%[A-Za-z_]+%|\{\{[^}]+\}\})\s*$")
_PLACEHOLDER = re.compile(
    r"^(<[^>]*>|\[[^\]]*\]|x{3,}|\*+|\.{3}|your[-_ ].*|.*[-_ ]here|changeme|placeholder|todo|none|null|"
    r"true|false|-?\d{1,6})$",
    re.IGNORECASE,
)
_AUTH_HEADER_VALUE = re.compile(r"^\s*(bearer|basic|token|digest)\s+(\S+)", re.IGNORECASE)


def static_findings(entry: ServerEntry, *, run_stdio: bool) -> list[ScanFinding]:
    findings: list[ScanFinding] = []
    if entry.transport == "stdio" and entry.command is not None:
        for vetted in vet_command(entry.command, entry.args):
            findings.append(
                ScanFinding(
                    vetted.id, vetted.severity, vetted.title, vetted.detail, None, vetted.evidence, "command"
                )
            )
    findings.extend(_secret_findings(entry))
    if entry.transport == "http" and entry.url:
        findings.extend(_transport_findings(entry))
    if entry.transport == "stdio" and not run_stdio:
        findings.append(
            ScanFinding(
                LIVE_CHECKS_SKIPPED,
                "info",
                "Live checks skipped (stdio server not started)",
                "Starting a stdio server runs its code; pass --run-stdio to start it (in a scrubbed "
                "environment) and check its tools, prompts and instructions.",
                location="config",
            )
        )
    return findings


def _secret_findings(entry: ServerEntry) -> list[ScanFinding]:
    places: list[tuple[str, str, str]] = []  # (where, name, value)
    places += [("env", key, value) for key, value in entry.env]
    places += [("header", key, value) for key, value in entry.headers]
    args = list(entry.args)
    for index, arg in enumerate(args):
        flag, sep, value = arg.partition("=")
        if sep and flag.startswith("-"):
            places.append(("argument", flag, value))
        elif arg.startswith("-") and index + 1 < len(args) and not args[index + 1].startswith("-"):
            places.append(("argument", arg, args[index + 1]))
        else:
            places.append(("argument", f"#{index + 1}", arg))
    if entry.url:
        places.append(("url", "url", entry.url))
    findings: list[ScanFinding] = []
    seen: set[tuple[str, str]] = set()
    for where, name, value in places:
        reason = _secret_reason(where, name, value)
        if reason is None or (where, name) in seen:
            continue
        seen.add((where, name))
        label = f"{where} {name}" if not name.startswith("#") else f"argument {name}"
        findings.append(
            ScanFinding(
                PLAINTEXT_SECRET,
                "high",
                f"Credential in plain text ({label})",
                "A credential is written into the config file, where backups, sync tools, screen shares "
                "and other programs can read it. Reference it from the environment or a secret store "
                "(e.g. ${VAR}) instead, and rotate it.",
                evidence=f"{label}: {reason} ({len(value)} characters, value withheld)",
                location="config",
            )
        )
    return findings


def _secret_reason(where: str, name: str, value: str) -> str | None:
    if not value or _REFERENCE.match(value):
        return None
    if where == "url" or re.match(r"^[a-z][a-z0-9+.-]*://", value, re.IGNORECASE):
        reason = _url_secret(value)
        if reason:
            return reason
    kinds = credential_kinds(value)
    if kinds:
        return ", ".join(sorted(set(kinds)))
    if where == "header" and name.lower() in {"authorization", "proxy-authorization"}:
        match = _AUTH_HEADER_VALUE.match(value)
        credential = match.group(2) if match else value
        if not _REFERENCE.match(credential) and "${" not in credential and not _PLACEHOLDER.match(credential):
            return f"{match.group(1).lower() if match else 'literal'} credential"
        return None
    bare_name = name.lstrip("-")
    if (
        _SECRET_NAME.search(bare_name)
        and not _NOT_SECRET_NAME.search(bare_name)
        and "${" not in value
        and not _PLACEHOLDER.match(value.strip())
        and len(value.strip()) >= 8
        and not re.search(r"\s", value.strip())
    ):
        return f"value of a credential-named {where}"
    return None


def _url_secret(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.password and not _REFERENCE.match(parts.password) and "${" not in parts.password:
        return "password in URL"
    for key, value in parse_qsl(parts.query):
        if _SECRET_NAME.search(key) and value and "${" not in value and not _PLACEHOLDER.match(value):
            return f"credential in URL query parameter {key!r}"
    return None


def is_loopback_host(host: str) -> bool:
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _transport_findings(entry: ServerEntry) -> list[ScanFinding]:
    assert entry.url is not None
    try:
        parts = urlsplit(entry.url)
    except ValueError:
        return [ScanFinding("invalid-url", "medium", "The server URL cannot be parsed", evidence=entry.url)]
    host = parts.hostname or ""
    findings: list[ScanFinding] = []
    has_credentials = any(_carries_credentials(name) for name, _ in entry.headers) or bool(parts.password)
    if parts.scheme == "http" and not is_loopback_host(host):
        findings.append(
            ScanFinding(
                INSECURE_TRANSPORT,
                "high" if has_credentials else "medium",
                "Plain HTTP to a remote host",
                "Requests, results"
                + (" and the credentials sent with them" if has_credentials else "")
                + " cross the network unencrypted; anyone on the path can read or change tool "
                "definitions and results. Use https://.",
                evidence=f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else ""),
                location="config",
            )
        )
    if is_loopback_host(host) and not has_credentials and not entry.direct_url:
        findings.append(
            ScanFinding(
                UNAUTHENTICATED_LOCAL_HTTP,
                "medium",
                "Local HTTP server configured without credentials",
                "A server on localhost that needs no credentials can be driven by any web page the user "
                "opens (DNS rebinding, CVE-2025-66414/66416) and by every local process. Prefer stdio, "
                "or require a token and check Origin.",
                evidence=f"{parts.scheme}://{parts.netloc}",
                location="config",
            )
        )
    return findings


def _carries_credentials(header: str) -> bool:
    lowered = header.lower()
    return lowered in {"authorization", "cookie", "proxy-authorization"} or bool(_SECRET_NAME.search(lowered))


def redacted_argv(entry: ServerEntry) -> list[str]:
    """The entry's command line for display, with credential values replaced by <redacted>."""
    argv = [entry.command or ""]
    args = list(entry.args)
    hide_next = False
    for arg in args:
        if hide_next:
            argv.append("<redacted>")
            hide_next = False
            continue
        flag, sep, value = arg.partition("=")
        if sep and flag.startswith("-") and _secret_reason("argument", flag, value):
            argv.append(f"{flag}=<redacted>")
        elif (
            arg.startswith("-") and not sep and _SECRET_NAME.search(arg) and not _NOT_SECRET_NAME.search(arg)
        ):
            argv.append(arg)
            hide_next = True
        elif _secret_reason("argument", "#", arg):
            argv.append("<redacted>")
        else:
            argv.append(arg)
    return argv
