"""A read-only view of what the upstreams offer, for guards that judge tools by their definitions.

Guards see definitions as the upstream listed them (its own names, wire-shaped JSON), never the
live connections: they decide, the gateway talks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol


class CatalogView(Protocol):
    def tool(self, server_id: str, name: str) -> Mapping[str, Any] | None:
        """The tool's definition (wire JSON, the upstream's own name), or None if not listed."""

    def definition(self, server_id: str, kind: str, key: str) -> Mapping[str, Any] | None:
        """A listed prompt (by name), resource (by URI) or resource template (by URI template),
        as wire JSON in the upstream's own names, or None if not listed."""

    def instructions(self, server_id: str) -> str | None:
        """The server's instructions from its last handshake or discovery."""

    def server_ids(self) -> tuple[str, ...]: ...
