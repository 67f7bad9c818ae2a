"""Line framing with a cap: lines across chunks, over-long lines dropped with their head kept."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mcpwarden.jsonlines import HEAD_BYTES, Oversize, split_lines

pytestmark = pytest.mark.anyio


async def _lines(chunks: list[bytes], cap: int) -> list[bytes | Oversize]:
    async def source() -> AsyncIterator[bytes]:
        for chunk in chunks:
            yield chunk

    return [line async for line in split_lines(source(), cap)]


async def test_lines_split_across_and_within_chunks() -> None:
    assert await _lines([b"ab", b"c\nd", b"\n\ne\nf"], 100) == [b"abc", b"d", b"", b"e"]


async def test_a_line_at_the_cap_passes_and_one_over_is_dropped_with_its_head() -> None:
    assert await _lines([b"x" * 10 + b"\n"], 10) == [b"x" * 10]
    assert await _lines([b"y" * 11 + b"\nnext\n"], 10) == [Oversize(b"y" * 11), b"next"]


async def test_a_huge_line_is_never_held_whole() -> None:
    head = b'{"jsonrpc":"2.0","id":7,"result":"' + b"z" * 1000
    chunks = [head, *([b"z" * 4096] * 50), b'"}\n{"ok":1}\n']
    lines = await _lines(chunks, 2048)
    assert lines == [Oversize(head[:HEAD_BYTES]), b'{"ok":1}']
