"""The stdio front: one MCP client on our stdin/stdout (desktop clients start us as a child).

Everything the gateway logs goes to stderr; stdout is the protocol channel. Input lines are capped
before they are parsed (THREATS E4): an over-long line is discarded up to its newline and answered
as a parse error, and the stream stays usable.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator
from typing import Any, BinaryIO, cast

import anyio
import anyio.to_thread

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import Settings
from mcpwarden.gateway import Gateway
from mcpwarden.guards import build_guards

logger = logging.getLogger(__name__)

# A line that is not JSON: the SDK answers it with -32700 and keeps reading.
_OVERSIZE_MARKER = "{oversize line discarded}\n"


class CappedLineReader:
    """Async iteration over the lines of a binary stream, each at most `max_bytes` long."""

    def __init__(self, stream: BinaryIO, max_bytes: int) -> None:
        self.stream = stream
        self.max_bytes = max_bytes

    def __aiter__(self) -> AsyncIterator[str]:
        return self._lines()

    async def _lines(self) -> AsyncIterator[str]:
        while True:
            line = await anyio.to_thread.run_sync(self._read_line)
            if not line:
                return
            yield line

    def _read_line(self) -> str:
        line = self.stream.readline(self.max_bytes + 1)
        if len(line) > self.max_bytes and not line.endswith(b"\n"):
            # Skip the rest of the line in bounded chunks, never holding it whole.
            while chunk := self.stream.readline(1 << 16):
                if chunk.endswith(b"\n"):
                    break
            logger.warning("discarded a client line over %d bytes", self.max_bytes)
            return _OVERSIZE_MARKER
        return line.decode("utf-8", "replace")


def stdio_principal(ctx: Any) -> str:
    # Whoever can write to our stdin already runs as this OS user: the local user is the principal.
    return "stdio"


def stdio_session_key(ctx: Any, principal: str) -> str:
    return "stdio"


def build_stdio_gateway(settings: Settings, audit: SqliteAuditLog) -> Gateway:
    return Gateway(
        settings,
        transport="stdio",
        guards=build_guards(settings),
        audit=audit,
        principal_of=stdio_principal,
        session_key_of=stdio_session_key,
    )


async def serve_stdio(settings: Settings, stdin: BinaryIO | None = None) -> None:
    from mcp.server.stdio import stdio_server

    settings.state_dir.mkdir(parents=True, exist_ok=True)
    audit = SqliteAuditLog(settings.state_dir / "audit.db")
    gateway = build_stdio_gateway(settings, audit)
    reader = CappedLineReader(stdin or sys.stdin.buffer, settings.gateway.max_request_kb * 1024)
    try:
        async with gateway.running(), stdio_server(stdin=cast(Any, reader)) as (read_stream, write_stream):
            await gateway.server.run(read_stream, write_stream, gateway.initialization_options())
    finally:
        audit.close()
