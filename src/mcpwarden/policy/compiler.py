"""The YAML shorthand, compiled to Cedar: what the policy engine actually evaluates.

Grammar (config key `policy`; every field optional except as noted):

    policy:
      mode: enforce | dry-run
      allow:                         # grants (Cedar `permit`)
        - principal: "alice" | "ops-*" | "role:dev" | "role:data-*" | "*"
          tool: "fs__read_file" | "fs__*" | "mcpwarden://notes/*" | "*"
          scopes: ["tools:write"]    # the caller must hold every one (exact match)
          risk: [low, medium]        # only tools of these risk tiers (see below)
          where:                     # argument conditions, all must hold for a call
            path:  {within: ["/srv/data", "/tmp/scratch"]}
            url:   {hosts: ["example.com", "*.example.org"]}
            to:    {recipients: ["*@example.com", "boss@partner.org"]}
            query: {sql: read-only}
      deny:                          # refusals (Cedar `forbid`); they win over any grant
        - principal: "role:contractor"
          tool: "db__*"              # without `where`: refused (and hidden from listings)
        - tool: "fs__*"              # with `where`: calls whose arguments FAIL it are refused
          where: {path: {within: ["/srv"]}}
      cedar_file: policies.cedar     # extra Cedar policies, evaluated in the same set

Globs know one wildcard, `*` (Cedar's `like`); names without `*` compare exactly. `tool` matches
the exposed name of a tool or prompt (`notes__search`) or a resource's exposed URI
(`mcpwarden://notes/file:///a.txt`). Role globs are matched in Python when the principal entity is
built (it becomes a member of `Role::"<glob>"`), because Cedar cannot glob over a set.

Argument conditions cannot be evaluated by Cedar (realpath, URL and SQL parsing), so each one gets
an id (`allow[0].where.path`); Python decides which ids hold for a request and passes them as
`context.satisfied`; the compiled policy requires them. Listings (`list_*` actions) ignore argument
conditions: a tool is listed when some arguments could be allowed, and is hidden when no call could.

`risk` narrows a rule to tools of the given tiers (the risk classifier's `low`..`critical`): an
allow never matches an unknown tier (prompts, resources, unclassified tools), a deny treats a tool
of unknown tier as matching, so a refusal is never dodged by a missing classification.

Without any `policy` key, one rule allows the local stdio user everything and HTTP callers nothing.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import cedarpy

from mcpwarden.config import ArgumentCondition, PolicyRule, PolicySettings
from mcpwarden.errors import ConfigError

STDIO_DEFAULT = "stdio-default"
ConditionKind = Literal["within", "hosts", "recipients", "sql"]


@dataclass(frozen=True, slots=True)
class CompiledCondition:
    id: str
    argument: str
    kind: ConditionKind
    values: tuple[str, ...]  # resolved roots, host or recipient patterns, or ("read-only",)

    def describe(self) -> str:
        if self.kind == "within":
            return "it must be an absolute path that resolves inside an allowed root"
        if self.kind == "hosts":
            return "it must be an http(s) URL whose host is on the allow-list"
        if self.kind == "recipients":
            return "every recipient must be on the allow-list"
        return "it must be a single read-only SQL statement (SELECT)"


@functools.lru_cache(maxsize=4096)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """The Python twin of Cedar's `like` for our globs: `*` is any run of characters."""
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


@dataclass(frozen=True, slots=True)
class CompiledRule:
    id: str
    effect: Literal["allow", "deny"]
    principal: str
    tool: str
    scopes: tuple[str, ...]
    conditions: tuple[CompiledCondition, ...]
    tool_regex: re.Pattern[str]
    risk: tuple[str, ...] = ()

    def matches_risk(self, risk: str | None) -> bool:
        return not self.risk or risk in self.risk

    def matches_name(self, name: str) -> bool:
        return self.tool == "*" or self.tool_regex.fullmatch(name) is not None

    def matches_principal(self, name: str, roles: frozenset[str]) -> bool:
        if self.principal == "*":
            return True
        if self.principal.startswith("role:"):
            pattern = glob_regex(self.principal[len("role:") :])
            return any(pattern.fullmatch(role) for role in roles)
        return glob_regex(self.principal).fullmatch(name) is not None


