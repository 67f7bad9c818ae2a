"""What quotas cost per call: the quota check alone, and a whole `tools/call`, with and without it.

Two tables, in one run:

1. **The check**: `QuotaGuard.check_request` + `check_response` + `finish` on a synthetic call, in
   µs (p50, p99): no limits (the guard only records the cost), the embedded SQLite backend (in a
   worker thread, the default, and inline on the event loop, to show why the default is the
   thread), and Redis (a local redis-server on a free loopback port, when one is installed).
   The rule exercises every counter at once — rate, concurrency, budget, loop and a per-KB cost —
   so each call is one admission and one settlement: the worst case.
2. **The call**: `tools/call` of a trivial tool through the in-process gateway (real stdio
   upstream, real MCP client), without limits and with the same rule on each backend, measured
   in interleaved rounds so a noisy neighbour hits every variant alike.

    python bench/quota.py [--checks 3000] [--calls 400] [--rounds 3]

Bounded in calls and time; everything runs on 127.0.0.1 and in a temporary directory it removes.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import LimitRule, QuotaSettings, ServerSpec, Settings
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.gateway import Gateway
from mcpwarden.guards.quota import QuotaGuard
from mcpwarden.quota.backend import CounterBackend, SqliteCounters

HERE = Path(__file__).resolve().parent
TRIVIAL = HERE / "trivial_server.py"
WARMUP = 50
RULE = {
    "rate": "1000000/s",
    "concurrency": 1000,
    "budget": {"units": 1e12, "per": "day"},
    "loop": {"repeats": 1000, "window": "10s"},
    "cost_per_kb": 0.01,
}
IDENTITY = Identity("bench", method="stdio")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    port = free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
                break
            time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.terminate()
        proc.wait(10)


def percentiles(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


async def time_checks(guard: QuotaGuard, count: int) -> list[float]:
    samples: list[float] = []
    for i in range(WARMUP + count):
        exchange = Exchange("tools/call", {}, IDENTITY, "stdio", "s", "2026-07-28")
        exchange.server, exchange.target, exchange.exposed_name = "t", "add", "t__add"
        exchange.arguments = {"a": i, "b": 1}
        started = time.perf_counter()
        decision = await guard.check_request(exchange)
        exchange.result = {"content": [{"type": "text", "text": str(i + 1)}], "isError": False}
        exchange.response_bytes = 60
        await guard.check_response(exchange)
        guard.finish(exchange)
        elapsed = time.perf_counter() - started
        assert decision.allowed, decision
        if i >= WARMUP:
            samples.append(elapsed * 1e6)
    return samples


async def check_table(state: Path, redis_url: str | None, count: int) -> list[tuple[str, list[float]]]:
    limits = [LimitRule.model_validate(RULE)]
    variants: list[tuple[str, QuotaGuard]] = [
        ("no limits (cost only)", QuotaGuard((), lambda: SqliteCounters(state / "none.db"))),
        ("sqlite, worker thread", QuotaGuard(limits, lambda: SqliteCounters(state / "thread.db"))),
        ("sqlite, inline", QuotaGuard(limits, lambda: SqliteCounters(state / "inline.db", in_thread=False))),
    ]
    if redis_url is not None:
        from mcpwarden.quota.redis import RedisCounters

        def redis_backend() -> CounterBackend:
            return RedisCounters(redis_url, key_prefix=f"bench:{uuid.uuid4().hex}:")

        variants.append(("redis (loopback)", QuotaGuard(limits, redis_backend)))
    rows = []
    for label, guard in variants:
        try:
            rows.append((label, await time_checks(guard, count)))
        finally:
            await guard.aclose()
    return rows


@contextlib.asynccontextmanager
async def gateway_client(
    state: Path, limits: list[dict[str, Any]], quota: QuotaSettings
) -> AsyncIterator[Client]:
    state.mkdir(parents=True, exist_ok=True)
    settings = Settings(
        servers={"t": ServerSpec(command=sys.executable, args=(str(TRIVIAL),))},
        state_dir=state,
        limits=tuple(LimitRule.model_validate(limit) for limit in limits),
        quota=quota,
    )
    audit = SqliteAuditLog(state / "audit.db")
    gw = Gateway(
        settings,
        transport="stdio",
        audit=audit,
        principal_of=lambda ctx: IDENTITY,
        session_key_of=lambda ctx, principal: principal,
    )
    guard = next(g for g in gw.guards if isinstance(g, QuotaGuard))
    try:
        async with gw.running(), Client(gw.server) as client:
            yield client
    finally:
        await guard.aclose()
        audit.close()


async def call_table(
    state: Path, redis_url: str | None, calls: int, rounds: int
) -> list[tuple[str, list[float]]]:
    variants: list[tuple[str, list[dict[str, Any]], QuotaSettings]] = [
        ("without quotas", [], QuotaSettings()),
        ("sqlite quotas", [RULE], QuotaSettings()),
    ]
    if redis_url is not None:
        prefix = f"bench:{uuid.uuid4().hex}:"
        variants.append(
            ("redis quotas", [RULE], QuotaSettings(backend="redis", redis_url=redis_url, key_prefix=prefix))
        )
    samples: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            (label, await stack.enter_async_context(gateway_client(state / f"gw{n}", limits, quota)))
            for n, (label, limits, quota) in enumerate(variants)
        ]
        for _label, client in clients:
            for i in range(WARMUP):
                await client.call_tool("t__add", {"a": i, "b": 1})
        for _ in range(rounds):
            for label, client in clients:
                for i in range(calls):
                    started = time.perf_counter()
                    await client.call_tool("t__add", {"a": i, "b": 1})
                    samples[label].append((time.perf_counter() - started) * 1e6)
    return list(samples.items())


def print_table(title: str, rows: list[tuple[str, list[float]]], baseline: str | None = None) -> None:
    print(f"\n{title}")
    print(
        f"  {'variant':<24} {'calls':>6} {'p50 µs':>9} {'p99 µs':>9}" + ("  p50 vs base" if baseline else "")
    )
    base = dict(rows).get(baseline or "")
    base_p50 = percentiles(base)[0] if base else None
    for label, samples in rows:
        p50, p99 = percentiles(samples)
        extra = f"  {p50 - base_p50:+9.0f}" if base_p50 is not None else ""
        print(f"  {label:<24} {len(samples):>6} {p50:>9.0f} {p99:>9.0f}{extra}")


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="mcpwarden-bench-quota-") as tmp, redis_server() as redis_url:
        state = Path(tmp)
        if redis_url is None:
            print("redis-server not installed: the Redis rows are left out (apt-get install redis-server)")
        with anyio.fail_after(600):
            checks = await check_table(state, redis_url, args.checks)
            calls = await call_table(state, redis_url, args.calls, args.rounds)
        print_table("quota check per call (check_request + check_response + finish)", checks)
        print_table(
            "tools/call through the in-process gateway (trivial stdio upstream)",
            calls,
            baseline="without quotas",
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checks", type=int, default=3000, help="quota checks per variant")
    parser.add_argument("--calls", type=int, default=400, help="calls per variant per round")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    anyio.run(main, parser.parse_args())
