"""The stdio front: one MCP client on our stdin/stdout (desktop clients start us as a child).

We read and write the pipe ourselves rather than through the SDK's `stdio_server`, which drops
malformed input silently: a client that sends broken JSON must get `-32700`, a batch or a wrong
shape `-32600`, and the stream must stay usable (THREATS E1-E3). Lines are capped before parsing
(E4): an over-long line is skipped up to its newline, never held whole. Everything the gateway logs
goes to stderr; stdout carries only protocol messages. The pipes are watched by the event loop, and
a modern client's plain `tools/call` is offered to the fast lane (transport/fastlane.py) before the
SDK parses it.
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any, BinaryIO

import anyio
import anyio.to_thread
import mcp_types as types
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from mcpwarden.audit.writer import GroupCommit
from mcpwarden.config import Settings
from mcpwarden.exchange import Identity
from mcpwarden.gateway import Gateway
from mcpwarden.jsonlines import CHUNK_BYTES, LineReader, Oversize
from mcpwarden.pipeline import AuditSink
from mcpwarden.transport.fastlane import FastCall, FastLane, encode_response
from mcpwarden.transport.wire import WireError, parse_message
from mcpwarden.wirejson import loads_exact

logger = logging.getLogger(__name__)

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


@asynccontextmanager
async def stdio_streams(
    stdin: BinaryIO, stdout: BinaryIO, max_line_bytes: int, fast_lane: FastLane | None = None
) -> AsyncIterator[
    tuple[MemoryObjectReceiveStream[SessionMessage | Exception], MemoryObjectSendStream[SessionMessage]]
]:
    """(read, write) streams for `Server.run`, speaking newline-delimited JSON-RPC on the pipes."""
    read_send, read_recv = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    write_send, write_recv = anyio.create_memory_object_stream[SessionMessage](16)
    out_send, out_recv = anyio.create_memory_object_stream[bytes](64)

    async with _line_writer(stdout) as write, anyio.create_task_group() as tg:
        lane = _StdioFastLane(fast_lane, write) if fast_lane is not None else None
        lines = LineReader(max_line_bytes, lane.take if lane is not None else None)

        async def read_loop() -> None:
            try:
                async with read_send, out_send:
                    while (line := await lines.next_line()) is not None:
                        if isinstance(line, Oversize):
                            logger.warning("discarded a client line over %d bytes", max_line_bytes)
                            await out_send.send(_TOO_LARGE.to_json() + b"\n")
                            continue
                        classified = classify_line(line)
                        if isinstance(classified, bytes):
                            await out_send.send(classified)
                        else:
                            await read_send.send(classified)
                    if lane is not None:
                        # The client closed its input: what it already asked is still answered
                        # (a half-closed pipe, or a file of requests), each call within its timeout.
                        await lane.finish()
            finally:
                if lane is not None:
                    lane.stop()

        async def encode_loop() -> None:
            async with write_recv:
                async for message in write_recv:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    await out_send.send(data.encode() + b"\n")

        async def write_loop() -> None:
            async with out_recv:
                async for data in out_recv:
                    await write(data)

        tg.start_soon(_read_into, stdin, lines)
        tg.start_soon(read_loop)
        tg.start_soon(encode_loop)
        tg.start_soon(write_loop)
        try:
            yield read_recv, write_send
        finally:
            tg.cancel_scope.cancel()


async def _read_into(stream: BinaryIO, lines: LineReader) -> None:
    """Feed what arrives on `stream` to `lines`: from the event loop when it can watch the
    descriptor (a pipe, a socket or a terminal), else from a worker thread (a regular file, or an
    object without one)."""
    transport: asyncio.BaseTransport | None = None
    if _watchable(stream):
        with suppress(ValueError, OSError):
            transport, _ = await asyncio.get_running_loop().connect_read_pipe(lambda: lines, stream)
    if transport is None:
        read = getattr(stream, "read1", stream.read)
        while chunk := await anyio.to_thread.run_sync(read, CHUNK_BYTES, abandon_on_cancel=True):
            lines.feed(chunk)
            await lines.room()
        lines.end()
        return
    try:
        await lines.ended.wait()  # the pipe feeds `lines` from the event loop's callbacks
    finally:
        transport.close()


@asynccontextmanager
async def _line_writer(stream: BinaryIO) -> AsyncIterator[Callable[[bytes], Awaitable[None]]]:
    """A writer for `stream`: non-blocking on the event loop for a pipe or socket of our own; in a
    worker thread otherwise. Making a descriptor non-blocking changes it for every holder of the
    same open file, so a stdout that is also our stderr (2>&1) keeps blocking writes, or a log line
    could fail when the client reads slowly."""
    writer: asyncio.StreamWriter | None = None
    if _watchable(stream) and not _shares_stderr(stream):
        loop = asyncio.get_running_loop()
        with suppress(ValueError, OSError, io.UnsupportedOperation):
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, stream)
            writer = asyncio.StreamWriter(transport, protocol, None, loop)
    if writer is None:

        def write_blocking(data: bytes) -> None:
            stream.write(data)
            stream.flush()

        async def write_in_thread(data: bytes) -> None:
            await anyio.to_thread.run_sync(write_blocking, data)

        yield write_in_thread
        return

    async def write(data: bytes) -> None:
        assert writer is not None
        writer.write(data)
        await writer.drain()

    try:
        yield write
    finally:
        writer.close()


def _watchable(stream: BinaryIO) -> bool:
    """Whether the event loop can watch `stream`: a pipe, a socket or a terminal. It must be asked
    first: uvloop accepts a regular file (`mcpwarden stdio < requests.jsonl`, `> answers.jsonl`),
    and libuv then aborts the whole process when epoll refuses the descriptor."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (ValueError, OSError, io.UnsupportedOperation):
        return False  # no descriptor at all
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode)


