"""What authorization costs: one policy decision with 10, 100 and 1,000 rules, beside the call path.

Printed side by side, in one run:

- decide(): the pure decision function (Cedar via cedarpy), for a call that a rule near the end
  grants with an argument condition (a `within` path root, resolved beforehand), for a call no rule
  grants (deny by default: every rule is evaluated), and for a listing entry;
- guard: the policy guard's `check_request` on an exchange (realpath of the path + decide);
- call path: `tools/call` through two in-process gateways to real stdio upstreams
  (bench/trivial_server.py), one without the policy guard and one with the 1,000-rule policy,
  measured in interleaved rounds so background load hits both alike.

Rules are a realistic mix: exact and glob principals, roles and role globs, tool globs, one in
five with an argument condition, one in ten a deny. Run: `python bench/policy.py [--decisions 2000]
[--calls 500]`. Bounded in iterations; uses and removes a temporary directory.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
from mcp import Client

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import PolicySettings, ServerSpec, Settings
from mcpwarden.exchange import Exchange, Identity
from mcpwarden.gateway import Gateway
from mcpwarden.guards.policy import PolicyGuard
from mcpwarden.policy import PolicyEngine, PolicyRequest, PrincipalFacts, ResourceRef, compile_policy
from mcpwarden.policy.paths import with_resolved_paths

HERE = Path(__file__).resolve().parent
TRIVIAL = HERE / "trivial_server.py"


def rules(count: int, root: str) -> dict[str, Any]:
    allow: list[dict[str, Any]] = []
    deny: list[dict[str, Any]] = []
    for index in range(count - 1):
        shape = index % 10
        if shape == 9:
            deny.append({"principal": f"blocked-{index}", "tool": "*"})
        elif shape in (0, 5):
            allow.append(
                {
                    "principal": f"role:team-{index}",
                    "tool": f"srv{index}__*",
                    "where": {"path": {"within": [root]}},
                }
            )
        elif shape in (1, 6):
            allow.append({"principal": f"user{index}-*", "tool": f"srv{index}__read*"})
        elif shape in (2, 7):
            allow.append({"principal": f"role:group-{index}-*", "tool": f"srv{index}__tool{index}"})
        else:
            allow.append({"principal": f"user{index}", "tool": f"srv{index}__*", "scopes": ["tools:read"]})
    # The rule that grants the measured call: last, so nothing short-circuits before it.
    allow.append({"principal": "role:bench", "tool": "trivial__*", "where": {"path": {"within": [root]}}})
    return {"allow": allow, "deny": deny}


def percentiles(samples: list[float]) -> tuple[float, float]:
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def measure(run: Callable[[], Any], count: int) -> tuple[float, float]:
    for _ in range(min(100, count)):
        run()
    samples = []
    for _ in range(count):
        start = time.perf_counter()
        run()
        samples.append((time.perf_counter() - start) * 1e6)
    return percentiles(samples)


def row(name: str, p50: float, p99: float) -> None:
    print(f"{name:52} {p50:10.1f} {p99:10.1f}")


@asynccontextmanager
async def gateway_client(directory: Path, policy: dict[str, Any], with_guard: bool) -> AsyncIterator[Client]:
    settings = Settings(
        servers={"trivial": ServerSpec(command=sys.executable, args=(str(TRIVIAL),))},
        state_dir=directory,
        policy=PolicySettings.model_validate(policy),
    )
    audit = SqliteAuditLog(directory / f"audit-{with_guard}.db")
    gateway = Gateway(
        settings,
        transport="http",
        audit=audit,
        principal_of=lambda ctx: Identity("bench-user", frozenset({"bench"})),
        session_key_of=lambda ctx, principal: principal,
    )
    if not with_guard:
        gateway.pipeline.guards = tuple(g for g in gateway.pipeline.guards if not isinstance(g, PolicyGuard))
    try:
        async with gateway.running(), Client(gateway.server) as client:
            yield client
    finally:
        audit.close()


async def call_paths(
    directory: Path, policy: dict[str, Any], calls: int, rounds: int = 5
) -> list[list[float]]:
    """p50/p99 of tools/call without, then with, the policy guard: interleaved rounds, same load."""
    samples: list[list[float]] = [[], []]
    arguments = {"a": 1, "b": 2, "path": f"{directory}/x"}
    async with (
        gateway_client(directory, policy, with_guard=False) as bare,
        gateway_client(directory, policy, with_guard=True) as guarded,
    ):
        clients = (bare, guarded)
        for client in clients:
            for _ in range(min(50, calls)):
                await client.call_tool("trivial__add", arguments)
        for _ in range(rounds):
            for index, client in enumerate(clients):
                for _ in range(max(1, calls // rounds)):
                    start = time.perf_counter()
                    result = await client.call_tool("trivial__add", arguments)
                    samples[index].append((time.perf_counter() - start) * 1e6)
                    assert not result.is_error
    return samples


def bench_rules(count: int, root: str, decisions: int) -> None:
    bench = PrincipalFacts("bench-user", frozenset({"bench"}))
    stranger = PrincipalFacts("stranger", frozenset({"nobody"}))
    start = time.perf_counter()
    engine = PolicyEngine(compile_policy(PolicySettings.model_validate(rules(count, root))))
    compile_ms = (time.perf_counter() - start) * 1000
    arguments = {"a": 1, "b": 2, "path": f"{root}/x"}
    granted = with_resolved_paths(
        engine, PolicyRequest(bench, "call_tool", ResourceRef("trivial", "trivial__add"), arguments, "http")
    )
    refused = PolicyRequest(stranger, "call_tool", ResourceRef("other", "other__x"), {}, "http")
    listed = PolicyRequest(bench, "list_tools", ResourceRef("trivial", "trivial__add"), None, "http")
    assert engine.decide(granted).allowed and not engine.decide(refused).allowed
    assert engine.decide(listed).allowed
    print(f"-- {count} rules (compiled in {compile_ms:.0f} ms)")
    row("decide(): granted call with a path condition", *measure(lambda: engine.decide(granted), decisions))
    row("decide(): refused call (deny by default)", *measure(lambda: engine.decide(refused), decisions))
    row("decide(): listing entry", *measure(lambda: engine.decide(listed), decisions))
    guard = PolicyGuard(engine)
    exchange = Exchange(
        "tools/call", {}, Identity("bench-user", frozenset({"bench"})), "http", "k", "2026-07-28"
    )
    exchange.server, exchange.target, exchange.exposed_name = "trivial", "add", "trivial__add"
    exchange.arguments = arguments

    def check() -> None:
        exchange.metadata.clear()
        coroutine = guard.check_request(exchange)  # never awaits: drive it by hand, no event loop
        try:
            coroutine.send(None)
        except StopIteration as done:
            assert done.value.allowed
        else:
            raise AssertionError("check_request awaited")

    row("guard check_request (realpath + decide)", *measure(check, decisions))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--decisions", type=int, default=2000, help="decisions per case (default 2000)")
    parser.add_argument("--calls", type=int, default=500, help="gateway calls per path (default 500)")
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        directory = Path(temp)
        print(f"µs per operation; {options.decisions} decisions per case, {options.calls} calls per path")
        print(f"{'case':52} {'p50':>10} {'p99':>10}")
        for count in (10, 100, 1000):
            bench_rules(count, str(directory), options.decisions)
        print("-- tools/call through an in-process gateway to a stdio upstream (interleaved rounds)")
        bare, guarded = anyio.run(call_paths, directory, rules(1000, str(directory)), options.calls)
        without, with_policy = percentiles(bare), percentiles(guarded)
        row("call path without the policy guard", *without)
        row("call path with the policy guard, 1,000 rules", *with_policy)
        print(f"policy share of a call (p50 difference): {with_policy[0] - without[0]:.1f} µs")


if __name__ == "__main__":
    main()