@dataclass(frozen=True, slots=True)
class CompiledPolicy:
    cedar_text: str
    policy_set: cedarpy.PolicySet
    mode: Literal["enforce", "dry-run"]
    rules: tuple[CompiledRule, ...]
    role_patterns: tuple[str, ...]  # role globs (with `*`), matched in Python
    labels: Mapping[str, str]  # engine policy id -> rule id shown to people
    forbids: frozenset[str]  # engine policy ids of forbid policies (errors there fail closed)
    passes_arguments: bool  # a Cedar file may read context.arguments and principal.attributes
    configured: bool  # False: no `policy` key, the built-in stdio default applies
    conditional: tuple[CompiledRule, ...] = field(default=())
    # Every policy in Cedar's JSON form, by engine id (text order), and the shorthand rule it came
    # from (None: a Cedar-file or default policy). The engine evaluates, per exposed name, only the
    # policies whose name clause can match it: same answer, without paying for the other rules.
    policies: Mapping[str, Any] = field(default_factory=dict)
    owners: Mapping[str, CompiledRule] = field(default_factory=dict)


def cedar_string(value: str) -> str:
    """A Cedar string literal (also a `like` pattern, where `*` stays the wildcard)."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{{{ord(char):x}}}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _principal_clause(principal: str) -> str | None:
    if principal == "*":
        return None
    if principal.startswith("role:"):
        return f"principal in Role::{cedar_string(principal[len('role:') :])}"
    if "*" in principal:
        return f"principal.name like {cedar_string(principal)}"
    return f"principal == Principal::{cedar_string(principal)}"


def _name_clause(tool: str) -> str | None:
    if tool == "*":
        return None
    if "*" in tool:
        return f"resource.name like {cedar_string(tool)}"
    return f"resource.name == {cedar_string(tool)}"


def _compile_condition(
    rule_id: str, argument: str, condition: ArgumentCondition, realpath: Callable[[str], str]
) -> CompiledCondition:
    cid = f"{rule_id}.where.{argument}"
    if condition.within is not None:
        # Roots are resolved once, at configuration time, the same way arguments will be.
        return CompiledCondition(cid, argument, "within", tuple(realpath(root) for root in condition.within))
    if condition.hosts is not None:
        return CompiledCondition(cid, argument, "hosts", condition.hosts)
    if condition.recipients is not None:
        return CompiledCondition(cid, argument, "recipients", condition.recipients)
    return CompiledCondition(cid, argument, "sql", ("read-only",))


def _compile_rule(
    rule_id: str, effect: Literal["allow", "deny"], rule: PolicyRule, realpath: Callable[[str], str]
) -> tuple[CompiledRule, str]:
    conditions = tuple(
        _compile_condition(rule_id, argument, condition, realpath)
        for argument, condition in sorted(rule.where.items())
    )
    clauses = [c for c in (_principal_clause(rule.principal), _name_clause(rule.tool)) if c]
    if rule.risk:
        tiers = ", ".join(map(cedar_string, rule.risk))
        if effect == "allow":  # an unknown tier (prompts, resources, unclassified) never grants
            clauses.append(f"resource has risk && [{tiers}].contains(resource.risk)")
        else:  # an unknown tier of a tool is refused as if it were one of these
            clauses.append(
                f'resource.kind == "tool" && (!(resource has risk) || [{tiers}].contains(resource.risk))'
            )
    if rule.scopes:
        clauses.append(f"principal.scopes.containsAll([{', '.join(map(cedar_string, rule.scopes))}])")
    if conditions:
        ids = ", ".join(cedar_string(c.id) for c in conditions)
        if effect == "allow":
            clauses.append(f'(action in Action::"list" || context.satisfied.containsAll([{ids}]))')
        else:
            clauses.append(f'!(action in Action::"list") && !context.satisfied.containsAll([{ids}])')
    when = " && ".join(clauses) or "true"
    keyword = "permit" if effect == "allow" else "forbid"
    text = f"@id({cedar_string(rule_id)})\n{keyword} (principal, action, resource)\nwhen {{ {when} }};\n"
    compiled = CompiledRule(
        rule_id, effect, rule.principal, rule.tool, rule.scopes, conditions, glob_regex(rule.tool), rule.risk
    )
    return compiled, text


def compile_policy(
    policy: PolicySettings | None,
    base_dir: Path | None = None,
    realpath: Callable[[str], str] = os.path.realpath,
) -> CompiledPolicy:
    """Compile the settings' policy; ConfigError (naming the key or file) if it cannot be used.

    Reads `cedar_file` and resolves `within` roots with `realpath`: configuration-time I/O, done
    once, so that deciding later needs none.
    """
    rules: list[CompiledRule] = []
    texts: list[str] = []
    if policy is None:
        texts.append(
            f"@id({cedar_string(STDIO_DEFAULT)})\n"
            'permit (principal, action, resource)\nwhen { context.transport == "stdio" };\n'
        )
    else:
        # Deny rules first only for readability of the generated text; Cedar has no order.
        groups: tuple[tuple[Literal["allow", "deny"], tuple[PolicyRule, ...]], ...] = (
            ("deny", policy.deny),
            ("allow", policy.allow),
        )
        for effect, group in groups:
            for index, rule in enumerate(group):
                compiled, text = _compile_rule(f"{effect}[{index}]", effect, rule, realpath)
                rules.append(compiled)
                texts.append(text)
    file_text = ""
    file_label = ""
    if policy is not None and policy.cedar_file is not None:
        path = Path(policy.cedar_file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        file_label = path.name
        try:
            file_text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"key 'policy.cedar_file': cannot read {path}: {getattr(exc, 'strerror', None) or exc}"
            ) from None
        try:
            cedarpy.PolicySet.from_str(file_text)
        except ValueError as exc:
            raise ConfigError(f"{path}: not a valid Cedar policy file: {_first_line(exc)}") from None
    cedar_text = "".join(texts) + ("\n" + file_text if file_text else "")
    try:
        policy_set = cedarpy.PolicySet.from_str(cedar_text)
        est = json.loads(cedarpy.policies_to_json_str(cedar_text))
    except ValueError as exc:  # our own output failed to parse: a bug, but say where
        raise ConfigError(f"key 'policy': could not be compiled: {_first_line(exc)}") from None
    if est.get("templates"):
        raise ConfigError(
            "key 'policy.cedar_file': policy templates are not supported, write static policies"
        )
    labels: dict[str, str] = {}
    forbids: set[str] = set()
    owners: dict[str, CompiledRule] = {}
    ordered = _in_order(est.get("staticPolicies", {}))
    own = len(texts)
    for position, (policy_id, body) in enumerate(ordered):
        annotations: dict[str, Any] = body.get("annotations") or {}
        if position < own:
            labels[policy_id] = str(annotations.get("id", policy_id))
            if position < len(rules):
                owners[policy_id] = rules[position]
        else:
            given = annotations.get("id")
            labels[policy_id] = f"{file_label}:{given}" if given else f"{file_label}#{position - own}"
        if body.get("effect") == "forbid":
            forbids.add(policy_id)
    role_patterns = tuple(
        sorted(
            {
                r.principal[len("role:") :]
                for r in rules
                if r.principal.startswith("role:") and "*" in r.principal
            }
        )
    )
    return CompiledPolicy(
        cedar_text=cedar_text,
        policy_set=policy_set,
        mode=policy.mode if policy is not None else "enforce",
        rules=tuple(rules),
        role_patterns=role_patterns,
        labels=labels,
        forbids=frozenset(forbids),
        passes_arguments=bool(file_text),
        configured=policy is not None,
        conditional=tuple(r for r in rules if r.conditions),
        policies=dict(ordered),
        owners=owners,
    )


def _in_order(policies: Mapping[str, Any]) -> list[tuple[str, Any]]:
    # Engine ids are policy0, policy1, ... in text order.
    def key(item: tuple[str, Any]) -> tuple[int, str]:
        digits = item[0].removeprefix("policy")
        return (int(digits), "") if digits.isdigit() else (1 << 30, item[0])

    return sorted(policies.items(), key=key)


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or ["parse error"])[0][:300]
