"""The pipeline: every client request passes the guards in order, the answer passes them in reverse.

It runs as the SDK server's outermost middleware, so it sees every request of both protocol eras
and both transports before any handler. For each request it builds one Exchange (parsed and routed
once), asks each guard for a Decision, lets the handler talk to the upstream, passes the result back
through the guards in reverse, and in `finally` writes exactly one audit event. A denial becomes a
JSON-RPC error carrying a stable reason code in `error.data.reason`. A guard that raises denies
(fail closed) and is logged once, without its traceback. Guards never send messages themselves.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, Protocol

import mcp_types as types
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, decode_header_value
from mcp_types.methods import CLIENT_REQUESTS, SPEC_CLIENT_METHODS
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from mcpwarden import reasons, wirejson
from mcpwarden.audit.events import AuditEvent, digest_arguments
from mcpwarden.consent import (
    APPROVAL_KEY,
    ConsentBroker,
    Continuation,
    can_elicit,
    declined,
    held_by_resolvable_guard,
    is_legacy,
)
from mcpwarden.exchange import ALLOW, Decision, Exchange, Identity, Verdict, deny
from mcpwarden.router import Router, RoutingError
from mcpwarden.tasks import MODERN_TASK_METHODS, declares_tasks, missing_tasks_capability

logger = logging.getLogger(__name__)

# Methods that are only liveness or local bookkeeping: not worth an audit row each.
UNAUDITED_METHODS = frozenset({"ping"})

# JSON-RPC error codes for our decisions, beside the SDK's -32000 (closed) and -32001 (timeout); the spec
# reserves -32020..-32099. Reasons a client can fix by changing the request use standard codes.
DENIED = -32003
HELD_FOR_APPROVAL = -32004
_CODE_BY_REASON = {
    reasons.INVALID_REQUEST: types.INVALID_REQUEST,
    reasons.INVALID_NAME: types.INVALID_PARAMS,
    reasons.UNKNOWN_TOOL: types.INVALID_PARAMS,
    reasons.UNKNOWN_PROMPT: types.INVALID_PARAMS,
    reasons.UNKNOWN_RESOURCE: types.INVALID_PARAMS,
    reasons.UNKNOWN_TASK: types.INVALID_PARAMS,
    reasons.REQUEST_TOO_LARGE: types.INVALID_REQUEST,
    reasons.UPSTREAM_UNAVAILABLE: types.INTERNAL_ERROR,
    reasons.UPSTREAM_TIMEOUT: types.INTERNAL_ERROR,
    reasons.UPSTREAM_FAILED: types.INTERNAL_ERROR,
    reasons.UPSTREAM_INVALID_REPLY: types.INTERNAL_ERROR,
    reasons.INTERNAL_ERROR: types.INTERNAL_ERROR,
}

_current_exchange: contextvars.ContextVar[Exchange] = contextvars.ContextVar("mcpwarden_exchange")


def current_exchange() -> Exchange:
    """The exchange of the request being handled; handlers read the route from it."""
    return _current_exchange.get()


# Task methods exist per era: experimental core in 2025-11-25, the tasks extension since 2026-07-28.
_LEGACY_TASK_METHODS = frozenset({"tasks/get", "tasks/result", "tasks/cancel", "tasks/list"})


def _not_in_this_version(method: str, version: str) -> bool:
    if method.startswith("tasks/"):
        modern = version in MODERN_PROTOCOL_VERSIONS
        return method not in (MODERN_TASK_METHODS if modern else _LEGACY_TASK_METHODS)
    return method in SPEC_CLIENT_METHODS and (method, version) not in CLIENT_REQUESTS


class Guard(Protocol):
    """One security or robustness check. Return a Decision; never raise on purpose."""

    name: str

    async def check_request(self, exchange: Exchange) -> Decision: ...

    async def check_response(self, exchange: Exchange) -> Decision: ...

    def finish(self, exchange: Exchange) -> None:
        """Always called once the exchange is over, whatever happened (release what you hold)."""


class BaseGuard:
    """Defaults for guards that only look one way."""

    name = "guard"

    async def check_request(self, exchange: Exchange) -> Decision:
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        return ALLOW

    def finish(self, exchange: Exchange) -> None:
        return None


class AuditSink(Protocol):
    """Where the pipeline's events go. A sink may also offer `append_later(build, correlation_id)`
    (audit.writer.GroupCommit does) to build each event where it commits it."""

    def append(self, event: AuditEvent) -> Any: ...


class DecisionError(MCPError):
    """A denial or hold on its way to the client as a JSON-RPC error."""

    def __init__(self, decision: Decision, exchange: Exchange) -> None:
        code = (
            HELD_FOR_APPROVAL
            if decision.verdict is Verdict.HOLD
            else _CODE_BY_REASON.get(decision.reason, DENIED)
        )
        data = {"reason": decision.reason, "correlation_id": exchange.correlation_id, **decision.data}
        super().__init__(code, decision.detail or decision.reason, data)
        self.decision = decision


ErrorFilter = Callable[[str, Any], tuple[str, Any]]
PrincipalResolver = Callable[[ServerRequestContext[Any, Any]], Identity]
SessionKeyResolver = Callable[[ServerRequestContext[Any, Any], str], str]


class Pipeline:
    """The SDK middleware that runs the guard chain and writes the audit trail."""

    def __init__(
        self,
        guards: Sequence[Guard],
        router: Router,
        audit: AuditSink,
        transport: str,
        principal_of: PrincipalResolver,
        session_key_of: SessionKeyResolver,
        consent: ConsentBroker | None = None,
    ) -> None:
        self.consent = consent
        self.guards = tuple(guards)
        # Each phase runs only the guards that do something in it (BaseGuard's defaults allow).
        self._request_guards = _implementing(self.guards, "check_request")
        self._response_guards = tuple(reversed(_implementing(self.guards, "check_response")))
        self._finishing_guards = _implementing(self.guards, "finish")
        # Guards that clean error text (an upstream's error.message and error.data are text the
        # client will show, and may leak secrets or carry injections: THREATS E20).
        self.error_filters: tuple[ErrorFilter, ...] = tuple(
            f for guard in guards if (f := getattr(guard, "filter_error", None)) is not None
        )
        self.router = router
        self.audit = audit
        self._append_later: Callable[[Callable[[], AuditEvent], str], None] | None = getattr(
            audit, "append_later", None
        )
        self.transport = transport
        self.principal_of = principal_of
        self.session_key_of = session_key_of

    async def __call__(self, ctx: ServerRequestContext[Any, Any], call_next: CallNext) -> HandlerResult:
        if ctx.request_id is None or ctx.method in UNAUDITED_METHODS:
            return await call_next(ctx)  # notifications (cancel, initialized) and pings
        params = dict(ctx.params or {})
        identity = self.principal_of(ctx)
        exchange = Exchange(
            method=ctx.method,
            params=params,
            identity=identity,
            transport=self.transport,
            session_key=self.session_key_of(ctx, identity.name),
            protocol_version=ctx.protocol_version,
            request_bytes=_size_of(params),
        )
        decision: Decision = ALLOW
        deciding_guard: str | None = None
        outcome = "allow"
        token = _current_exchange.set(exchange)
        try:
            if _not_in_this_version(ctx.method, ctx.protocol_version):
                # A spec method this protocol version does not have (e.g. resources/subscribe at
                # 2026-07-28) is "method not found", whatever its params say.
                raise MCPError(types.METHOD_NOT_FOUND, "Method not found", ctx.method)
            if ctx.method in MODERN_TASK_METHODS and ctx.protocol_version in MODERN_PROTOCOL_VERSIONS:
                _check_task_request(ctx, params)
            try:
                route = self.router.route(ctx.method, params)
            except RoutingError as exc:
                decision, deciding_guard = deny(exc.reason, exc.detail, **exc.data), "router"
                raise DecisionError(decision, exchange) from None
            exchange.server, exchange.target = route.server, route.target
            exchange.exposed_name, exchange.arguments = route.exposed_name, route.arguments

            continuation = self.consent.continuation(exchange) if self.consent is not None else None
            approved = continuation is not None and continuation.approved
            for guard in self._request_guards:
                # _ask, inlined: a coroutine per guard and phase was a measurable share of a call.
                try:
                    decision = await guard.check_request(exchange)
                except Exception as exc:
                    decision = _guard_failed(guard, exchange, exc)
                if decision.verdict is Verdict.HOLD:
                    settled = await self._settle_hold(ctx, guard, decision, exchange, continuation)
                    if isinstance(settled, types.InputRequiredResult):
                        outcome, deciding_guard = "hold", guard.name
                        return settled  # the client asks its human and retries with the answer
                    approved = approved or (decision is not settled and settled.allowed)
                    decision = settled
                if not decision.allowed:
                    deciding_guard = guard.name
                    raise DecisionError(decision, exchange)

            if continuation is not None:
                ctx = replace(ctx, params=_without_our_state(params, continuation.upstream_state))
            exchange.result = await self._call_handler(ctx, call_next, exchange)
            if approved and self.consent is not None:
                _carry_approval(exchange, self.consent)
            exchange.response_bytes = _size_of(exchange.result)

            for guard in self._response_guards:
                try:
                    decision = await guard.check_response(exchange)
                except Exception as exc:
                    decision = _guard_failed(guard, exchange, exc)
                if not decision.allowed:
                    deciding_guard = guard.name
                    raise DecisionError(decision, exchange)
            return exchange.result  # type: ignore[no-any-return]
        except DecisionError as exc:
            outcome = exc.decision.verdict.value
            decision = exc.decision
            raise
        except MCPError as exc:
            outcome = "error"
            data = exc.error.data if isinstance(exc.error.data, dict) else {}
            default = (
                reasons.METHOD_NOT_SUPPORTED if exc.code == types.METHOD_NOT_FOUND else reasons.UPSTREAM_ERROR
            )
            decision = deny(str(data.get("reason", default)), exc.message[:200])
            raise
        finally:
            for guard in self._finishing_guards:
                try:
                    guard.finish(exchange)
                except Exception as exc:  # a broken guard must not lose the audit event
                    logger.error("guard %s failed to finish: %s", guard.name, _one_line(exc))
            self._write_audit(exchange, decision, deciding_guard, outcome)
            _current_exchange.reset(token)

    async def _settle_hold(
        self,
        ctx: ServerRequestContext[Any, Any],
        guard: Guard,
        decision: Decision,
        exchange: Exchange,
        continuation: Continuation | None,
    ) -> Decision | types.InputRequiredResult:
        """Turn a hold into an answer when a human can give one through the client."""
        held = held_by_resolvable_guard(decision, guard)
        if held is None or self.consent is None:
            return decision
        approval_id, prompt, resolve = held
        if continuation is not None:
            if continuation.approved:
                return ALLOW  # a later round of a call the human already approved
            if continuation.answer is not None:
                await resolve(
                    continuation.approval_id or approval_id, continuation.answer, exchange.principal
                )
                if not continuation.answer:
                    return declined("the call was declined")
                return await _ask(guard, guard.check_request, exchange)  # consumes the approval
        if not can_elicit(ctx, exchange):
            return decision  # the hold goes back as an error with its approval id
        if is_legacy(ctx):
            answer = await self.consent.ask_legacy(ctx, prompt)
            await resolve(approval_id, answer, exchange.principal)
            if not answer:
                return declined("the call was declined or not answered in time")
            return await _ask(guard, guard.check_request, exchange)
        return self.consent.input_required(exchange, approval_id, prompt)

    async def _call_handler(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, exchange: Exchange
    ) -> HandlerResult:
        try:
            return await call_next(ctx)
        except MCPError as exc:
            if isinstance(exc, DecisionError):
                raise
            message, raw_data = exc.message, exc.error.data
            for clean in self.error_filters:
                message, raw_data = clean(message, raw_data)
            data = raw_data if isinstance(raw_data, dict) else {}
            data = {**data, "correlation_id": exchange.correlation_id}
            raise MCPError(exc.code, message, data) from None
        except ValidationError as exc:
            # Say where the params are wrong, never echo their values (they may hold secrets).
            where = ", ".join(".".join(str(p) for p in err["loc"]) or "params" for err in exc.errors()[:5])
            raise MCPError(
                types.INVALID_PARAMS,
                f"invalid params: {where}",
                {"reason": reasons.INVALID_REQUEST, "correlation_id": exchange.correlation_id},
            ) from None
        except Exception as exc:
            logger.error(
                "handler for %s failed [%s]: %s", exchange.method, exchange.correlation_id, _one_line(exc)
            )
            raise DecisionError(deny(reasons.INTERNAL_ERROR, "internal error"), exchange) from None

    def _write_audit(self, exchange: Exchange, decision: Decision, guard: str | None, outcome: str) -> None:
        latency_ms = (time.perf_counter() - exchange.started_monotonic) * 1000
        arguments = exchange.arguments  # nothing changes an exchange once it has ended
        extra = dict(exchange.metadata.get("audit", {}))

        def build() -> AuditEvent:
            return AuditEvent(
                time=exchange.started,
                correlation_id=exchange.correlation_id,
                principal=exchange.principal,
                transport=exchange.transport,
                method=exchange.method,
                server=exchange.server,
                target=exchange.target,
                argument_digest=digest_arguments(arguments),
                decision=outcome,
                reason=decision.reason,
                detail=decision.detail,
                latency_ms=latency_ms,
                request_bytes=exchange.request_bytes,
                response_bytes=exchange.response_bytes,
                guard=guard,
                extra=extra,
            )

        try:
            if self._append_later is not None:
                # Building (normalising, digesting the arguments) was about a tenth of a relayed
                # call's work on the event loop; a sink that commits on its own thread builds there.
                self._append_later(build, exchange.correlation_id)
            else:
                self.audit.append(build())
        except Exception as exc:
            # The exchange already happened; losing its record is logged loudly, never silently.
            logger.error("audit write failed [%s]: %s", exchange.correlation_id, _one_line(exc))


def _check_task_request(ctx: ServerRequestContext[Any, Any], params: dict[str, Any]) -> None:
    """The tasks extension's own rules, before routing: the task surface answers only callers that
    declared the extension (-32021), and over HTTP `Mcp-Name` must name the task it addresses
    (-32020; the SDK checks the header only for the core methods)."""
    if not declares_tasks(ctx.session.client_capabilities):
        raise missing_tasks_capability(ctx.method)
    headers = getattr(ctx.request, "headers", None)
    named = headers.get(MCP_NAME_HEADER) if headers is not None else None
    if named is not None and decode_header_value(named.strip()) != params.get("taskId"):
        raise MCPError(
            types.HEADER_MISMATCH,
            f"{MCP_NAME_HEADER} header does not match the request body's 'taskId' parameter",
            {"reason": reasons.INVALID_REQUEST},
        )


def _implementing(guards: tuple[Guard, ...], phase: str) -> tuple[Guard, ...]:
    return tuple(g for g in guards if getattr(type(g), phase, None) is not getattr(BaseGuard, phase))


async def _ask(
    guard: Guard, check: Callable[[Exchange], Awaitable[Decision]], exchange: Exchange
) -> Decision:
    try:
        return await check(exchange)
    except Exception as exc:
        return _guard_failed(guard, exchange, exc)


def _guard_failed(guard: Guard, exchange: Exchange, exc: Exception) -> Decision:
    """Fail closed: a guard that crashes denies, and is logged once without its traceback."""
    logger.error("guard %s failed [%s]: %s", guard.name, exchange.correlation_id, _one_line(exc))
    return deny(reasons.GUARD_FAILED, f"the {guard.name} check failed; the request was refused")


def _without_our_state(params: dict[str, Any], upstream_state: str | None) -> dict[str, Any]:
    """The params the upstream gets: our approval answer and our signed state taken out."""
    cleaned = dict(params)
    cleaned.pop("requestState", None)
    if upstream_state is not None:
        cleaned["requestState"] = upstream_state
    responses = cleaned.get("inputResponses")
    if isinstance(responses, dict):
        responses = {key: value for key, value in responses.items() if key != APPROVAL_KEY}
        if responses:
            cleaned["inputResponses"] = responses
        else:
            cleaned.pop("inputResponses")
    return cleaned


def _carry_approval(exchange: Exchange, consent: ConsentBroker) -> None:
    """An approved call the upstream still needs input for stays approved across the retry."""
    result = exchange.result
    if isinstance(result, dict) and result.get("resultType") == "input_required":
        upstream = result.get("requestState")
        result["requestState"] = consent.state_for(
            exchange,
            approval_id=None,
            approved=True,
            upstream=upstream if isinstance(upstream, str) else None,
        )


def _size_of(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, BaseModel):
        return len(value.model_dump_json(by_alias=True, exclude_none=True))
    try:
        return len(wirejson.dumps(value, default=str))  # exact for integers beyond 64 bits too
    except (TypeError, ValueError):  # not JSON at all (NaN, a cycle)
        return 0


def _one_line(exc: BaseException) -> str:
    """Where an unexpected exception came from, without its message: messages may carry secrets."""
    frame = exc.__traceback__
    while frame is not None and frame.tb_next is not None:
        frame = frame.tb_next
    where = f" at {frame.tb_frame.f_code.co_filename.rsplit('/', 1)[-1]}:{frame.tb_lineno}" if frame else ""
    return f"{type(exc).__name__}{where}"
