"""The stdio upstream transport: one child process, newline-delimited JSON-RPC on its stdin/stdout.

We own this transport instead of using the SDK's `stdio_client` because the gateway needs three
things it does not give: a cap on the length of one line (a 1 GB line must not exhaust memory,
THREATS E18), the child's stderr in our log instead of our own stderr (which is the protocol channel
when the gateway itself runs on stdio), and an event that fires the moment the child exits, so
in-flight requests fail at once (E14). The child is started from an argv list, never a shell, in
its own process group with a minimal environment: the gateway's own secrets never reach it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import anyio
import anyio.abc
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage

from mcpwarden import reasons
from mcpwarden.jsonlines import Oversize, split_lines

logger = logging.getLogger(__name__)

# Inherited from the gateway's environment; everything else comes from the server's `env` config.
SAFE_ENV_VARS = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ", "TMPDIR", "USER", "LOGNAME", "TERM")
STDERR_LINE_LIMIT = 4096
_RESPONSE_ID = re.compile(rb'^\s*\{\s*"jsonrpc"\s*:\s*"2\.0"\s*,\s*"id"\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+)')
_TERMINATE_GRACE = 2.0


def child_environment(configured: Mapping[str, str]) -> dict[str, str]:
    """A minimal base from our environment plus exactly what the configuration gives."""
    base = {name: os.environ[name] for name in SAFE_ENV_VARS if name in os.environ}
    return base | dict(configured)


@dataclass
class StdioChild:
    """What the connection manager needs to know about a running child."""

    argv: tuple[str, ...]
    process: anyio.abc.Process | None = None
    exited: anyio.Event = field(default_factory=anyio.Event)

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
    """Start the child and yield (read, write) streams the SDK's ClientSession accepts."""
    process = await anyio.open_process(
        [command, *args],
        env=child_environment(env),
        cwd=cwd,
        start_new_session=True,  # our own process group, so a kill reaches grandchildren too
    )
    child.process = process
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)

    async def read_stdout() -> None:
        assert process.stdout is not None
        try:
            async with read_send:
                async for line in split_lines(process.stdout, max_line_bytes):
                    if isinstance(line, Oversize):
                        await read_send.send(_oversize_reply(line.head, max_line_bytes, server_id))
                    elif line.strip():
                        await read_send.send(_parse_line(line, server_id))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass
        finally:
            child.exited.set()

    async def read_stderr() -> None:
        assert process.stderr is not None
        pending = b""
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            async for chunk in process.stderr:
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
        assert process.stdin is not None
        with suppress(anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            async with write_recv:
                async for message in write_recv:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await process.stdin.send(data.encode() + b"\n")

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_stdout)
        tg.start_soon(read_stderr)
        tg.start_soon(write_stdin)
        try:
            yield read_recv, write_send
        finally:
            with anyio.CancelScope(shield=True):
                await _stop(process, server_id)
                for stream in (read_recv, write_send, read_send, write_recv):
                    await stream.aclose()
            tg.cancel_scope.cancel()


def _parse_line(line: bytes, server_id: str) -> SessionMessage | Exception:
    # The SDK's parser would take a reply carrying both a result and an error as a result; such a
    # reply is malformed (JSON-RPC 2.0 5.) and must fail its request. The byte test keeps the
    # extra parse off the hot path.
    if b'"error"' in line and b'"result"' in line and (reply_id := _reply_id(line)) is not None:
        body = json.loads(line)
        if "result" in body and "error" in body:
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


def _reply_id(line: bytes) -> str | int | None:
    try:
        body = json.loads(line)
    except ValueError:
        return None
    if not isinstance(body, dict) or "method" in body:
        return None
    reply_id = body.get("id")
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
    if match is None:
        return ValueError(f"discarded a line over {limit} bytes")
    request_id = json.loads(match.group(1))
    return _error_reply(
        request_id, f"the server's answer is over the {limit}-byte limit", reasons.RESULT_TOO_LARGE
    )


def _log_stderr(server_id: str, line: bytes) -> None:
    text = line[:STDERR_LINE_LIMIT].decode("utf-8", "replace").rstrip()
    if text:
        logger.info("upstream %s stderr: %s", server_id, text)


async def _stop(process: anyio.abc.Process, server_id: str) -> None:
    """Close stdin, give the child a grace period, then signal its whole process group."""
    if process.stdin is not None:
        with suppress(Exception):
            await process.stdin.aclose()
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
