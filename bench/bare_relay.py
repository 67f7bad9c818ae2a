"""A bare stdio JSON relay, the floor for `bench/overhead.py`: what any relay in Python costs.

It starts the server given on its command line and passes each line both ways, parsed and
re-serialised with orjson (as a relay that looks at messages must), on the same event loop
(uvloop) the gateway uses: no guards, no audit, no routing, no checks. Not a product: a yardstick.

    python bench/bare_relay.py python bench/trivial_server.py
"""

from __future__ import annotations

import asyncio
import sys

import orjson
import uvloop


async def relay(reader: asyncio.StreamReader, write: asyncio.WriteTransport | asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        write.write(orjson.dumps(orjson.loads(line)) + b"\n")


async def main(argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    child = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24
    )
    assert child.stdin is not None and child.stdout is not None
    client = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client), sys.stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    await asyncio.gather(relay(client, child.stdin), relay(child.stdout, transport))


if __name__ == "__main__":
    uvloop.run(main(sys.argv[1:]))
