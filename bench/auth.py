"""Authentication cost per HTTP request: API-key lookup and JWT validation beside no auth, in one run.

Each request is a direct ASGI call (no sockets, so only the layer's own cost shows) of:

- baseline: the app alone (a trivial ASGI app that answers 200), no authentication;
- api-key: the same app behind `HttpAuth.wrap` with an API key (Host/Origin check, header
  checks, one indexed SQLite read and one HMAC-SHA256);
- jwt RS256: behind `HttpAuth.wrap` with a JWT (shape and header checks, JWKS from the cache,
  RS256 signature, claims);
- and, without the ASGI layer, `Authenticator.authenticate` alone for both kinds.

Prints µs per request, p50 and p99. Run: `python bench/auth.py [--requests 5000]`. Keys are made
in the run; a temporary state directory is used and removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from starlette.types import Message, Receive, Scope, Send

from mcpwarden.auth.http import HttpAuth
from mcpwarden.auth.keys import ApiKeyStore
from mcpwarden.config import Settings
from mcpwarden.transport.http import transport_security

AUDIENCE = "http://127.0.0.1:8765/mcp"
ISSUER = "https://as.example"


def signing_key() -> tuple[rsa.RSAPrivateKey, dict[str, Any]]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = {**json.loads(RSAAlgorithm.to_jwk(key.public_key())), "kid": "k1", "use": "sig", "alg": "RS256"}
    return key, {"keys": [jwk]}


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


def make_scope(token: str | None) -> Scope:
    headers = [
        (b"host", b"127.0.0.1:8765"),
        (b"accept", b"application/json, text/event-stream"),
        (b"content-type", b"application/json"),
    ]
    if token is not None:
        headers.append((b"authorization", f"Bearer {token}".encode()))
    return {
        "type": "http",
        "method": "POST",
        "path": "/mcp",
        "raw_path": b"/mcp",
        "query_string": b"",
        "scheme": "http",
        "server": ("127.0.0.1", 8765),
        "headers": headers,
    }


async def receive() -> Message:
    return {"type": "http.request", "body": b"{}", "more_body": False}


async def measure(run: Callable[[], Awaitable[Any]], requests: int) -> tuple[float, float]:
    for _ in range(min(200, requests)):  # warm caches (JWKS, SQLite pages)
        await run()
    samples = []
    for _ in range(requests):
        start = time.perf_counter_ns()
        await run()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


async def main(requests: int) -> None:
    key_pair, jwks_document = signing_key()
    with tempfile.TemporaryDirectory() as directory:
        jwks = Path(directory) / "jwks.json"
        jwks.write_text(json.dumps(jwks_document))
        settings = Settings.model_validate(
            {
                "state_dir": str(Path(directory) / "state"),
                "auth": {"oauth": {"issuer": ISSUER, "audience": AUDIENCE, "jwks_file": str(jwks)}},
            }
        )
        store = ApiKeyStore(settings.state_dir)
        for index in range(1000):  # a realistic table, not a single row
            store.create(f"user{index}")
        _, key = store.create("bench")
        store.close()
        now = int(time.time())
        claims = {
            "iss": ISSUER,
            "sub": "alice",
            "aud": AUDIENCE,
            "iat": now,
            "exp": now + 3600,
            "scope": "a b",
        }
        token = jwt.encode(claims, key_pair, algorithm="RS256", headers={"kid": "k1", "typ": "at+jwt"})
        auth = HttpAuth.from_settings(settings, transport_security(settings, "127.0.0.1"))
        wrapped = auth.wrap(ok_app)
        statuses: list[int] = []

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        def through(app: Any, credential: str | None) -> Callable[[], Awaitable[Any]]:
            return lambda: app(make_scope(credential), receive, send)

        rows = [
            ("baseline (no auth)", through(ok_app, None)),
            ("api-key via ASGI layer", through(wrapped, key)),
            ("jwt RS256 via ASGI layer", through(wrapped, token)),
            ("api-key authenticate()", lambda: auth.authenticator.authenticate(key)),
            ("jwt authenticate()", lambda: auth.authenticator.authenticate(token)),
        ]
        print(f"{requests} requests each; µs per request")
        print(f"{'case':28} {'p50':>8} {'p99':>8}")
        for name, run in rows:
            statuses.clear()
            p50, p99 = await measure(run, requests)
            assert not statuses or set(statuses) == {200}, f"{name}: unexpected statuses {set(statuses)}"
            print(f"{name:28} {p50:8.1f} {p99:8.1f}")
        auth.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    asyncio.run(main(parser.parse_args().requests))
