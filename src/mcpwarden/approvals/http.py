"""The approvals admin endpoint of `mcpwarden serve`: list and decide held calls over HTTP.

`GET /admin/approvals` lists what waits; `POST /admin/approvals/{id}/approve` (or `/deny`) decides
one, like `mcpwarden approvals approve ID`. The routes sit behind the same Host/Origin checks and
authentication as `/mcp`, and only a caller holding the configured admin role may use them; every
decision is written to the audit trail under the deciding principal.
"""

from __future__ import annotations

import time
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from mcpwarden import reasons
from mcpwarden.approvals.store import ApprovalStore
from mcpwarden.audit.events import AuditEvent
from mcpwarden.config import Settings
from mcpwarden.exchange import IDENTITY_SCOPE_KEY, Identity
from mcpwarden.pipeline import AuditSink

ADMIN_PREFIX = "/admin/approvals"


def approval_routes(settings: Settings, audit: AuditSink) -> list[Route]:
    admin_role = settings.approvals.admin_role

    def admin(request: Request) -> Identity | JSONResponse:
        identity = request.scope.get(IDENTITY_SCOPE_KEY)
        if not isinstance(identity, Identity) or identity.method in ("none", "anonymous"):
            return JSONResponse({"error": "authentication required"}, status_code=401)
        if admin_role not in identity.roles:
            return JSONResponse({"error": f"the role {admin_role!r} is required"}, status_code=403)
        return identity

    async def list_pending(request: Request) -> JSONResponse:
        who = admin(request)
        if isinstance(who, JSONResponse):
            return who
        store = ApprovalStore.for_state_dir(settings.state_dir)
        try:
            pending = [approval.to_dict() for approval in store.list()]
        finally:
            store.close()
        return JSONResponse(pending)

    async def decide(request: Request) -> JSONResponse:
        who = admin(request)
        if isinstance(who, JSONResponse):
            return who
        approval_id = request.path_params["approval_id"]
        verb = request.path_params["verb"]
        if verb not in ("approve", "deny"):
            return JSONResponse({"error": "use /approve or /deny"}, status_code=404)
        approved = verb == "approve"
        store = ApprovalStore.for_state_dir(settings.state_dir)
        try:
            decided = store.decide(approval_id, approved, who.name, settings.approvals.lifetime)
        finally:
            store.close()
        if decided is None:
            return JSONResponse({"error": "no such pending approval"}, status_code=404)
        audit.append(
            AuditEvent(
                time=time.time(),
                correlation_id=uuid.uuid4().hex,
                principal=who.name,
                transport="http",
                method=f"approvals/{verb}",
                server=decided.server,
                target=decided.tool,
                argument_digest=None,
                decision="allow" if approved else "deny",
                reason=reasons.OK if approved else reasons.APPROVAL_DENIED,
                detail="",
                latency_ms=0.0,
                request_bytes=0,
                response_bytes=0,
                extra={"approval": {"id": decided.id, "kind": decided.kind, "for": decided.principal}},
            )
        )
        return JSONResponse(decided.to_dict())

    # Relative to the mount at ADMIN_PREFIX.
    return [
        Route("/", list_pending, methods=["GET"]),
        Route("/{approval_id}/{verb}", decide, methods=["POST"]),
    ]
