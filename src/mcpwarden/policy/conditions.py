"""Argument conditions: pure predicates the policy evaluates before asking the engine.

Cedar cannot resolve paths, parse URLs or SQL, so these facts are computed here, in Python, and
handed to Cedar as the set of satisfied condition ids (`context.satisfied`). Every predicate is
conservative: anything it cannot parse with certainty fails the condition (THREATS T2, C2, C18, C21).

Paths (C18): containment is checked on the *resolved* path (symlinks followed, `..` removed), which
the caller computed with `policy.paths.resolve_path_arguments` (that is the one place with file
system I/O); here a root admits a path only if it equals the root or continues it after a path
separator, so `/private/tmp/allowed_dir` never admits `/private/tmp/allowed_dir_sensitive_credentials`.
Comparison is case-sensitive: on a case-insensitive file system a differently-cased spelling is
refused, never admitted.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from fnmatch import fnmatchcase
from urllib.parse import unquote, urlsplit

from mcpwarden.policy.sql import is_read_only_sql

_CONTROL = re.compile(r"[\x00-\x20\x7f\\]")  # controls, whitespace and backslashes: never in a safe URL
_LOCAL_PART = re.compile(r"^[A-Za-z0-9._%+-]{1,64}$")
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+$")
_HOSTNAME = re.compile(r"^[a-z0-9.-]{1,253}$|^\[[0-9a-f:.]+\]$")


def path_argument_values(value: object) -> list[str] | None:
    """The path strings an argument holds (a string or a list of strings), else None."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str) for item in value):
        return list(value)
    return None


def path_text(value: str) -> str | None:
    """The file-system path a path argument names: absolute, no NUL; `file://` URIs decoded."""
    if value.startswith("file://"):
        parts = urlsplit(value)
        if parts.netloc not in ("", "localhost") or parts.query or parts.fragment:
            return None
        value = unquote(parts.path)
    if "\x00" in value or not value.startswith("/"):
        return None  # relative paths depend on the server's working directory: refuse
    return value


def is_within(resolved: str, roots: Iterable[str]) -> bool:
    """Separator-aware containment of an already resolved absolute path in resolved roots."""
    path = posixpath.normpath(resolved)
    if path.startswith("//"):
        path = "/" + path.lstrip("/")
    for root in roots:
        root = posixpath.normpath(root)
        if root == "/" or path == root or path.startswith(root + "/"):
            return True
    return False


def paths_within(value: object, roots: tuple[str, ...], resolved: Mapping[str, str]) -> bool:
    values = path_argument_values(value)
    if values is None:
        return False
    for raw in values:
        real = resolved.get(raw)
        if real is None or not is_within(real, roots):
            return False
    return True


def url_host(url: str) -> str | None:
    """The lower-cased host of an absolute http(s) URL, or None if anything about it is doubtful."""
    if _CONTROL.search(url) or len(url) > 8192:
        return None
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not host:
        return None
    # Userinfo is where `https://allowed.com@evil.com/` hides its real host: refuse it altogether.
    if "@" in parts.netloc:
        return None
    host = host.rstrip(".")
    return host if _HOSTNAME.fullmatch(host) else None


def host_allowed(value: object, patterns: tuple[str, ...]) -> bool:
    urls = path_argument_values(value)
    if urls is None:
        return False
    for url in urls:
        host = url_host(url)
        if host is None or not any(fnmatchcase(host, pattern.lower().rstrip(".")) for pattern in patterns):
            return False
    return True


def recipient_addresses(value: object) -> list[str] | None:
    """Bare addresses from a string ("a@x, B <b@y>") or list of strings; None if any is doubtful."""
    items = path_argument_values(value)
    if items is None:
        return None
    addresses: list[str] = []
    for item in items:
        for part in re.split(r"[,;]", item):
            part = part.strip()
            if not part:
                continue
            match = re.fullmatch(r"[^<>\"()]*<([^<>]+)>", part)
            address = match.group(1).strip() if match else part
            local, at, domain = address.rpartition("@")
            if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
                return None
            addresses.append(f"{local}@{domain}".lower())
    return addresses or None


def recipients_allowed(value: object, patterns: tuple[str, ...]) -> bool:
    addresses = recipient_addresses(value)
    if addresses is None:
        return False
    return all(any(fnmatchcase(address, pattern.lower()) for pattern in patterns) for address in addresses)


def sql_read_only(value: object) -> bool:
    return isinstance(value, str) and is_read_only_sql(value)
