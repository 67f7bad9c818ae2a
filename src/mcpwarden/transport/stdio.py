"""The stdio front: one MCP client on our stdin/stdout (desktop clients start us as a child).

We read and write the pipe ourselves rather than through the SDK's `stdio_server`, which drops
malformed input silently: a client that sends broken JSON must get `-32700`, a batch or a wrong
shape `-32600`, and the stream must stay usable (THREATS E1-E3). Lines are capped before parsing
(E4): an over-long line is skipped up to its newline, never held whole. Everything the gateway logs
goes to stderr; stdout carries only protocol messages.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from mcpwarden.audit.log import SqliteAuditLog, audit_db_path
from mcpwarden.config import Settings
from mcpwarden.exchange import Identity
from mcpwarden.gateway import Gateway
from mcpwarden.transport.wire import WireError, parse_message

logger = logging.getLogger(__name__)

_SKIP_CHUNK = 1 << 16
_TOO_LARGE = WireError(types.INVALID_REQUEST, "Invalid request: message too large")


def classify_line(line: bytes) -> SessionMessage | bytes:
    """A message for the session, or the error line to answer a malformed one with."""
    body, error = parse_message(line)
    if error is not None:
        return error.to_json() + b"\n"
    try:
        return SessionMessage(types.jsonrpc_message_adapter.validate_python(body, by_name=False))
    except ValidationError:
        request_id = body.get("id") if body is not None else None
        return (
            WireError(
                types.INVALID_REQUEST, "Invalid request: not a JSON-RPC 2.0 message", request_id
            ).to_json()
            + b"\n"
        )


class _LineReader:
    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes

    def read(self) -> bytes | None:
        """The next line; an over-long one comes back as b"" after being skipped; None at EOF."""
        line = self.stream.readline(self.max_bytes + 1)
        if not line:
            return None
        if len(line) > self.max_bytes and not line.endswith(b"\n"):
            while chunk := self.stream.readline(_SKIP_CHUNK):
                if chunk.endswith(b"\n"):
                    break
            return b""
        return line


@asynccontextmanager
async def stdio_streams(
    stdin: BinaryIO, stdout: BinaryIO, max_line_bytes: int
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """(read, write) streams for `Server.run`, speaking newline-delimited JSON-RPC on the pipes."""
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)
    out_send, out_recv = anyio.create_memory_object_stream[bytes](64)
    reader = _LineReader(stdin, max_line_bytes)

    async def read_loop() -> None:
        async with read_send, out_send:
            while (line := await anyio.to_thread.run_sync(reader.read, abandon_on_cancel=True)) is not None:
                if not line:
                    logger.warning("discarded a client line over %d bytes", max_line_bytes)
                    await out_send.send(_TOO_LARGE.to_json() + b"\n")
                    continue
                if not line.strip():
                    continue
                classified = classify_line(line)
                if isinstance(classified, bytes):
                    await out_send.send(classified)
                else:
                    await read_send.send(classified)

    async def encode_loop() -> None:
        async with write_recv:
            async for message in write_recv:
                data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                await out_send.send(data.encode() + b"\n")

    def write(data: bytes) -> None:
        stdout.write(data)
        stdout.flush()

    async def write_loop() -> None:
        async with out_recv:
            async for data in out_recv:
                await anyio.to_thread.run_sync(write, data)

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_loop)
        tg.start_soon(encode_loop)
        tg.start_soon(write_loop)
        try:
            yield read_recv, write_send
        finally:
            tg.cancel_scope.cancel()


STDIO_IDENTITY = Identity("stdio", method="stdio")


def stdio_principal(ctx: Any) -> Identity:
    # Whoever can write to our stdin already runs as this OS user: the local user is the principal.
    return STDIO_IDENTITY


def stdio_session_key(ctx: Any, principal: str) -> str:
    return "stdio"


def build_stdio_gateway(settings: Settings, audit: SqliteAuditLog) -> Gateway:
    return Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=stdio_principal,
        session_key_of=stdio_session_key,
    )


async def serve_stdio(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    audit = SqliteAuditLog(audit_db_path(settings.state_dir))
    gateway = build_stdio_gateway(settings, audit)
    # Children must never read our stdin or write our stdout: they get pipes of their own, and
    # anything else that prints goes to stderr because we keep the real stdout to ourselves.
    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr
    try:
        async with (
            gateway.running(),
            stdio_streams(sys.stdin.buffer, protocol_out, settings.gateway.max_request_kb * 1024) as (
                read_stream,
                write_stream,
            ),
        ):
            await gateway.server.run(read_stream, write_stream, gateway.initialization_options())
    finally:
        audit.close()
