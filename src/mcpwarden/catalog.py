"""A read-only view of what the upstreams offer, for guards that judge tools by their definitions.

Guards see definitions as the upstream listed them (its own names, wire-shaped JSON), never the
live connections: they decide, the gateway talks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

_T = TypeVar("_T")


class CatalogView(Protocol):
    def tool(self, server_id: str, name: str) -> Mapping[str, Any] | None:
        """The tool's definition (wire JSON, the upstream's own name), or None if not listed."""

    def definition(self, server_id: str, kind: str, key: str) -> Mapping[str, Any] | None:
        """A listed prompt (by name), resource (by URI) or resource template (by URI template),
        as wire JSON in the upstream's own names, or None if not listed."""

    def instructions(self, server_id: str) -> str | None:
        """The server's instructions from its last handshake or discovery."""

    def server_ids(self) -> tuple[str, ...]: ...


class DefinitionMemo(Generic[_T]):
    """What a guard worked out from a listed definition, per (server, name). An entry is valid while
    the catalog hands out the same definition object: a re-listing replaces the objects, so a
    changed definition is never judged by its predecessor's verdict."""

    def __init__(self, limit: int = 50_000) -> None:
        self.limit = limit
        self._entries: dict[tuple[str, str], tuple[object, _T]] = {}

    def get(self, server_id: str, name: str, definition: object) -> _T | None:
        entry = self._entries.get((server_id, name))
        return entry[1] if entry is not None and entry[0] is definition else None

    def put(self, server_id: str, name: str, definition: object, value: _T) -> None:
        if len(self._entries) >= self.limit:
            self._entries.clear()
        self._entries[(server_id, name)] = (definition, value)
