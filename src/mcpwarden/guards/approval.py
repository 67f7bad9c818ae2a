"""Human approval of risky calls: hold, then allow once after a human said yes.

A `tools/call` needs approval when a rule in `approvals.rules` says so (first match by principal and
tool), else when its tier (from the risk guard, `metadata["risk_tier"]`) is in
`risk.approval_tiers`, or when the flow guard asked for it (`metadata["approval_reasons"]`).
Such a call is matched against `state_dir/approvals.db` by (principal, exposed tool, SHA-256 of the
canonical arguments):

- an approved, unexpired, unused approval -> consumed atomically (single use) and ALLOW;
- a denied one (within its lifetime) -> `approval-denied`;
- an open pending one -> held again with the same approval id (no new prompt is counted);
- none -> a new pending approval and HOLD (`approval-required`, `approval_id`, `prompt`), unless
  the principal already caused `max_prompts_per_minute` new approvals in the last minute (T10:
  a flood of holds becomes `rate-limited` denials instead of a flood of prompts).

The pipeline turns a HOLD into an elicitation when the client can answer one and calls `resolve`
with the human's answer (a decline or timeout is a no); otherwise the client gets the hold as an
error carrying the approval id, for `mcpwarden approvals approve ID`. Every step is recorded in the
audit event (`metadata["audit"]["approval"]`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from mcpwarden import reasons
from mcpwarden.approvals.prompt import redacted_arguments, render_prompt
from mcpwarden.approvals.store import ApprovalStore, new_approval_id
from mcpwarden.audit.events import digest_arguments
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, deny, hold
from mcpwarden.pipeline import BaseGuard
from mcpwarden.risk import classify, glob_matches

logger = logging.getLogger(__name__)

APPROVAL_REASONS_KEY = "approval_reasons"  # other guards (flow) append reasons to hold a call here
RATE_WINDOW = 60.0


def call_digest(exchange: Exchange) -> str:
    digest = digest_arguments(exchange.arguments or {})
    assert digest is not None
    return digest


def principal_matches(pattern: str, identity: Identity) -> bool:
    if pattern.startswith("role:"):
        return any(glob_matches(pattern[5:], role) for role in identity.roles)
    return glob_matches(pattern, identity.name)


class ApprovalGuard(BaseGuard):
    name = "approval"

    def __init__(
        self,
        settings: Settings,
        store: ApprovalStore,
        catalog: CatalogView | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.catalog = catalog
        self.clock = clock

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> ApprovalGuard:
        return cls(settings, ApprovalStore.for_state_dir(settings.state_dir), catalog)

    def reasons_for(self, exchange: Exchange) -> list[str]:
        """Why this call needs a human; [] when it does not."""
        wanted: list[str] = list(exchange.metadata.get(APPROVAL_REASONS_KEY, ()))
        tool = exchange.exposed_name or ""
        for rule in self.settings.approvals.rules:
            if principal_matches(rule.principal, exchange.identity) and glob_matches(rule.tool, tool):
                if rule.require:
                    wanted.insert(0, f"approvals.rules: {rule.principal} / {rule.tool} always needs approval")
                return wanted
        risk = exchange.metadata.get("risk")
        tier = exchange.metadata.get("risk_tier")
        if tier is None and exchange.server is not None and exchange.target is not None:
            definition = self.catalog.tool(exchange.server, exchange.target) if self.catalog else None
            assessment = classify(
                exchange.server,
                exchange.target,
                definition,
                self.settings.risk,
                self.settings.gateway.separator,
            )
            tier, risk = assessment.tier, assessment.to_dict()
        if tier in self.settings.risk.approval_tiers:
            why = list(risk.get("reasons", ())) if isinstance(risk, dict) else []
            wanted[:0] = [f"risk tier {tier} needs approval", *why]
        return wanted

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.method != "tools/call" or exchange.exposed_name is None:
            return ALLOW
        why = self.reasons_for(exchange)
        if not why:
            return ALLOW
        audit = exchange.metadata.setdefault("audit", {})
        now = self.clock()
        principal, tool, digest = exchange.principal, exchange.exposed_name, call_digest(exchange)
        found = self.store.find("call", principal, tool, digest, now)
        if found is not None and found.status == "approved":
            if self.store.consume(found.id, now):
                audit["approval"] = {"id": found.id, "step": "consumed", "decided_by": found.decided_by}
                return ALLOW
            found = None  # used up by a concurrent identical call: this one needs its own
        if found is not None and found.status == "denied":
            audit["approval"] = {"id": found.id, "step": "denied", "decided_by": found.decided_by}
            return deny(
                reasons.APPROVAL_DENIED,
                f"a human denied this call to {tool} (approval {found.id})",
                approval_id=found.id,
            )
        tier = exchange.metadata.get("risk_tier")
        if found is not None:
            approval_id = found.id
            audit["approval"] = {"id": approval_id, "step": "still-pending"}
        else:
            if (
                self.store.created_since(principal, now - RATE_WINDOW)
                >= self.settings.approvals.max_prompts_per_minute
            ):
                audit["approval"] = {"step": "rate-limited"}
                return deny(
                    reasons.RATE_LIMITED,
                    "too many calls waiting for approval in the last minute; try again later",
                    retry_after=RATE_WINDOW,
                )
            approval_id = new_approval_id()
            stored_arguments = redacted_arguments(exchange.arguments)
            self.store.create(
                kind="call",
                principal=principal,
                server=exchange.server,
                tool=tool,
                digest=digest,
                arguments=stored_arguments,
                prompt=render_prompt(
                    server=exchange.server,
                    tool=tool,
                    arguments=stored_arguments,
                    tier=tier,
                    reasons=why,
                    approval_id=approval_id,
                ),
                tier=tier if isinstance(tier, str) else None,
                reasons=tuple(why),
                timeout=self.settings.approvals.timeout,
                approval_id=approval_id,
                now=now,
            )
            audit["approval"] = {"id": approval_id, "step": "requested", "reasons": why[:5]}
        prompt = render_prompt(
            server=exchange.server,
            tool=tool,
            arguments=exchange.arguments,
            tier=tier if isinstance(tier, str) else None,
            reasons=why,
            approval_id=approval_id,
        )
        return hold(
            reasons.APPROVAL_REQUIRED,
            f"this call to {tool} needs a human's approval: run `mcpwarden approvals approve {approval_id}`, "
            "then repeat the same call",
            approval_id=approval_id,
            prompt=prompt,
        )

    async def resolve(self, approval_id: str, approved: bool, decided_by: str) -> None:
        """Record a human's answer (the pipeline calls this after asking through the client)."""
        decided = self.store.decide(approval_id, approved, decided_by, self.settings.approvals.lifetime)
        logger.info(
            "approval %s %s by %s",
            approval_id,
            ("approved" if approved else "denied") if decided is not None else "not pending (ignored)",
            decided_by,
        )
