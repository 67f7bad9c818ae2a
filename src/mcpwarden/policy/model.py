"""Values the policy decision function takes and returns: PolicyRequest in, PolicyDecision out.

They carry no behaviour and no I/O. A request names who (principal attributes), what (an action),
on what (a server's exposed tool, prompt or resource, with its risk tier once risk tiers exist) and
in which context (arguments, transport, and the resolved form of any path argument, which the
caller computed beforehand: see `policy.paths`). Codes are stable kebab-case words; never rename
one, only add.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

# Actions. "use" actions run something; "list" actions ask whether an entry may appear in a listing.
CALL_TOOL = "call_tool"
GET_PROMPT = "get_prompt"
READ_RESOURCE = "read_resource"
LIST_TOOLS = "list_tools"
LIST_PROMPTS = "list_prompts"
LIST_RESOURCES = "list_resources"
USE_ACTIONS = (CALL_TOOL, GET_PROMPT, READ_RESOURCE)
LIST_ACTIONS = (LIST_TOOLS, LIST_PROMPTS, LIST_RESOURCES)
ACTIONS = USE_ACTIONS + LIST_ACTIONS
Action = Literal["call_tool", "get_prompt", "read_resource", "list_tools", "list_prompts", "list_resources"]

# The use action that a list action stands for, so a listing shows exactly what may be used.
LISTED_AS: Mapping[str, str] = {
    LIST_TOOLS: CALL_TOOL,
    LIST_PROMPTS: GET_PROMPT,
    LIST_RESOURCES: READ_RESOURCE,
}

# Decision codes (PolicyDecision.code).
ALLOWED = "allowed"
NO_GRANT = "no-grant"  # no allow rule matches this principal and name
DENIED_BY_RULE = "denied-by-rule"  # a deny rule (Cedar forbid) matched
ARGUMENT_NOT_PERMITTED = "argument-not-permitted"  # a grant matched, but an argument failed its condition
INSUFFICIENT_SCOPE = "insufficient-scope"  # a grant matched, but the caller lacks a scope it requires
POLICY_ERROR = "policy-error"  # a deny rule could not be evaluated: fail closed


@dataclass(frozen=True, slots=True)
class PrincipalFacts:
    """Identity-like attributes of the caller (mcpwarden.exchange.Identity fits)."""

    name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    method: str = "none"
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ResourceRef:
    """What is addressed: the configured server id and the exposed name (tool, prompt or URI)."""

    server: str
    name: str
    kind: Literal["tool", "prompt", "resource"] = "tool"
    risk: str | None = None  # risk tier; None until risk classification exists


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    principal: PrincipalFacts
    action: str
    resource: ResourceRef
    arguments: Mapping[str, Any] | None = None
    transport: str = "stdio"
    # Path argument values as given -> their resolved (realpath) form, computed before deciding.
    # A path value missing here never satisfies a `within` condition (fail closed).
    resolved_paths: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    allowed: bool
    code: str
    message: str
    # Which rules decided: ids such as "allow[0]", "deny[1]", "stdio-default", or a Cedar file's
    # @id annotations (else the engine's policy ids).
    rules: tuple[str, ...] = ()
    # When no rule decided (deny by default): the grant that came closest (right principal and
    # name) but whose scope or argument condition failed. For explanations only.
    nearest_rule: str | None = None
    # For argument failures: the argument and the condition it failed.
    argument: str | None = None
    condition: str | None = None
    # For scope failures: the scopes a matching grant requires.
    required_scopes: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
