"""Stable reason codes: the kebab-case words clients, logs and the audit trail use for decisions.

Clients read these from `error.data.reason`; never rename one, only add.
"""

OK = "ok"

# Protocol and size (this module's first users: guards/protocol.py, guards/size.py, the router)
INVALID_REQUEST = "invalid-request"
INVALID_NAME = "invalid-name"
UNKNOWN_TOOL = "unknown-tool"
UNKNOWN_PROMPT = "unknown-prompt"
UNKNOWN_RESOURCE = "unknown-resource"
UNKNOWN_TASK = "unknown-task"
UNKNOWN_SERVER = "unknown-server"
REQUEST_TOO_LARGE = "request-too-large"
RESULT_TOO_LARGE = "result-too-large"
TOO_MANY_IN_FLIGHT = "too-many-in-flight"
METHOD_NOT_SUPPORTED = "method-not-supported"
MISSING_CLIENT_CAPABILITY = "missing-client-capability"

# Upstream health
UPSTREAM_UNAVAILABLE = "upstream-unavailable"
UPSTREAM_TIMEOUT = "upstream-timeout"
UPSTREAM_FAILED = "upstream-failed"
UPSTREAM_ERROR = "upstream-error"
UPSTREAM_INVALID_REPLY = "upstream-invalid-reply"

# Fail closed: a guard that raised
GUARD_FAILED = "guard-failed"
INTERNAL_ERROR = "internal-error"

# Identity and policy (issue 3), risk and approval (issue 5), quota (issue 6), content (issue 4)
UNAUTHENTICATED = "unauthenticated"
TOOL_NOT_PERMITTED = "tool-not-permitted"
APPROVAL_REQUIRED = "approval-required"
APPROVAL_DENIED = "approval-denied"
TOOL_DEFINITION_CHANGED = "tool-definition-changed"
RATE_LIMITED = "rate-limited"
BUDGET_EXHAUSTED = "budget-exhausted"
LOOP_DETECTED = "loop-detected"
CONTENT_BLOCKED = "content-blocked"

# Authentication (issue 3: auth/ and guards/scopes.py)
INVALID_TOKEN = "invalid-token"
INSUFFICIENT_SCOPE = "insufficient-scope"

# Risk, pinning and flow (issue 5: guards/risk.py, pinning.py, approval.py, flow.py)
TOXIC_FLOW = "toxic-flow"
STARTUP_NOT_APPROVED = "startup-not-approved"
