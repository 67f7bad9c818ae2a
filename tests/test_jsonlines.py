"""Line framing with a cap: lines across chunks, over-long lines dropped with their head kept."""

from __future__ import annotations

import asyncio

from mcpwarden.jsonlines import HEAD_BYTES, LineReader, LineSplitter, Oversize


def _lines(chunks: list[bytes], cap: int) -> list[bytes | Oversize]:
    splitter = LineSplitter(cap)
    return [line for chunk in chunks for line in splitter.feed(chunk)]


def test_lines_split_across_and_within_chunks() -> None:
    assert _lines([b"ab", b"c\nd", b"\n\ne\nf"], 100) == [b"abc", b"d", b"", b"e"]


def test_a_line_at_the_cap_passes_and_one_over_is_dropped_with_its_head() -> None:
    assert _lines([b"x" * 10 + b"\n"], 10) == [b"x" * 10]
    assert _lines([b"y" * 11 + b"\nnext\n"], 10) == [Oversize(b"y" * 11), b"next"]


def test_a_huge_line_is_never_held_whole() -> None:
    head = b'{"jsonrpc":"2.0","id":7,"result":"' + b"z" * 1000
    chunks = [head, *([b"z" * 4096] * 50), b'"}\n{"ok":1}\n']
    lines = _lines(chunks, 2048)
    assert lines == [Oversize(head[:HEAD_BYTES]), b'{"ok":1}']


def test_one_whole_line_per_chunk_is_split_like_any_other() -> None:
    assert _lines([b"abc\n", b"\n", b"d\n"], 100) == [b"abc", b"", b"d"]
    assert _lines([b"x" * 11 + b"\n", b"ok\n"], 10) == [Oversize(b"x" * 11), b"ok"]
    assert _lines([b"head", b"tail\n"], 100) == [b"headtail"]


def test_the_reader_offers_each_line_first_and_queues_what_is_left() -> None:
    async def main() -> list[bytes | Oversize | None]:
        taken: list[bytes] = []

        def take_fast(line: bytes) -> bool:
            if line.startswith(b"fast"):
                taken.append(line)
                return True
            return False

        reader = LineReader(10, take_fast)
        reader.feed(b"fast 1\n  \nslow 1\n" + b"y" * 20 + b"\nfast 2\nslow 2\nunterminated")
        reader.end()
        queued = [await reader.next_line() for _ in range(4)]
        assert taken == [b"fast 1", b"fast 2"]
        return queued

    assert asyncio.run(main()) == [b"slow 1", Oversize(b"y" * 20), b"slow 2", None]


def test_the_reader_pauses_while_its_queue_is_full_and_resumes_as_it_drains() -> None:
    async def main() -> None:
        reader = LineReader(100)
        reader.feed(b"line\n" * LineReader.MAX_QUEUED)
        assert reader.paused
        for _ in range(LineReader.MAX_QUEUED // 2 + 1):
            await reader.next_line()
        assert not reader.paused
        await asyncio.wait_for(reader.room(), 1)

    asyncio.run(main())
