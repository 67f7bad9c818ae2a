"""The guard chain: which guards run, in which order, built from the settings.

Built-in guards register here exactly as a third-party guard would: a factory that takes the
settings and a read-only view of the upstreams' catalogs, and returns a guard, or None when the
settings switch it off. Order matters: cheap robustness checks first, so a flood is refused before
anything expensive runs.
"""

from __future__ import annotations

from collections.abc import Callable

from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.guards.approval import ApprovalGuard
from mcpwarden.guards.concurrency import ConcurrencyGuard
from mcpwarden.guards.content import ContentGuard
from mcpwarden.guards.flow import FlowGuard
from mcpwarden.guards.pinning import PinningGuard
from mcpwarden.guards.policy import PolicyGuard
from mcpwarden.guards.protocol import ProtocolGuard
from mcpwarden.guards.quota import QuotaGuard
from mcpwarden.guards.risk import RiskGuard
from mcpwarden.guards.scopes import ScopeGuard
from mcpwarden.guards.size import SizeGuard
from mcpwarden.guards.tasks import TaskOwnershipGuard
from mcpwarden.pipeline import Guard

GuardFactory = Callable[[Settings, CatalogView], Guard | None]

BUILTIN_GUARDS: tuple[GuardFactory, ...] = (
    ConcurrencyGuard.from_settings,
    ScopeGuard.from_settings,
    SizeGuard.from_settings,
    QuotaGuard.from_settings,
    ProtocolGuard.from_settings,
    # Early in the chain, so on the way back it runs late: it cleans what the client finally gets,
    # and scans only the listings the policy left.
    ContentGuard.from_settings,
    RiskGuard.from_settings,  # early: later guards (policy, approval) read metadata["risk_tier"]
    # Policy before pinning: a caller refused by policy learns only `tool-not-permitted`, never
    # whether a tool it may not use exists or changed.
    PolicyGuard.from_settings,
    TaskOwnershipGuard.from_settings,  # after policy: tasks/* of a caller policy refuses stay refused
    PinningGuard.from_settings,
    FlowGuard.from_settings,  # before approval: it may ask the approval guard to hold a call
    ApprovalGuard.from_settings,  # last: a human is asked only about calls nothing else refused
)


def build_guards(
    settings: Settings, catalog: CatalogView, factories: tuple[GuardFactory, ...] = BUILTIN_GUARDS
) -> list[Guard]:
    return [guard for factory in factories if (guard := factory(settings, catalog)) is not None]
