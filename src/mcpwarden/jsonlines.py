"""Newline-delimited JSON framing with a cap on one line, for both ends of a stdio pipe.

A peer may write a line of any length (THREATS E4, E18). We never hold more than the cap of one
line: past it, the line's first bytes are kept (so its request id can still be answered) and the
rest is dropped up to its newline.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

HEAD_BYTES = 256  # of a discarded line: enough to find its id
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line over the cap, discarded; `head` is its beginning."""

    head: bytes


class LineSplitter:
    """The lines (without their newline) in a stream of chunks, fed one chunk at a time."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self._buffer = bytearray()
        self._discarding: bytes | None = None  # the head of an over-long line being skipped

    def feed(self, chunk: bytes) -> list[bytes | Oversize]:
        buffer = self._buffer
        if chunk and not buffer and self._discarding is None and chunk.find(b"\n") == len(chunk) - 1:
            # One whole line, as most reads of a request-and-answer pipe are: no copying.
            line = chunk[:-1]
            return [line if len(line) <= self.max_line_bytes else Oversize(line[:HEAD_BYTES])]
        lines: list[bytes | Oversize] = []
        start = 0
        end = len(buffer)
        buffer += chunk
        while (newline := buffer.find(b"\n", end)) >= 0:
            line = bytes(buffer[start:newline])
            start = end = newline + 1
            if self._discarding is not None:
                lines.append(Oversize(self._discarding))
                self._discarding = None
            elif len(line) > self.max_line_bytes:
                lines.append(Oversize(line[:HEAD_BYTES]))
            else:
                lines.append(line)
        del buffer[:start]
        if len(buffer) > self.max_line_bytes:
            if self._discarding is None:
                self._discarding = bytes(buffer[:HEAD_BYTES])
            buffer.clear()
        return lines


async def stream_chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """What arrives on `reader`, as it arrives, until end of file."""
    while chunk := await reader.read(CHUNK_BYTES):
        yield chunk


class LineReader(asyncio.Protocol):
    """A pipe's non-blank lines, split as they arrive and held to a cap.

    `take` sees each line first, in the callback that read it: a line it handles (returns True) is
    done there, without waking a task, which is what a relayed call's latency is made of. The
    other lines, and over-long ones, queue for `next_line`; reading pauses while `MAX_QUEUED`
    wait, so a peer that writes faster than the gateway reads is slowed, never buffered without
    bound. `feed` and `end` also serve input that is read some other way (a thread).
    """

    MAX_QUEUED = 64

    def __init__(self, max_line_bytes: int, take: Callable[[bytes], bool] | None = None) -> None:
        self._splitter = LineSplitter(max_line_bytes)
        self._take = take
        self._queued: deque[bytes | Oversize] = deque()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None
        self.ended = asyncio.Event()
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self.feed(data)

    def eof_received(self) -> bool:
        self.end()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.end()

    def feed(self, chunk: bytes) -> None:
        take = self._take
        for line in self._splitter.feed(chunk):
            if isinstance(line, bytes) and (not line.strip() or (take is not None and take(line))):
                continue
            self._queued.append(line)
        if self._queued:
            self._arrived.set()
            if len(self._queued) >= self.MAX_QUEUED and not self.paused:
                self.paused = True
                self._room.clear()
                if isinstance(self._transport, asyncio.ReadTransport):
                    self._transport.pause_reading()

    def end(self) -> None:
        """No more input (an unterminated last line is dropped)."""
        self.ended.set()
        self._arrived.set()

    async def next_line(self) -> bytes | Oversize | None:
        """The next line `take` left, or None once the input has ended and every line is read."""
        while not self._queued:
            if self.ended.is_set():
                return None
            self._arrived.clear()
            await self._arrived.wait()
        line = self._queued.popleft()
        if self.paused and len(self._queued) < self.MAX_QUEUED // 2:
            self.paused = False
            self._room.set()
            if isinstance(self._transport, asyncio.ReadTransport) and not self._transport.is_closing():
                self._transport.resume_reading()
        return line

    async def room(self) -> None:
        """Wait while reading is paused (for input fed by hand)."""
        while self.paused:
            await self._room.wait()
