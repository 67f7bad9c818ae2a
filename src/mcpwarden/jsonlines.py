"""Newline-delimited JSON framing with a cap on one line, for both ends of a stdio pipe.

A peer may write a line of any length (THREATS E4, E18). We never hold more than the cap of one
line: past it, the line's first bytes are kept (so its request id can still be answered) and the
rest is dropped up to its newline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass

HEAD_BYTES = 256  # of a discarded line: enough to find its id
CHUNK_BYTES = 1 << 16


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line over the cap, discarded; `head` is its beginning."""

    head: bytes


async def split_lines(chunks: AsyncIterable[bytes], max_line_bytes: int) -> AsyncIterator[bytes | Oversize]:
    """The lines (without their newline) in a stream of chunks; an unterminated tail is dropped."""
    buffer = bytearray()
    discarding: bytes | None = None  # the head of an over-long line being skipped
    async for chunk in chunks:
        start = 0
        end = len(buffer)
        buffer += chunk
        while (newline := buffer.find(b"\n", end)) >= 0:
            line = bytes(buffer[start:newline])
            start = end = newline + 1
            if discarding is not None:
                yield Oversize(discarding)
                discarding = None
            elif len(line) > max_line_bytes:
                yield Oversize(line[:HEAD_BYTES])
            else:
                yield line
        del buffer[:start]
        if len(buffer) > max_line_bytes:
            if discarding is None:
                discarding = bytes(buffer[:HEAD_BYTES])
            buffer.clear()


async def stream_chunks(reader: asyncio.StreamReader) -> AsyncIterator[bytes]:
    """What arrives on `reader`, as it arrives, until end of file."""
    while chunk := await reader.read(CHUNK_BYTES):
        yield chunk
