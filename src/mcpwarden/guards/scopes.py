"""Per-tool OAuth scopes inside the pipeline (THREATS A11, D14).

The HTTP front already answers 403 `insufficient_scope` for a `tools/call` whose tool needs a
scope the caller's JWT lacks (`mcpwarden.auth.http`); this guard applies the same rules to
every exchange, so no path around the front (another transport, a bridged era) skips them:

- `tools/call` for such a tool is denied with reason `insufficient-scope` and `data.scope`
  naming exactly the scopes that tool needs (not the whole catalogue), so a client can step up;
- `tools/list` leaves such tools out, so listing and calling never disagree.

API-key and stdio callers are governed by policy instead (see `mcpwarden.auth.scopes`).
"""

from __future__ import annotations

import logging
from typing import Any

from mcpwarden import reasons
from mcpwarden.auth.scopes import ToolScopes
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pipeline import BaseGuard

logger = logging.getLogger(__name__)


class ScopeGuard(BaseGuard):
    name = "scopes"

    def __init__(self, rules: ToolScopes) -> None:
        self.rules = rules

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> ScopeGuard | None:
        rules = ToolScopes.from_settings(settings)
        return cls(rules) if rules is not None else None

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.method != "tools/call" or exchange.exposed_name is None:
            return ALLOW
        needed = " ".join(self.rules.required(exchange.exposed_name))
        if not needed:
            return ALLOW
        if not self.rules.missing(exchange.identity, exchange.exposed_name):
            if exchange.identity.method == "jwt":
                # A call that needed a scope beyond the baseline is an elevation: on the record (A11).
                exchange.metadata.setdefault("audit", {})["scopes_used"] = needed
            return ALLOW
        exchange.metadata.setdefault("audit", {})["scope_needed"] = needed
        return deny(
            reasons.INSUFFICIENT_SCOPE,
            f"calling {exchange.exposed_name} needs scope {needed}",
            scope=needed,
        )

    async def check_response(self, exchange: Exchange) -> Decision:
        result = exchange.result
        listing = exchange.method == "tools/list" and isinstance(result, dict)
        if listing and isinstance(result.get("tools"), list):
            result["tools"] = [tool for tool in result["tools"] if self._visible(tool, exchange)]
        return ALLOW

    def _visible(self, tool: Any, exchange: Exchange) -> bool:
        name = tool.get("name") if isinstance(tool, dict) else None
        return not isinstance(name, str) or not self.rules.missing(exchange.identity, name)