def _shares_stderr(stream: BinaryIO) -> bool:
    try:
        ours, theirs = os.fstat(stream.fileno()), os.fstat(sys.stderr.fileno())
    except (ValueError, OSError, io.UnsupportedOperation):
        return True  # cannot tell: stay with blocking writes
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


class _StdioFastLane:
    """Offers the fast lane each line of a stdio client that never opened a legacy session.

    A client that sends `initialize` is a legacy (2025) session, whose state the SDK holds: from
    then on every line goes to the SDK. Each fast call is its own task, answered straight onto the
    pipe; a cancellation of one stops it here (the upstream request is cancelled in turn) and, as
    the spec asks, gets no response.
    """

    def __init__(self, lane: FastLane, write: Callable[[bytes], Awaitable[None]]) -> None:
        self.lane = lane
        self.write = write
        self.legacy = False
        self.in_flight: dict[str | int, asyncio.Task[None]] = {}
        self.refusals: set[asyncio.Task[None]] = set()

    def take(self, line: bytes) -> bool:
        """True when the line was handled here; False sends it down the SDK path."""
        if self.legacy:
            return False
        body = loads_exact(line)
        call = self.lane.accept(body) if body is not None else None
        if call is not None and call.request_id in self.in_flight:
            # THREATS E8: a second request under an id still in flight is refused, not run.
            refusal = asyncio.get_running_loop().create_task(self._refuse_duplicate())
            self.refusals.add(refusal)  # the loop holds tasks weakly
            refusal.add_done_callback(self.refusals.discard)
            return True
        if call is not None:
            self.in_flight[call.request_id] = asyncio.get_running_loop().create_task(self._answer(call))
            return True
        if body is None:  # not for the fast lane; the standard reading still tells an initialize
            body, _ = parse_message(line)
        if not isinstance(body, dict):
            return False  # the SDK path answers malformed JSON with the proper error
        if body.get("method") == "initialize":
            self.legacy = True
        elif body.get("method") == "notifications/cancelled":
            params = body.get("params")
            request_id = params.get("requestId") if isinstance(params, dict) else None
            if isinstance(request_id, str | int) and request_id in self.in_flight:
                self.in_flight[request_id].cancel()
                return True
        return False

    async def finish(self) -> None:
        """Wait until every call in flight is answered."""
        while self.in_flight:
            await asyncio.wait(list(self.in_flight.values()))

    def stop(self) -> None:
        for task in self.in_flight.values():
            task.cancel()

    async def _refuse_duplicate(self) -> None:
        duplicate = WireError(types.INVALID_REQUEST, "Invalid request: this id is already in flight")
        with suppress(OSError):
            await self.write(duplicate.to_json() + b"\n")

    async def _answer(self, call: FastCall) -> None:
        try:
            response = await self.lane.answer(call)
            with suppress(OSError):  # the client went away
                await self.write(encode_response(response))
        finally:
            self.in_flight.pop(call.request_id, None)


STDIO_IDENTITY = Identity("stdio", method="stdio")


def stdio_principal(ctx: Any) -> Identity:
    # Whoever can write to our stdin already runs as this OS user: the local user is the principal.
    return STDIO_IDENTITY


def stdio_session_key(ctx: Any, principal: str) -> str:
    return "stdio"


def build_stdio_gateway(settings: Settings, audit: AuditSink) -> Gateway:
    return Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=stdio_principal,
        session_key_of=stdio_session_key,
    )


async def serve_stdio(settings: Settings) -> None:
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    audit = GroupCommit.for_settings(settings)
    gateway = build_stdio_gateway(settings, audit)
    # Children must never read our stdin or write our stdout: they get pipes of their own, and
    # anything else that prints goes to stderr because we keep the real stdout to ourselves.
    protocol_out = sys.stdout.buffer
    sys.stdout = sys.stderr
    try:
        async with (
            gateway.running(),
            stdio_streams(
                sys.stdin.buffer, protocol_out, settings.gateway.max_request_kb * 1024, FastLane(gateway)
            ) as (read_stream, write_stream),
        ):
            await gateway.server.run(read_stream, write_stream, gateway.initialization_options())
    finally:
        audit.close()
