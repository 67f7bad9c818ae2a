"""Authorization: who may see and use which tool, prompt and resource, down to the arguments.

The thin enforcement point in front of `mcpwarden.policy`: it turns an exchange into a
PolicyRequest (after resolving the path arguments the policy checks: the only I/O), asks the pure
decision function, and acts on the answer. Requests that use something (tools/call, prompts/get,
resources/read and subscribe, completion on a prompt or resource) are refused with
`tool-not-permitted`; listings (tools/list, prompts/list, resources/list, resources/templates/list)
lose every entry the caller could not use, with the same function, so listing and calling never
disagree. In dry-run mode nothing is refused: what would have been is logged and audited
(`policy_dry_run_denied`, `policy_dry_run_hidden`).

Without a `policy` key the local stdio user may do everything and HTTP callers nothing
(CONTRACT: "HTTP callers get nothing that is not allowed here").
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Literal

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, deny
from mcpwarden.guards.risk import RISK_TIER_KEY
from mcpwarden.pipeline import BaseGuard
from mcpwarden.policy import model
from mcpwarden.policy.compiler import compile_policy
from mcpwarden.policy.engine import PolicyEngine
from mcpwarden.policy.model import PolicyDecision, PolicyRequest, PrincipalFacts, ResourceRef
from mcpwarden.policy.paths import resolve_path, with_resolved_paths
from mcpwarden.risk import classify
from mcpwarden.router import RESOURCE_SCHEME

logger = logging.getLogger(__name__)

Kind = Literal["tool", "prompt", "resource"]
# Listing method -> (result key, name key, list action, kind)
_LISTINGS: dict[str, tuple[str, str, str, Kind]] = {
    "tools/list": ("tools", "name", model.LIST_TOOLS, "tool"),
    "prompts/list": ("prompts", "name", model.LIST_PROMPTS, "prompt"),
    "resources/list": ("resources", "uri", model.LIST_RESOURCES, "resource"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate", model.LIST_RESOURCES, "resource"),
}
_USES: dict[str, tuple[str, Kind]] = {
    "tools/call": (model.CALL_TOOL, "tool"),
    "prompts/get": (model.GET_PROMPT, "prompt"),
    "resources/read": (model.READ_RESOURCE, "resource"),
    "resources/subscribe": (model.READ_RESOURCE, "resource"),
    "resources/unsubscribe": (model.READ_RESOURCE, "resource"),
}


def principal_facts(identity: Identity) -> PrincipalFacts:
    return PrincipalFacts(
        identity.name, identity.roles, identity.scopes, identity.method, identity.attributes
    )


class PolicyGuard(BaseGuard):
    name = "policy"

    def __init__(
        self,
        engine: PolicyEngine,
        separator: str = "__",
        realpath: Callable[[str], str] = resolve_path,
        tier_of: Callable[[str, str], str | None] | None = None,
    ) -> None:
        self.engine = engine
        self.separator = separator
        self.realpath = realpath
        self.tier_of = tier_of  # (server, upstream tool name) -> risk tier, for listings
        self.dry_run = engine.mode == "dry-run"

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> PolicyGuard:
        base_dir = settings.source.parent if settings.source is not None else None
        separator = settings.gateway.separator

        def tier_of(server: str, name: str) -> str | None:
            # The risk guard's own classification, so a listing sees the tier a call will see.
            definition = catalog.tool(server, name) if catalog is not None else None
            return classify(server, name, definition, settings.risk, separator).tier

        return cls(PolicyEngine(compile_policy(settings.policy, base_dir)), separator, tier_of=tier_of)

    def _server_of(self, name: str, kind: Kind) -> str:
        if kind == "resource" and name.startswith(RESOURCE_SCHEME):
            return name[len(RESOURCE_SCHEME) :].partition("/")[0]
        return name.partition(self.separator)[0]

    def decide(
        self,
        exchange: Exchange,
        action: str,
        kind: Kind,
        name: str,
        arguments: dict[str, Any] | None,
        risk: str | None = None,
    ) -> PolicyDecision:
        request = PolicyRequest(
            principal=principal_facts(exchange.identity),
            action=action,
            resource=ResourceRef(self._server_of(name, kind), name, kind, risk),
            arguments=arguments,
            transport=exchange.transport,
        )
        return self.engine.decide(with_resolved_paths(self.engine, request, self.realpath))

    async def check_request(self, exchange: Exchange) -> Decision:
        use = _USES.get(exchange.method)
        arguments = exchange.arguments
        if use is None and exchange.method == "completion/complete":
            ref = exchange.params.get("ref")
            kind_of_ref = ref.get("type") if isinstance(ref, dict) else None
            use = (
                (model.GET_PROMPT, "prompt")
                if kind_of_ref == "ref/prompt"
                else (model.READ_RESOURCE, "resource")
            )
        if use is None or exchange.exposed_name is None:
            return ALLOW
        action, kind = use
        if kind == "resource":
            # A resource has no arguments; its upstream URI can be checked as `uri` (e.g. file://).
            arguments = {"uri": exchange.target} if exchange.target is not None else None
        tier = exchange.metadata.get(RISK_TIER_KEY) if kind == "tool" else None
        risk = tier if isinstance(tier, str) else None
        decision = self.decide(exchange, action, kind, exchange.exposed_name, arguments, risk)
        audit = exchange.metadata.setdefault("audit", {})
        if decision.allowed:
            audit["policy_rules"] = list(decision.rules)
            return ALLOW
        summary = {"code": decision.code, "rules": list(decision.rules), "detail": decision.message}
        if self.dry_run:
            audit["policy_dry_run_denied"] = summary
            logger.warning(
                "policy dry-run: would deny %s to %s [%s]: %s",
                exchange.exposed_name,
                exchange.principal,
                exchange.correlation_id,
                decision.code,
            )
            return ALLOW
        audit["policy"] = summary
        data: dict[str, Any] = {"policy_reason": decision.code}
        if decision.required_scopes:
            data["required_scopes"] = list(decision.required_scopes)
        if decision.argument is not None:
            data["argument"] = decision.argument
        return deny(reasons.TOOL_NOT_PERMITTED, decision.message, **data)

    def _tier(self, kind: Kind, name: str) -> str | None:
        if kind != "tool" or self.tier_of is None:
            return None
        server, sep, upstream_name = name.partition(self.separator)
        return self.tier_of(server, upstream_name) if sep else None

    async def check_response(self, exchange: Exchange) -> Decision:
        listing = _LISTINGS.get(exchange.method)
        result = exchange.result
        if listing is None or not isinstance(result, dict):
            return ALLOW
        key, name_key, action, kind = listing
        items = result.get(key)
        if not isinstance(items, list):
            return ALLOW
        kept: list[Any] = []
        hidden: list[str] = []
        for item in items:
            name = item.get(name_key) if isinstance(item, dict) else None
            if (
                isinstance(name, str)
                and self.decide(exchange, action, kind, name, None, self._tier(kind, name)).allowed
            ):
                kept.append(item)
            else:
                hidden.append(str(name)[:128])
        if hidden:
            audit = exchange.metadata.setdefault("audit", {})
            if self.dry_run:
                audit["policy_dry_run_hidden"] = hidden
                logger.warning(
                    "policy dry-run: would hide %d entries from %s", len(hidden), exchange.principal
                )
                return ALLOW
            audit["policy_hidden"] = len(hidden)
            result[key] = kept
        return ALLOW
