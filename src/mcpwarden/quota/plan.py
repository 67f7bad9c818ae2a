"""From `limits` rules and one call to the counters it must pass: matching, keys and periods.

Pure code, no I/O: `QuotaRules.plan(...)` turns (identity, exposed name, argument digest, now) into
an `Admission`, the list of counter checks a backend runs atomically. Both backends (SQLite and
Redis) execute the same Admission, so their semantics cannot drift apart.

**Matching.** Every rule whose `principal` and `tool` match applies. `principal` is a name glob
matched against the identity's name, or `role:GLOB` matched against each of its roles; `tool` is
a glob over the exposed name (`notes__search`, `mcpwarden://notes/...`). `*` is the only wildcard,
as in the policy shorthand; matching is case-sensitive.

**Keys.** Counters are keyed on the principal, never on the session or connection, so reconnecting
resets nothing. A rule with `scope: principal` (the default) gives each principal its own counters;
`scope: global` shares one set of counters between everyone the rule matches. A key is derived from
the rule's matcher (principal glob, tool glob, scope) and the limit's own parameters, not from the
rule's position in the file: reordering rules or raising a budget's units keeps what was spent.
Two rules with the same matcher and the same kind of counter share it (the strictest limit wins).

**Cost.** A call costs the largest `cost` among the matching rules that set one (1 when none do),
plus the largest `cost_per_kb` times the KB of result the upstream returned. One number per call,
charged against every matching budget and recorded in the audit event.

**Periods.** Budgets renew at calendar boundaries in UTC: the top of the hour, 00:00Z, and 00:00Z on
the first of the month.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mcpwarden.config import LimitRule, duration_seconds, rate_per_second
from mcpwarden.exchange import Identity

# Requests that make an upstream work and return content: the ones limits and costs apply to.
METERED_METHODS = frozenset({"tools/call", "prompts/get", "resources/read"})
DEFAULT_CALL_COST = 1.0
ALERT_FRACTION = 0.8  # a budget alert is written once per period when spending crosses 80 %


def glob_pattern(glob: str) -> re.Pattern[str]:
    """A `*`-only glob as an anchored regular expression (use with fullmatch)."""
    return re.compile(
        "".join(".*" if part == "*" else re.escape(part) for part in re.split(r"(\*)", glob)), re.S
    )


@dataclass(frozen=True, slots=True)
class RateCheck:
    key: str
    capacity: float  # the bucket holds at most this many calls (the burst)
    refill_per_second: float
    rule: int  # index of the rule in `limits`, for messages


@dataclass(frozen=True, slots=True)
class ConcurrencyCheck:
    key: str
    limit: int
    rule: int


@dataclass(frozen=True, slots=True)
class BudgetCheck:
    key: str  # includes the period label, so each period has its own counter
    units: float
    period: str  # "hour", "day" or "month"
    period_end: float  # unix seconds when this period's counter stops applying
    rule: int


@dataclass(frozen=True, slots=True)
class LoopCheck:
    key: str
    repeats: int
    window: float  # seconds
    rule: int


@dataclass(frozen=True, slots=True)
class Admission:
    """Everything one call must pass; a backend checks all of it, then commits all or nothing."""

    rates: tuple[RateCheck, ...] = ()
    concurrency: tuple[ConcurrencyCheck, ...] = ()
    budgets: tuple[BudgetCheck, ...] = ()
    loops: tuple[LoopCheck, ...] = ()
    cost: float = DEFAULT_CALL_COST  # reserved against every budget at admission
    lease_id: str = ""  # names this call's concurrency lease and loop entry
    lease_seconds: float = 120.0  # a lease left behind by a crashed gateway expires after this

    @property
    def empty(self) -> bool:
        return not (self.rates or self.concurrency or self.budgets or self.loops)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    index: int
    rule: LimitRule
    principal_pattern: re.Pattern[str]
    role_pattern: re.Pattern[str] | None  # set when the rule names role:GLOB
    tool_pattern: re.Pattern[str]
    matcher: str  # stable id of (principal, tool, scope)

    @classmethod
    def compile(cls, index: int, rule: LimitRule) -> CompiledRule:
        role = rule.principal[len("role:") :] if rule.principal.startswith("role:") else None
        matcher_text = json.dumps([rule.principal, rule.tool, rule.scope], separators=(",", ":"))
        return cls(
            index=index,
            rule=rule,
            principal_pattern=glob_pattern(rule.principal),
            role_pattern=glob_pattern(role) if role is not None else None,
            tool_pattern=glob_pattern(rule.tool),
            matcher=hashlib.sha256(matcher_text.encode()).hexdigest()[:16],
        )

    def matches(self, identity: Identity, exposed_name: str) -> bool:
        if self.tool_pattern.fullmatch(exposed_name) is None:
            return False
        if self.role_pattern is not None:
            return any(self.role_pattern.fullmatch(role) for role in identity.roles)
        return self.principal_pattern.fullmatch(identity.name) is not None

    def subject(self, identity: Identity) -> str:
        """Whose counter: the principal's own, or (scope global) everyone's."""
        return json.dumps(identity.name if self.rule.scope == "principal" else None)


def period_bounds(per: str, now: float) -> tuple[str, float]:
    """The UTC calendar period holding `now`: its label (2026-11-24T22, 2026-11-24, 2026-11) and end."""
    moment = datetime.fromtimestamp(now, UTC)
    if per == "hour":
        start = moment.replace(minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%dT%H"), (start + timedelta(hours=1)).timestamp()
    if per == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.strftime("%Y-%m-%d"), (start + timedelta(days=1)).timestamp()
    if per == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (
            start.replace(year=start.year + 1, month=1)
            if start.month == 12
            else start.replace(month=start.month + 1)
        )
        return start.strftime("%Y-%m"), following.timestamp()
    raise ValueError(f"unknown budget period {per!r}")


class QuotaRules:
    """The compiled `limits`: which rules match a call, what it costs, which counters it needs."""

    def __init__(self, rules: Sequence[LimitRule]) -> None:
        self.rules = tuple(CompiledRule.compile(index, rule) for index, rule in enumerate(rules))

    def matching(self, identity: Identity, exposed_name: str) -> list[CompiledRule]:
        return [rule for rule in self.rules if rule.matches(identity, exposed_name)]

    @staticmethod
    def call_cost(rules: Iterable[CompiledRule]) -> tuple[float, float]:
        """(cost per call, cost per KB returned) of a call that the given rules match."""
        costs = [rule.rule.cost for rule in rules if rule.rule.cost is not None]
        per_kb = [rule.rule.cost_per_kb for rule in rules if rule.rule.cost_per_kb is not None]
        return (max(costs) if costs else DEFAULT_CALL_COST), (max(per_kb) if per_kb else 0.0)

    @staticmethod
    def plan(
        rules: Sequence[CompiledRule],
        identity: Identity,
        exposed_name: str,
        argument_digest: str | None,
        *,
        now: float,
        cost: float,
        lease_id: str,
        lease_seconds: float,
    ) -> Admission:
        """The checks a call must pass; counters shared by several rules appear once (strictest)."""
        rates: dict[str, RateCheck] = {}
        concurrency: dict[str, ConcurrencyCheck] = {}
        budgets: dict[str, BudgetCheck] = {}
        loops: dict[str, LoopCheck] = {}
        for compiled in rules:
            rule, subject, matcher = compiled.rule, compiled.subject(identity), compiled.matcher
            if rule.rate is not None:
                count, seconds = rate_per_second(rule.rate)
                key = f"rate:{matcher}:{count:g}/{seconds:g}:{subject}"
                rates.setdefault(key, RateCheck(key, count, count / seconds, compiled.index))
            if rule.concurrency is not None:
                key = f"conc:{matcher}:{subject}"
                known = concurrency.get(key)
                if known is None or rule.concurrency < known.limit:
                    concurrency[key] = ConcurrencyCheck(key, rule.concurrency, compiled.index)
            if rule.budget is not None:
                label, end = period_bounds(rule.budget.per, now)
                key = f"budget:{matcher}:{rule.budget.per}:{subject}:{label}"
                known_budget = budgets.get(key)
                if known_budget is None or rule.budget.units < known_budget.units:
                    budgets[key] = BudgetCheck(key, rule.budget.units, rule.budget.per, end, compiled.index)
            if rule.loop is not None:
                window = duration_seconds(rule.loop.window)
                call = json.dumps([exposed_name, argument_digest], separators=(",", ":"))
                key = f"loop:{matcher}:{rule.loop.repeats}/{window:g}:{subject}:{call}"
                loops.setdefault(key, LoopCheck(key, rule.loop.repeats, window, compiled.index))
        return Admission(
            rates=tuple(rates.values()),
            concurrency=tuple(concurrency.values()),
            budgets=tuple(budgets.values()),
            loops=tuple(loops.values()),
            cost=cost,
            lease_id=lease_id,
            lease_seconds=lease_seconds,
        )
