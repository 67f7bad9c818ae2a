"""Quota fixtures: a real redis-server on a free loopback port, and both counter backends.

Tests that need Redis use the session-scoped `redis_url`. Outside CI (`CI` unset) they are skipped,
with the reason, when `redis-server` is not installed; in CI its absence is a failure, because
`.ci/run` installs it (`apt-get install redis-server`).
"""

from __future__ import annotations

import os
import shutil
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mcpwarden.quota.backend import CounterBackend, SqliteCounters
from tests.support import background_process, free_port


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    server = shutil.which("redis-server")
    if server is None:
        if os.environ.get("CI"):
            pytest.fail("CI must run the Redis tests: redis-server is missing (.ci/run installs it)")
        pytest.skip("redis-server is not installed (apt-get install redis-server); skipped outside CI")
    port = free_port()
    args = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    with background_process(args, lambda: _answers_ping(port), f"redis-server on {port}", timeout=15):
        yield f"redis://127.0.0.1:{port}/0"


@pytest.fixture(params=["sqlite", "redis"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[CounterBackend]:
    """Each counter backend in turn; the same semantics are asserted against both."""
    counters: CounterBackend
    if request.param == "sqlite":
        counters = SqliteCounters(tmp_path / "quota.db")
    else:
        from mcpwarden.quota.redis import RedisCounters

        url = request.getfixturevalue("redis_url")
        counters = RedisCounters(url, key_prefix=f"test:{uuid.uuid4().hex}:")
    try:
        yield counters
    finally:
        await counters.aclose()
