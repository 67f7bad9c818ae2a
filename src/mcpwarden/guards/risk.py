"""Risk tiers on the exchange: early in the chain, so the policy and the approval guard can use them.

For every `tools/call` this guard classifies the called tool (`mcpwarden.risk.classify`, from the
definition the upstream listed — via the gateway's read-only catalog view — and the `risk` config)
and writes the result where later guards read it:

- `exchange.metadata["risk_tier"]`: "low" | "medium" | "high" | "critical"
- `exchange.metadata["risk"]`: the full assessment (tier, categories, reasons, override)

and the tier into the audit event's extra. It never refuses anything itself.
"""

from __future__ import annotations

from typing import Any

from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange
from mcpwarden.pipeline import BaseGuard
from mcpwarden.risk import RiskAssessment, classify

RISK_TIER_KEY = "risk_tier"
RISK_KEY = "risk"


class RiskGuard(BaseGuard):
    name = "risk"

    def __init__(self, settings: Settings, catalog: CatalogView | None = None) -> None:
        self.settings = settings
        self.catalog = catalog

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> RiskGuard:
        return cls(settings, catalog)

    def assess(self, exchange: Exchange) -> RiskAssessment | None:
        if exchange.method != "tools/call" or exchange.server is None or exchange.target is None:
            return None
        definition: Any = None
        if self.catalog is not None:
            definition = self.catalog.tool(exchange.server, exchange.target)
        return classify(
            exchange.server, exchange.target, definition, self.settings.risk, self.settings.gateway.separator
        )

    async def check_request(self, exchange: Exchange) -> Decision:
        assessment = self.assess(exchange)
        if assessment is not None:
            exchange.metadata[RISK_TIER_KEY] = assessment.tier
            exchange.metadata[RISK_KEY] = assessment.to_dict()
            exchange.metadata.setdefault("audit", {})[RISK_TIER_KEY] = assessment.tier
        return ALLOW
