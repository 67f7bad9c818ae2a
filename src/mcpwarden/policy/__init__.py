"""Authorization: one pure decision function for listing and for calling (issue 3).

`PolicyEngine.decide(PolicyRequest) -> PolicyDecision` answers whether a principal may use (or
see) a server's tool, prompt or resource with given arguments. The YAML shorthand (`policy.allow`,
`policy.deny`, `where` argument conditions) compiles to Cedar (`compiler`), a Cedar file may add
policies, and `paths.with_resolved_paths` is the one I/O step, done before deciding. The policy
guard (`mcpwarden.guards.policy`) and `mcpwarden policy test|explain` are its users.
"""

from __future__ import annotations

from mcpwarden.policy.compiler import CompiledPolicy, compile_policy
from mcpwarden.policy.engine import PolicyEngine
from mcpwarden.policy.model import (
    ALLOWED,
    ARGUMENT_NOT_PERMITTED,
    CALL_TOOL,
    DENIED_BY_RULE,
    GET_PROMPT,
    INSUFFICIENT_SCOPE,
    LIST_PROMPTS,
    LIST_RESOURCES,
    LIST_TOOLS,
    NO_GRANT,
    POLICY_ERROR,
    READ_RESOURCE,
    PolicyDecision,
    PolicyRequest,
    PrincipalFacts,
    ResourceRef,
)
from mcpwarden.policy.paths import resolve_path_arguments, with_resolved_paths

__all__ = [
    "ALLOWED",
    "ARGUMENT_NOT_PERMITTED",
    "CALL_TOOL",
    "DENIED_BY_RULE",
    "GET_PROMPT",
    "INSUFFICIENT_SCOPE",
    "LIST_PROMPTS",
    "LIST_RESOURCES",
    "LIST_TOOLS",
    "NO_GRANT",
    "POLICY_ERROR",
    "READ_RESOURCE",
    "CompiledPolicy",
    "PolicyDecision",
    "PolicyEngine",
    "PolicyRequest",
    "PrincipalFacts",
    "ResourceRef",
    "compile_policy",
    "resolve_path_arguments",
    "with_resolved_paths",
]
