"""Bare JSON relays, the floors for `bench/overhead.py`: what any relay in Python costs.

stdio: starts the server given on its command line and passes each line both ways.
HTTP (`--http UPSTREAM_URL --port N`): a raw ASGI app on uvicorn (httptools, uvloop) that POSTs
each request body to the upstream with aiohttp and returns the answer, as the gateway's HTTP front
and fast lane do with the same libraries.

Both parse and re-serialise every message with orjson (as a relay that looks at messages must), on
the event loop the gateway uses: no guards, no audit, no routing, no checks, no authentication.
Not a product: a yardstick.

    python bench/bare_relay.py python bench/trivial_server.py
    python bench/bare_relay.py --http http://127.0.0.1:8001/mcp --port 8002
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import aiohttp
import orjson
import uvicorn
import uvloop

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


async def relay(reader: asyncio.StreamReader, write: asyncio.WriteTransport | asyncio.StreamWriter) -> None:
    while line := await reader.readline():
        write.write(orjson.dumps(orjson.loads(line)) + b"\n")


async def stdio_main(argv: list[str]) -> None:
    loop = asyncio.get_running_loop()
    child = await asyncio.create_subprocess_exec(
        *argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, limit=1 << 24
    )
    assert child.stdin is not None and child.stdout is not None
    client = asyncio.StreamReader(limit=1 << 24)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(client), sys.stdin)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, sys.stdout)
    await asyncio.gather(relay(client, child.stdin), relay(child.stdout, transport))


# Hop-by-hop or recomputed headers; every other request header (Accept, MCP-Protocol-Version,
# Mcp-Method, Mcp-Session-Id, ...) goes to the upstream as the client sent it.
_NOT_FORWARDED = {b"host", b"content-length", b"connection", b"transfer-encoding"}
_ANSWER_HEADERS = ("content-type", "mcp-session-id")


def http_relay(upstream_url: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    session: aiohttp.ClientSession | None = None

    async def lifespan(receive: Receive, send: Send) -> None:
        nonlocal session
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                session = aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if session is not None:
                    await session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return await lifespan(receive, send)
        if scope["method"] != "POST" or session is None:
            # GET streams and DELETE are not relayed; the client treats 405 as "not offered".
            await send({"type": "http.response.start", "status": 405, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = {k.decode(): v.decode() for k, v in scope["headers"] if k not in _NOT_FORWARDED}
        async with session.post(
            upstream_url, data=orjson.dumps(orjson.loads(body)), headers=headers, allow_redirects=False
        ) as answer:
            data = await answer.read()
            status = answer.status
            relayed = [(k.encode(), v.encode()) for k in _ANSWER_HEADERS if (v := answer.headers.get(k))]
        if data and answer.content_type == "application/json":
            data = orjson.dumps(orjson.loads(data))
        await send({"type": "http.response.start", "status": status, "headers": relayed})
        await send({"type": "http.response.body", "body": data})

    return app


def main(argv: list[str]) -> None:
    if argv[:1] != ["--http"]:
        uvloop.run(stdio_main(argv))
        return
    if len(argv) != 4 or argv[2] != "--port":
        raise SystemExit("usage: bare_relay.py --http UPSTREAM_URL --port N")
    uvicorn.run(
        http_relay(argv[1]),
        host="127.0.0.1",
        port=int(argv[3]),
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
