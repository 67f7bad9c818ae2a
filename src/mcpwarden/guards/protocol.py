"""Protocol validation of what the upstreams offer, before a client sees it.

Names that break the spec's tool-name rule (1-128 of A-Z a-z 0-9 _ . -) are withheld from listings:
they are how look-alike squatting (`read_file` spelt with a Cyrillic letter) and invisible characters get into
a model's context (THREATS C8, C13). A client can then never call them either, since the router
only accepts names of the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange
from mcpwarden.pipeline import BaseGuard
from mcpwarden.router import TOOL_NAME_PATTERN

logger = logging.getLogger(__name__)

# Listing methods and the key of their result that holds the named entries.
_LISTED = {"tools/list": "tools", "prompts/list": "prompts"}


class ProtocolGuard(BaseGuard):
    name = "protocol"

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> ProtocolGuard:
        return cls()

    async def check_response(self, exchange: Exchange) -> Decision:
        result = exchange.result
        listed = _LISTED.get(exchange.method)
        if listed is not None and isinstance(result, dict) and isinstance(result.get(listed), list):
            result[listed] = self._valid(result[listed], exchange)
        return ALLOW

    def _valid(self, items: list[Any], exchange: Exchange) -> list[Any]:
        def valid(item: Any) -> bool:
            name = item.get("name") if isinstance(item, dict) else None
            return isinstance(name, str) and TOOL_NAME_PATTERN.fullmatch(name) is not None

        kept = [item for item in items if valid(item)]
        if len(kept) != len(items):
            withheld = [
                repr(item.get("name") if isinstance(item, dict) else item)[:80]
                for item in items
                if not valid(item)
            ]
            exchange.metadata.setdefault("audit", {})["withheld_invalid_names"] = withheld
            logger.warning("withheld %d entries with invalid names: %s", len(withheld), ", ".join(withheld))
        return kept
