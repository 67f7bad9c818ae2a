"""Rug-pull protection: tool definitions and server instructions are pinned on first use.

Re-checked at every `tools/list` (after any upstream re-list, list-changed or restart, the
gateway's catalog holds the new definitions and the next listing shows them) and at every
`tools/call`, against `state_dir/pins.db` (`pinning/store.py`), keyed by the configured server id:

- the first listing of a server pins its instructions and every tool it offers (trust on first
  use); a call before any listing pins that tool and the instructions;
- a changed tool, or a tool that is new since then (`pinning.new_tools: review`), is withheld from
  listings and its calls are denied with `tool-definition-changed`, until `mcpwarden pins approve
  SERVER__TOOL` (or `SERVER`); every other tool of the server keeps working;
- changed instructions withhold the whole server (they reach the model before any tool is used);
- a removed tool needs nothing (it cannot be called: the gateway only routes to listed tools).

Definitions come from the gateway's catalog view (what the upstream listed, in its own names); a
listing result is judged by the definitions it carries. The comparison is over canonical JSON, so
key order and whitespace never count as a change (THREATS C3, C4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pinning.diff import instructions_definition, tool_definition
from mcpwarden.pinning.store import Observation, PinStore
from mcpwarden.pipeline import BaseGuard

logger = logging.getLogger(__name__)


class PinningGuard(BaseGuard):
    name = "pinning"

    def __init__(
        self,
        store: PinStore,
        catalog: CatalogView | None,
        server_ids: frozenset[str],
        separator: str = "__",
        trust_new_tools: bool = False,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.server_ids = server_ids
        self.separator = separator
        self.trust_new_tools = trust_new_tools
        # (server, tool) -> (definition object, instructions) last found approved.
        self._verified: dict[tuple[str, str], tuple[object, str | None]] = {}

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> PinningGuard | None:
        if not settings.pinning.enabled:
            return None
        return cls(
            PinStore.for_state_dir(settings.state_dir),
            catalog,
            frozenset(settings.servers),
            settings.gateway.separator,
            settings.pinning.new_tools == "trust",
        )

    # -- calls ---------------------------------------------------------------------------------

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.method != "tools/call" or exchange.server is None or exchange.target is None:
            return ALLOW
        server, tool = exchange.server, exchange.target
        definition = self.catalog.tool(server, tool) if self.catalog is not None else None
        if self.catalog is not None and definition is None:
            return ALLOW  # not listed (or not connected yet): the gateway refuses it as unknown
        instructions = self.catalog.instructions(server) if self.catalog is not None else None
        verified = self._verified.get((server, tool))
        if verified is not None and verified[0] is definition and verified[1] == instructions:
            # Unchanged since it was last found approved (approval only ever moves pending to ok,
            # and a changed definition arrives as a new object): no store round trip per call.
            return ALLOW
        if self._instructions(server) == "pending":
            return self._refuse(
                exchange, f"the instructions of server {server!r} changed since they were approved", server
            )
        if definition is not None:
            state = self.store.observe(
                server, "tool", tool, tool_definition(definition), trust_new=self._trust_new(server)
            )
        else:
            state = "pending" if self.store.has_pending(server, "tool", tool) else "ok"
        if state == "pending":
            return self._refuse(
                exchange,
                f"the definition of {exchange.exposed_name} changed (or it is new) since it was approved",
                f"{server}{self.separator}{tool}",
            )
        if state == "pinned":
            exchange.metadata.setdefault("audit", {})["pinned"] = [exchange.exposed_name]
        if definition is not None:
            self._verified[(server, tool)] = (definition, instructions)
        return ALLOW

    def _refuse(self, exchange: Exchange, what: str, approve_target: str) -> Decision:
        exchange.metadata.setdefault("audit", {})["pin_changed"] = approve_target
        return deny(
            reasons.TOOL_DEFINITION_CHANGED,
            f"{what}; review it with `mcpwarden pins list` and accept it with "
            f"`mcpwarden pins approve {approve_target}`",
            server=exchange.server,
        )

    # -- listings ------------------------------------------------------------------------------

    async def check_response(self, exchange: Exchange) -> Decision:
        result = exchange.result
        if exchange.method != "tools/list" or not isinstance(result, dict):
            return ALLOW
        tools = result.get("tools")
        if not isinstance(tools, list):
            return ALLOW
        by_server: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for entry in tools:
            split = self._split(entry.get("name")) if isinstance(entry, dict) else None
            if split is not None:
                by_server.setdefault(split[0], []).append((split[1], entry))
        allowed: set[int] = set()
        withheld: list[str] = []
        pinned: list[str] = []
        for server, entries in by_server.items():
            seen = self.store.server_seen(server)
            trust = self.trust_new_tools or not seen
            server_held = self._instructions(server) == "pending"
            for name, entry in entries:
                state: Observation = self.store.observe(
                    server, "tool", name, tool_definition(entry), trust_new=trust
                )
                exposed = f"{server}{self.separator}{name}"
                if state == "pending" or server_held:
                    withheld.append(exposed)
                    continue
                if state == "pinned":
                    pinned.append(exposed)
                allowed.add(id(entry))
            if not seen:
                self.store.mark_seen(server)
        kept = [
            entry
            for entry in tools
            if id(entry) in allowed or (isinstance(entry, dict) and self._split(entry.get("name")) is None)
        ]
        if withheld:
            logger.warning(
                "withheld %d changed or new tools until reviewed: %s", len(withheld), ", ".join(withheld)
            )
            exchange.metadata.setdefault("audit", {})["withheld_changed_tools"] = withheld[:50]
        if pinned:
            exchange.metadata.setdefault("audit", {})["pinned"] = pinned[:50]
        result["tools"] = kept
        return ALLOW

    # -- helpers -------------------------------------------------------------------------------

    def _trust_new(self, server: str) -> bool:
        return self.trust_new_tools or not self.store.server_seen(server)

    def _instructions(self, server: str) -> Observation:
        if self.catalog is None:
            return "pending" if self.store.has_pending(server, "instructions", "") else "ok"
        # Instructions are always pinned at first sight, whatever `new_tools` says.
        return self.store.observe(
            server,
            "instructions",
            "",
            instructions_definition(self.catalog.instructions(server)),
            trust_new=True,
        )

    def _split(self, name: object) -> tuple[str, str] | None:
        if not isinstance(name, str):
            return None
        server, sep, tool = name.partition(self.separator)
        if not sep or not tool or server not in self.server_ids:
            return None
        return server, tool
