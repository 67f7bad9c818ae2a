"""The policy decision function: PolicyRequest -> PolicyDecision, pure, backed by Cedar.

`PolicyEngine.decide` does no I/O: the compiled policy is immutable, argument facts are computed
from the request alone (path arguments arrive already resolved, see `policy.paths`), and Cedar
(`cedarpy`, the Rust engine in-process) combines them: a matching `forbid` wins, otherwise a
matching `permit` allows, otherwise the answer is no (deny by default). A `forbid` that fails to
evaluate denies (fail closed): Cedar itself would skip it, which for a refusal means failing open.

When the answer is no, Python looks for the nearest grant (right principal and name) to say why in
words: a missing scope, or the argument that failed its condition. That text never changes the
decision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cedarpy

from mcpwarden.policy import conditions
from mcpwarden.policy.compiler import (
    CompiledCondition,
    CompiledPolicy,
    CompiledRule,
    compile_policy,
    glob_regex,
)
from mcpwarden.policy.model import (
    ACTIONS,
    ALLOWED,
    ARGUMENT_NOT_PERMITTED,
    DENIED_BY_RULE,
    INSUFFICIENT_SCOPE,
    LIST_ACTIONS,
    NO_GRANT,
    POLICY_ERROR,
    PolicyDecision,
    PolicyRequest,
    PrincipalFacts,
)

_ERROR_POLICY = re.compile(r"policy `([^`]+)`")
_MAX_DEPTH = 8
_MAX_ITEMS = 256


def _action_entities() -> str:
    entities: list[dict[str, Any]] = [
        {"uid": {"type": "Action", "id": group}, "attrs": {}, "parents": []} for group in ("use", "list")
    ]
    for action in ACTIONS:
        group = "list" if action in LIST_ACTIONS else "use"
        entities.append(
            {
                "uid": {"type": "Action", "id": action},
                "attrs": {},
                "parents": [{"type": "Action", "id": group}],
            }
        )
    return json.dumps(entities)


_BASE_ENTITIES = cedarpy.Entities.from_json_str(_action_entities())


@dataclass(frozen=True, slots=True)
class _Slice:
    """What can apply to one principal and exposed name: a memo of the compiled policy, not state."""

    policy_set: cedarpy.PolicySet
    conditional: tuple[CompiledRule, ...]
    rules: tuple[CompiledRule, ...]


class PolicyEngine:
    """A compiled policy and the pure function that applies it."""

    MAX_SLICES = 8192  # memoised names; the cache is dropped whole when full

    def __init__(self, compiled: CompiledPolicy) -> None:
        self.compiled = compiled
        self._slices: dict[tuple[str, str, frozenset[str]], _Slice] = {}
        self._path_arguments: dict[str, tuple[str, ...]] = {}
        self._role_groups: dict[frozenset[str], tuple[str, ...]] = {}
        self._entity_sets: dict[str, cedarpy.Entities] = {}
        # Decisions that cannot depend on arguments or attributes (no condition applies and no
        # Cedar file sees them) are the same every time: one Cedar evaluation per distinct request.
        self._decided: dict[tuple[Any, ...], PolicyDecision] = {}

    def _slice(self, principal: PrincipalFacts, name: str) -> _Slice:
        """The policies that can apply to this principal and name (memoised; same answer as all).

        A shorthand policy whose principal or name clause cannot match is left out; Cedar-file
        policies are always in. The Python twins of the clauses (`matches_*`) are exact for our
        globs, and Cedar still evaluates every clause of what is kept.
        """
        key = (name, principal.name, principal.roles)
        found = self._slices.get(key)
        if found is not None:
            return found
        owners = self.compiled.owners
        chosen = {
            policy_id: body
            for policy_id, body in self.compiled.policies.items()
            if policy_id not in owners
            or (
                owners[policy_id].matches_name(name)
                and owners[policy_id].matches_principal(principal.name, principal.roles)
            )
        }
        kept = tuple(owners[policy_id] for policy_id in chosen if policy_id in owners)
        document = {"staticPolicies": chosen, "templates": {}, "templateLinks": []}
        built = _Slice(
            cedarpy.PolicySet.from_json_str(json.dumps(document)),
            tuple(rule for rule in kept if rule.conditions),
            kept,
        )
        if len(self._slices) >= self.MAX_SLICES:
            self._slices.clear()
        self._slices[key] = built
        return built

    @classmethod
    def default(cls) -> PolicyEngine:
        """No `policy` key: the local stdio user may do everything, HTTP callers nothing."""
        return cls(compile_policy(None))

    @property
    def mode(self) -> str:
        return self.compiled.mode

    def path_arguments(self, name: str) -> tuple[str, ...]:
        """Arguments of `name` whose path values must be resolved before deciding."""
        found = self._path_arguments.get(name)
        if found is None:
            found = tuple(
                sorted(
                    {
                        condition.argument
                        for rule in self.compiled.conditional
                        if rule.matches_name(name)
                        for condition in rule.conditions
                        if condition.kind == "within"
                    }
                )
            )
            if len(self._path_arguments) >= self.MAX_SLICES:
                self._path_arguments.clear()
            self._path_arguments[name] = found
        return found

    # -- the decision --------------------------------------------------------------------------

    def decide(self, request: PolicyRequest) -> PolicyDecision:
        if request.action not in ACTIONS:
            raise ValueError(f"unknown policy action {request.action!r}")
        piece = self._slice(request.principal, request.resource.name)
        memo_key: tuple[Any, ...] | None = None
        if not piece.conditional and not self.compiled.passes_arguments:
            principal = request.principal
            memo_key = (
                principal.name,
                principal.roles,
                principal.scopes,
                principal.method,
                request.action,
                request.resource,
                request.transport,
            )
            cached = self._decided.get(memo_key)
            if cached is not None:
                return cached
        decision = self._evaluate(request, piece)
        if memo_key is not None:
            if len(self._decided) >= self.MAX_SLICES:
                self._decided.clear()
            self._decided[memo_key] = decision
        return decision

    def _evaluate(self, request: PolicyRequest, piece: _Slice) -> PolicyDecision:
        satisfied, failed = self._argument_facts(request, piece.conditional)
        result = cedarpy.is_authorized(
            self._cedar_request(request, satisfied), piece.policy_set, self._entities(request)
        )
        labels = self.compiled.labels
        reasons = tuple(result.diagnostics.reasons)
        errors = tuple(result.diagnostics.errors)
        errored = {m.group(1) for e in errors for m in [_ERROR_POLICY.search(e)] if m}
        shown_errors = tuple(_relabel(e, labels) for e in errors)
        if errored & self.compiled.forbids:
            rules = tuple(labels.get(p, p) for p in sorted(errored & self.compiled.forbids))
            return PolicyDecision(
                False,
                POLICY_ERROR,
                f"a deny rule ({', '.join(rules)}) could not be evaluated, so the request is refused",
                rules=rules,
                errors=shown_errors,
            )
        rules = tuple(labels.get(p, p) for p in reasons)
        name = request.resource.name
        if result.allowed:
            return PolicyDecision(
                True, ALLOWED, f"allowed by {', '.join(rules)}", rules=rules, errors=shown_errors
            )
        if reasons:  # forbid policies decided
            deny_rule = self._rule(rules[0])
            failed_condition = self._first_failed(deny_rule, failed) if deny_rule is not None else None
            if failed_condition is not None:
                return PolicyDecision(
                    False,
                    ARGUMENT_NOT_PERMITTED,
                    f"argument {failed_condition.argument!r} of {name} is not permitted: "
                    f"{failed_condition.describe()}",
                    rules=rules,
                    argument=failed_condition.argument,
                    condition=failed_condition.kind,
                    errors=shown_errors,
                )
            return PolicyDecision(
                False,
                DENIED_BY_RULE,
                f"policy refuses {name} to {request.principal.name!r} (rule {rules[0]})",
                rules=rules,
                errors=shown_errors,
            )
        return self._explain_no_grant(request, failed, shown_errors)

    # -- facts ---------------------------------------------------------------------------------

    def _argument_facts(
        self, request: PolicyRequest, candidates: tuple[CompiledRule, ...]
    ) -> tuple[list[str], set[str]]:
        """Ids of argument conditions that hold, and of those that do not, for rules on this name."""
        satisfied: list[str] = []
        failed: set[str] = set()
        if request.action in LIST_ACTIONS:
            return satisfied, failed  # listings never depend on arguments
        arguments = request.arguments or {}
        for rule in candidates:
            for condition in rule.conditions:
                if _holds(condition, arguments.get(condition.argument), request.resolved_paths):
                    satisfied.append(condition.id)
                else:
                    failed.add(condition.id)
        return satisfied, failed

    def _cedar_request(self, request: PolicyRequest, satisfied: list[str]) -> dict[str, Any]:
        context: dict[str, Any] = {"transport": request.transport, "satisfied": satisfied}
        if self.compiled.passes_arguments:
            context["arguments"] = _cedar_value(dict(request.arguments or {}), 0) or {}
        return {
            "principal": {"type": "Principal", "id": request.principal.name},
            "action": {"type": "Action", "id": request.action},
            "resource": {"type": "Resource", "id": request.resource.name},
            "context": context,
        }

    def _entities(self, request: PolicyRequest) -> cedarpy.Entities:
        principal = request.principal
        roles = set(principal.roles) | set(self._role_groups_of(principal.roles))
        principal_attrs: dict[str, Any] = {
            "name": principal.name,
            "method": principal.method,
            "roles": sorted(principal.roles),
            "scopes": sorted(principal.scopes),
        }
        if self.compiled.passes_arguments:
            principal_attrs["attributes"] = _cedar_value(dict(principal.attributes), 0) or {}
        resource = request.resource
        resource_attrs: dict[str, Any] = {
            "name": resource.name,
            "server": resource.server,
            "kind": resource.kind,
        }
        if resource.risk is not None:
            resource_attrs["risk"] = resource.risk
        delta = [
            {
                "uid": {"type": "Principal", "id": principal.name},
                "attrs": principal_attrs,
                "parents": [{"type": "Role", "id": role} for role in sorted(roles)],
            },
            {"uid": {"type": "Resource", "id": resource.name}, "attrs": resource_attrs, "parents": []},
        ]
        # Memoised by content: the same caller on the same name needs no second parse.
        key = json.dumps(delta, separators=(",", ":"))
        found = self._entity_sets.get(key)
        if found is None:
            found = _BASE_ENTITIES.with_added_json_str(key)
            if len(self._entity_sets) >= self.MAX_SLICES:
                self._entity_sets.clear()
            self._entity_sets[key] = found
        return found

    def _role_groups_of(self, roles: frozenset[str]) -> tuple[str, ...]:
        """Role globs the roles match: membership in Role::"<glob>" (Cedar cannot glob over a set)."""
        found = self._role_groups.get(roles)
        if found is None:
            found = tuple(
                pattern
                for pattern in self.compiled.role_patterns
                if any(glob_regex(pattern).fullmatch(role) for role in roles)
            )
            if len(self._role_groups) >= self.MAX_SLICES:
                self._role_groups.clear()
            self._role_groups[roles] = found
        return found

    # -- explanations --------------------------------------------------------------------------

    def _rule(self, rule_id: str) -> CompiledRule | None:
        return next((rule for rule in self.compiled.rules if rule.id == rule_id), None)

    @staticmethod
    def _first_failed(rule: CompiledRule, failed: set[str]) -> CompiledCondition | None:
        return next((c for c in rule.conditions if c.id in failed), None)

    def _explain_no_grant(
        self, request: PolicyRequest, failed: set[str], errors: tuple[str, ...]
    ) -> PolicyDecision:
        principal, name = request.principal, request.resource.name
        for rule in self._slice(principal, name).rules:
            if rule.effect != "allow":
                continue
            if not rule.matches_principal(principal.name, principal.roles):
                continue
            if not rule.matches_risk(request.resource.risk):
                continue
            missing = tuple(scope for scope in rule.scopes if scope not in principal.scopes)
            if missing:
                return PolicyDecision(
                    False,
                    INSUFFICIENT_SCOPE,
                    f"{name} needs the scope {', '.join(missing)}",
                    nearest_rule=rule.id,
                    required_scopes=rule.scopes,
                    errors=errors,
                )
            condition = self._first_failed(rule, failed)
            if condition is not None:
                return PolicyDecision(
                    False,
                    ARGUMENT_NOT_PERMITTED,
                    f"argument {condition.argument!r} of {name} is not permitted: {condition.describe()}",
                    nearest_rule=rule.id,
                    argument=condition.argument,
                    condition=condition.kind,
                    errors=errors,
                )
        who = principal.name
        if not self.compiled.configured and request.transport != "stdio":
            detail = (
                f"{who!r} may not use {name}: no policy is configured, "
                "and HTTP callers get only what one grants"
            )
        else:
            detail = f"{who!r} may not use {name}: no policy rule grants it"
        return PolicyDecision(False, NO_GRANT, detail, errors=errors)


def _holds(condition: CompiledCondition, value: object, resolved: Mapping[str, str]) -> bool:
    if condition.kind == "within":
        return conditions.paths_within(value, condition.values, resolved)
    if condition.kind == "hosts":
        return conditions.host_allowed(value, condition.values)
    if condition.kind == "recipients":
        return conditions.recipients_allowed(value, condition.values)
    return conditions.sql_read_only(value)


def _cedar_value(value: Any, depth: int) -> Any:
    """JSON -> a Cedar JSON value a policy can read; None for what Cedar cannot hold.

    Keys starting with `__` are dropped: in Cedar's JSON they would turn a caller's argument into
    an entity reference (`__entity`) or an extension value (`__extn`).
    """
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value < 2**63 else None
    if depth >= _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        record = {}
        for key, item in list(value.items())[:_MAX_ITEMS]:
            if isinstance(key, str) and not key.startswith("__"):
                converted = _cedar_value(item, depth + 1)
                if converted is not None:
                    record[key] = converted
        return record
    if isinstance(value, list):
        items = [_cedar_value(item, depth + 1) for item in value[:_MAX_ITEMS]]
        return [item for item in items if item is not None]
    return None  # floats and nulls have no Cedar form


def _relabel(error: str, labels: Mapping[str, str]) -> str:
    return _ERROR_POLICY.sub(lambda m: f"policy `{labels.get(m.group(1), m.group(1))}`", error)
