"""The one impure step before a decision: resolving path arguments on this machine's file system.

`PolicyEngine.decide` must not touch the file system, yet C18 (CVE-2025-53109) is a symlink inside
an allowed root pointing at `/etc/sudoers`: only `realpath` sees that. So the caller (the policy
guard, `mcpwarden policy test/explain`) resolves exactly the path arguments the policy will check,
here, and passes the results in `PolicyRequest.resolved_paths`; tests inject `realpath`.

What this does not cover: a path the upstream resolves elsewhere (an HTTP upstream on another
host, a container with other mounts), and a symlink swapped in between this check and the
upstream's open (TOCTOU). The upstream must still confine itself; this is the gateway's layer.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from mcpwarden.policy.conditions import path_argument_values, path_text
from mcpwarden.policy.engine import PolicyEngine
from mcpwarden.policy.model import LIST_ACTIONS, PolicyRequest

MAX_PATHS = 256


def resolve_path(path: str) -> str:
    """`os.path.realpath`, refusing (OSError) a result that still contains a symlink.

    realpath gives up silently on a symlink loop and leaves the link in the result, which would
    then look contained; every existing ancestor of a fully resolved path is a real entry.
    """
    real = os.path.realpath(path)
    probe = real
    while True:
        if os.path.islink(probe):
            raise OSError(f"could not resolve the symlink {probe}")
        parent = os.path.dirname(probe)
        if parent == probe:
            return real
        probe = parent


def resolve_path_arguments(
    engine: PolicyEngine,
    name: str,
    arguments: Mapping[str, Any] | None,
    realpath: Callable[[str], str] = resolve_path,
) -> dict[str, str]:
    """{value as given: resolved absolute path} for the path arguments the policy checks on `name`.

    Values that are not absolute paths (or `file://` URIs), or that cannot be resolved, are left
    out, so they fail their condition.
    """
    resolved: dict[str, str] = {}
    if not arguments:
        return resolved
    for argument in engine.path_arguments(name):
        for raw in (path_argument_values(arguments.get(argument)) or [])[:MAX_PATHS]:
            text = path_text(raw)
            if text is None or raw in resolved:
                continue
            try:
                resolved[raw] = realpath(text)
            except (OSError, ValueError):
                continue
    return resolved


def with_resolved_paths(
    engine: PolicyEngine, request: PolicyRequest, realpath: Callable[[str], str] = resolve_path
) -> PolicyRequest:
    if request.action in LIST_ACTIONS:
        return request
    paths = resolve_path_arguments(engine, request.resource.name, request.arguments, realpath)
    return replace(request, resolved_paths=paths) if paths else request
