"""The stdio upstream transport: one child process, newline-delimited JSON-RPC on its stdin/stdout.

We own this transport instead of using the SDK's `stdio_client` because the gateway needs three
things it does not give: a cap on the length of one line (a 1 GB line must not exhaust memory,
THREATS E18), the child's stderr in our log instead of our own stderr (which is the protocol channel
when the gateway itself runs on stdio), and an event that fires the moment the child exits, so
in-flight requests fail at once (E14). The child is started from an argv list, never a shell, in
its own process group with a minimal environment: the gateway's own secrets never reach it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import anyio
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from mcpwarden import reasons, wirejson
from mcpwarden.jsonlines import LineReader, Oversize, stream_chunks
from mcpwarden.upstream.wire import WIRE_ID_PREFIX, result_of

logger = logging.getLogger(__name__)

# Inherited from the gateway's environment; everything else comes from the server's `env` config.
SAFE_ENV_VARS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM")
STDERR_LINE_LIMIT = 4096
_RESPONSE_ID = re.compile(rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
_TERMINATE_GRACE = 2.0
_CANCEL_NOTICE_TIMEOUT = 1.0
_WIRE_ID_PREFIX_BYTES = WIRE_ID_PREFIX.encode()


def child_environment(configured: Mapping[str, str]) -> dict[str, str]:
    """A minimal base from our environment plus exactly what the configuration gives."""
    base = {name: os.environ[name] for name in SAFE_ENV_VARS if name in os.environ}
    return base | dict(configured)


class WireRequests:
    """Requests the fast lane writes to the child as JSON, and their replies, picked out of the
    child's output before the SDK would parse them into models.

    The ids (`mcpwarden-N`) cannot collide with the SDK session's own integer ids. A reply that is
    not for a waiting request (say it came after its timeout) is left to the SDK, which ignores
    it. Timeouts and cancellations send `notifications/cancelled`, as the SDK does; when the child
    exits every waiter fails at once with connection-closed (THREATS E14).
    """

    def __init__(self, write_line: Callable[[bytes], Awaitable[None]]) -> None:
        self._write_line = write_line
        self._count = 0
        self._waiting: dict[str, asyncio.Future[dict[str, Any] | None]] = {}
        self._closed = False

    async def send(self, method: str, params: Mapping[str, Any], timeout: float | None) -> dict[str, Any]:
        """The result of one request; MCPError for an error reply, a timeout or a closed pipe."""
        if self._closed:
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed")
        self._count += 1
        request_id = f"{WIRE_ID_PREFIX}{self._count}"
        loop = asyncio.get_running_loop()
        answered = self._waiting[request_id] = loop.create_future()
        # A timer on the future itself: asyncio.wait_for costs a task-sized detour on every call.
        expiry = loop.call_later(timeout, _expire, answered) if timeout is not None else None
        request = {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params}
        try:
            await self._write_line(wirejson.dumps(request) + b"\n")
            reply = await answered
        except TimeoutError:
            await self._cancel(request_id, "timed out")
            raise MCPError(types.REQUEST_TIMEOUT, f"no answer within {timeout} seconds") from None
        except OSError:  # the pipe broke: the child is gone
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
        except asyncio.CancelledError:
            with anyio.CancelScope(shield=True):
                await self._cancel(request_id, "cancelled by the client")
            raise
        finally:
            if expiry is not None:
                expiry.cancel()
            self._waiting.pop(request_id, None)
        return result_of(reply)

    def take_reply(self, line: bytes) -> bool:
        """True when `line` answers a waiting request (it is then consumed here)."""
        if not self._waiting or _WIRE_ID_PREFIX_BYTES not in line:
            return False
        reply = _reply(line)
        return reply is not None and self.answer(reply.get("id"), reply)

    def answer(self, request_id: Any, reply: dict[str, Any]) -> bool:
        answered = self._waiting.get(request_id) if isinstance(request_id, str) else None
        if answered is None or answered.done():
            return False
        answered.set_result(reply)
        return True

    def close(self) -> None:
        self._closed = True
        for answered in self._waiting.values():
            if not answered.done():
                answered.set_result(None)  # no reply: connection closed

    async def _cancel(self, request_id: str, reason: str) -> None:
        notice = {
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": request_id, "reason": reason},
        }
        with suppress(OSError), anyio.move_on_after(_CANCEL_NOTICE_TIMEOUT):  # a gone child needs none
            await self._write_line(wirejson.dumps(notice) + b"\n")


def _expire(answered: asyncio.Future[Any]) -> None:
    if not answered.done():
        answered.set_exception(TimeoutError())


@dataclass
class StdioChild:
    """What the connection manager needs to know about a running child."""

    argv: tuple[str, ...]
    process: asyncio.subprocess.Process | None = None
    exited: anyio.Event = field(default_factory=anyio.Event)
    wire: WireRequests | None = None

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process is not None else None


@asynccontextmanager
async def stdio_transport(
    command: str,
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: str | None,
    max_line_bytes: int,
    child: StdioChild,
    server_id: str,
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """Start the child and yield (read, write) streams the SDK's ClientSession accepts.

    stdin is asyncio's own stream: every request on the hot path writes one line, and anyio's
    stream wrapper would add two event-loop round trips to each write. stdout is a pipe of ours
    read by a `LineReader`, so a reply to the fast lane reaches its waiter in the callback that
    read it; the SDK's lines queue for `read_stdout`.
    """
    stdout_fd, child_stdout = os.pipe()
    try:
        process = await asyncio.create_subprocess_exec(
            command,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=child_stdout,
            stderr=asyncio.subprocess.PIPE,
            env=child_environment(env),
            cwd=cwd,
            start_new_session=True,  # our own process group, so a kill reaches grandchildren too
        )
    except BaseException:
        os.close(stdout_fd)
        raise
    finally:
        os.close(child_stdout)  # the child holds its own copy: end of file comes when it exits
    assert process.stdin is not None and process.stderr is not None
    stdin, stderr = process.stdin, process.stderr
    child.process = process

    async def write_line(data: bytes) -> None:
        stdin.write(data)
        await stdin.drain()

    wire = child.wire = WireRequests(write_line)
    lines = LineReader(max_line_bytes, wire.take_reply)
    try:
        stdout, _ = await asyncio.get_running_loop().connect_read_pipe(
            lambda: lines, os.fdopen(stdout_fd, "rb", buffering=0)
        )
    except BaseException:  # cancelled while connecting, say: the child must not outlive us
        with anyio.CancelScope(shield=True):
            await _stop(process, server_id)
        raise
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)

    async def read_stdout() -> None:
        try:
            async with read_send:
                while (line := await lines.next_line()) is not None:
                    if isinstance(line, Oversize):
                        reply = _oversize_reply(line.head, max_line_bytes, server_id)
                        if not (isinstance(reply, SessionMessage) and _answers_wire(wire, reply)):
                            await read_send.send(reply)
                    else:
                        await read_send.send(_parse_line(line, server_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            pass
        finally:
            wire.close()
            child.exited.set()

    async def read_stderr() -> None:
        pending = b""
        with suppress(OSError):
            async for chunk in stream_chunks(stderr):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    _log_stderr(server_id, line)
                if len(pending) > STDERR_LINE_LIMIT:
                    _log_stderr(server_id, pending)
                    pending = b""
        if pending:
            _log_stderr(server_id, pending)

    async def write_stdin() -> None:
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async with write_recv:
                async for message in write_recv:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await write_line(data.encode() + b"\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(read_stderr)
        tg.start_soon(write_stdin)
        try:
            yield read_recv, write_send
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process, server_id)
                stdout.close()
                for stream in (read_recv, write_send, read_send, write_recv):
                    await stream.aclose()
            tg.cancel_scope.cancel()


def _parse_line(line: bytes, server_id: str) -> SessionMessage | Exception:
    # The SDK's parser would take a reply carrying both a result and an error as a result; such a
    # reply is malformed (JSON-RPC 2.0 5.) and must fail its request. The byte test keeps the
    # extra parse off the hot path.
    if b'"error"' in line and b'"result"' in line:
        reply = _reply(line)
        if (
            reply is not None
            and "result" in reply
            and "error" in reply
            and (reply_id := _id_of(reply)) is not None
        ):
            logger.warning("upstream %s sent a reply with both result and error", server_id)
            return _error_reply(reply_id, "the server sent an invalid reply", reasons.UPSTREAM_INVALID_REPLY)
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        # The content may be anything the child printed; log its size, not its text.
        logger.warning(
            "upstream %s wrote a line that is not a JSON-RPC message (%d bytes)", server_id, len(line)
        )
        reply_id = _reply_id(line)
        if reply_id is None:
            return exc
        # A malformed reply (e.g. both result and error) still names the request it answers:
        # fail that request now instead of letting it wait for a timeout.
        return _error_reply(reply_id, "the server sent an invalid reply", reasons.UPSTREAM_INVALID_REPLY)


def _reply(line: bytes) -> dict[str, Any] | None:
    """The line as a reply (a JSON object without a method), or None."""
    try:
        body = wirejson.loads(line)
    except ValueError:
        return None
    return body if isinstance(body, dict) and "method" not in body else None


def _reply_id(line: bytes) -> str | int | None:
    reply = _reply(line)
    return _id_of(reply) if reply is not None else None


def _id_of(reply: dict[str, Any]) -> str | int | None:
    reply_id = reply.get("id")
    if isinstance(reply_id, bool) or not isinstance(reply_id, str | int):
        return None
    return reply_id


def _error_reply(request_id: str | int, message: str, reason: str) -> SessionMessage:
    error = types.ErrorData(
        code=types.INTERNAL_ERROR, message=message, data={"reason": reason, "source": "mcpwarden"}
    )
    return SessionMessage(types.JSONRPCError(jsonrpc="2.0", id=request_id, error=error))


def _oversize_reply(head: bytes, limit: int, server_id: str) -> SessionMessage | Exception:
    """Answer the request an over-long line belonged to with an error, so its caller is not left
    waiting; the connection itself stays up."""
    logger.warning("upstream %s wrote a line over %d bytes; it was discarded", server_id, limit)
    match = _RESPONSE_ID.search(head)
    try:
        request_id = wirejson.loads(match.group(1)) if match is not None else None
    except ValueError:  # a malformed string id: no request of ours
        request_id = None
    if not isinstance(request_id, str | int):
        return ValueError(f"discarded a line over {limit} bytes")
    return _error_reply(
        request_id, f"the server's answer is over the {limit}-byte limit", reasons.RESULT_TOO_LARGE
    )


def _answers_wire(wire: WireRequests, reply: SessionMessage) -> bool:
    """Hand a synthesised error reply to the fast lane's waiter when it is for one of its requests."""
    message = reply.message
    if not isinstance(message, types.JSONRPCError):
        return False
    return wire.answer(message.id, message.model_dump(by_alias=True, mode="json", exclude_none=True))


def _log_stderr(server_id: str, line: bytes) -> None:
    text = line[:STDERR_LINE_LIMIT].decode("utf-8", "replace").rstrip()
    if text:
        logger.info("upstream %s stderr: %s", server_id, text)


async def _stop(process: asyncio.subprocess.Process, server_id: str) -> None:
    """Close stdin, give the child a grace period, then signal its whole process group."""
    if process.stdin is not None:
        with suppress(Exception):
            process.stdin.close()
    with anyio.move_on_after(_TERMINATE_GRACE):
        await process.wait()
        return
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with suppress(ProcessLookupError, PermissionError):
            if sys.platform != "win32":
                os.killpg(process.pid, sig)
            else:  # pragma: no cover
                process.kill()
        with anyio.move_on_after(_TERMINATE_GRACE):
            await process.wait()
            return
    logger.warning("upstream %s (pid %d) did not exit after SIGKILL", server_id, process.pid)
