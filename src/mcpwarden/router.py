"""Names: how the tools, prompts, resources and tasks of many servers share one namespace.

Server `S`'s tool `search` is exposed as `S__search` (the separator is configurable) and its
resource `file:///a.txt` as `mcpwarden://S/file:///a.txt`, so two servers can never shadow each
other (THREATS C13) and every exposed name maps back to exactly one configured server. The mapping
is keyed by the configured server id, never by what a server says about itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from mcpwarden import reasons

RESOURCE_SCHEME = "mcpwarden://"
TOOL_NAME_PATTERN = re.compile(r"^[A-Za-z0-9._-]{1,128}$")

# Requests that address one server, and where in their params the addressed name lives.
_NAMED = {"tools/call": "name", "prompts/get": "name"}
_URI = {"resources/read": "uri", "resources/subscribe": "uri", "resources/unsubscribe": "uri"}
_TASKS = {"tasks/get", "tasks/result", "tasks/cancel", "tasks/update"}


class RoutingError(Exception):
    def __init__(self, reason: str, detail: str, **data: Any) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.data = data  # extra fields for the client's error.data (e.g. the unknown uri)


@dataclass(frozen=True, slots=True)
class Route:
    server: str | None
    target: str | None
    exposed_name: str | None
    arguments: dict[str, Any] | None


NO_ROUTE = Route(None, None, None, None)


class Router:
    def __init__(self, separator: str, server_ids: Collection[str]) -> None:
        self.separator = separator
        self.server_ids = frozenset(server_ids)

    def expose(self, server: str, name: str) -> str:
        return f"{server}{self.separator}{name}"

    def split(self, exposed: str) -> tuple[str, str] | None:
        server, sep, name = exposed.partition(self.separator)
        if not sep or not name or server not in self.server_ids:
            return None
        return server, name

    def expose_uri(self, server: str, uri: str) -> str:
        return f"{RESOURCE_SCHEME}{server}/{uri}"

    def split_uri(self, exposed: str) -> tuple[str, str] | None:
        if not exposed.startswith(RESOURCE_SCHEME):
            return None
        server, slash, uri = exposed[len(RESOURCE_SCHEME) :].partition("/")
        if not slash or not uri or server not in self.server_ids:
            return None
        return server, uri

    def route(self, method: str, params: Mapping[str, Any]) -> Route:
        """Which server and upstream name a request addresses; RoutingError when it names none."""
        if method in _NAMED:
            name = params.get("name")
            if not isinstance(name, str) or not TOOL_NAME_PATTERN.fullmatch(name):
                raise RoutingError(
                    reasons.INVALID_NAME, "the name must be 1-128 characters of A-Z a-z 0-9 _ . -"
                )
            arguments = params.get("arguments")
            if arguments is not None and not isinstance(arguments, dict):
                raise RoutingError(reasons.INVALID_REQUEST, "arguments must be an object")
            split = self.split(name)
            if split is None:
                kind = reasons.UNKNOWN_TOOL if method == "tools/call" else reasons.UNKNOWN_PROMPT
                raise RoutingError(kind, f"no server exposes {name!r}")
            return Route(split[0], split[1], name, arguments)
        if method in _URI:
            return self._route_uri(params.get(_URI[method]))
        if method == "completion/complete":
            ref = params.get("ref")
            if isinstance(ref, dict) and ref.get("type") == "ref/prompt":
                split = self.split(str(ref.get("name", "")))
                if split is None:
                    raise RoutingError(reasons.UNKNOWN_PROMPT, "no server exposes that prompt")
                return Route(split[0], split[1], str(ref["name"]), None)
            if isinstance(ref, dict) and ref.get("type") == "ref/resource":
                return self._route_uri(ref.get("uri"))
            raise RoutingError(reasons.INVALID_REQUEST, "completion needs a prompt or resource reference")
        if method in _TASKS:
            task_id = params.get("taskId")
            split = self.split(task_id) if isinstance(task_id, str) else None
            if split is None:  # a task id no server of ours could have given out: unknown (-32602)
                raise RoutingError(reasons.UNKNOWN_TASK, "unknown task id")
            return Route(split[0], split[1], task_id, None)
        return NO_ROUTE

    def _route_uri(self, uri: object) -> Route:
        if not isinstance(uri, str):
            raise RoutingError(reasons.INVALID_REQUEST, "uri must be a string")
        split = self.split_uri(uri)
        if split is None:
            raise RoutingError(reasons.UNKNOWN_RESOURCE, "Resource not found", uri=uri)
        return Route(split[0], split[1], uri, None)
