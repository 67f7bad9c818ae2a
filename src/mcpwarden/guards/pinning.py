"""Rug-pull protection: tool, prompt and resource definitions and server instructions are pinned
on first use.

Re-checked at every listing (after any upstream re-list, list-changed or restart, the gateway's
catalog holds the new definitions and the next listing shows them) and at every `tools/call`,
`prompts/get` and `resources/read`, against `state_dir/pins.db` (`pinning/store.py`), keyed by the
configured server id. Prompts, resources and resource templates follow the same rules as tools
below, each kind with its own first listing (a prompt's text reaches the model as surely as a
tool's description does):

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
from mcpwarden.pinning.diff import (
    URI_KINDS,
    DefinitionKind,
    definition_of,
    exposed_label,
    instructions_definition,
)
from mcpwarden.pinning.store import Observation, PinStore
from mcpwarden.pipeline import BaseGuard
from mcpwarden.router import Router

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
        self.router = Router(separator, server_ids)
        # (server, kind, name) -> (definition object, instructions) last found approved.
        self._verified: dict[tuple[str, str, str], tuple[object, str | None]] = {}

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
        kind = _CALLS.get(exchange.method)
        if kind is None or exchange.server is None or exchange.target is None:
            return ALLOW
        server, name = exchange.server, exchange.target
        definition = self._definition(server, kind, name)
        if self.catalog is not None and definition is None:
            return ALLOW  # not listed (or not connected yet): the gateway refuses it as unknown
        instructions = self.catalog.instructions(server) if self.catalog is not None else None
        verified = self._verified.get((server, kind, name))
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
                server, kind, name, definition_of(kind, definition), trust_new=self._trust_new(server, kind)
            )
        else:
            state = "pending" if self.store.has_pending(server, kind, name) else "ok"
        if state == "pending":
            return self._refuse(
                exchange,
                f"the definition of {exchange.exposed_name} changed (or it is new) since it was approved",
                exposed_label(server, kind, name, self.separator),
            )
        if state == "pinned":
            exchange.metadata.setdefault("audit", {})["pinned"] = [exchange.exposed_name]
        if definition is not None:
            self._verified[(server, kind, name)] = (definition, instructions)
        return ALLOW

    def _definition(self, server: str, kind: DefinitionKind, name: str) -> Mapping[str, Any] | None:
        if self.catalog is None:
            return None
        return (
            self.catalog.tool(server, name) if kind == "tool" else self.catalog.definition(server, kind, name)
        )

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
        listing = _LISTINGS.get(exchange.method)
        if listing is None or not isinstance(result, dict):
            return ALLOW
        field, kind, key = listing
        entries = result.get(field)
        if not isinstance(entries, list):
            return ALLOW
        by_server: dict[str, list[tuple[str, Mapping[str, Any]]]] = {}
        for entry in entries:
            split = self._split(kind, entry.get(key)) if isinstance(entry, dict) else None
            if split is not None:
                by_server.setdefault(split[0], []).append((split[1], entry))
        allowed: set[int] = set()
        withheld: list[str] = []
        pinned: list[str] = []
        for server, named in by_server.items():
            seen = self.store.server_seen(server, kind)
            trust = self.trust_new_tools or not seen
            server_held = self._instructions(server) == "pending"
            for name, entry in named:
                state: Observation = self.store.observe(
                    server, kind, name, definition_of(kind, entry), trust_new=trust
                )
                exposed = exposed_label(server, kind, name, self.separator)
                if state == "pending" or server_held:
                    withheld.append(exposed)
                    continue
                if state == "pinned":
                    pinned.append(exposed)
                allowed.add(id(entry))
            if not seen:
                self.store.mark_seen(server, kind)
        kept = [
            entry
            for entry in entries
            if id(entry) in allowed or (isinstance(entry, dict) and self._split(kind, entry.get(key)) is None)
        ]
        if withheld:
            logger.warning(
                "withheld %d changed or new %ss until reviewed: %s", len(withheld), kind, ", ".join(withheld)
            )
            exchange.metadata.setdefault("audit", {})[f"withheld_changed_{kind}s"] = withheld[:50]
        if pinned:
            exchange.metadata.setdefault("audit", {})["pinned"] = pinned[:50]
        result[field] = kept
        return ALLOW

    # -- helpers -------------------------------------------------------------------------------

    def _trust_new(self, server: str, kind: DefinitionKind) -> bool:
        return self.trust_new_tools or not self.store.server_seen(server, kind)

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

    def _split(self, kind: DefinitionKind, exposed: object) -> tuple[str, str] | None:
        if not isinstance(exposed, str):
            return None
        return self.router.split_uri(exposed) if kind in URI_KINDS else self.router.split(exposed)


# What each listing carries: (result field, pinned kind, the field naming an entry).
_LISTINGS: dict[str, tuple[str, DefinitionKind, str]] = {
    "tools/list": ("tools", "tool", "name"),
    "prompts/list": ("prompts", "prompt", "name"),
    "resources/list": ("resources", "resource", "uri"),
    "resources/templates/list": ("resourceTemplates", "template", "uriTemplate"),
}
_CALLS: dict[str, DefinitionKind] = {
    "tools/call": "tool",
    "prompts/get": "prompt",
    "resources/read": "resource",
}
