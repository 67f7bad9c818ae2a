"""What the gateway costs: `tools/call` on a trivial tool, direct vs through mcpwarden, in one run.

Seven paths: direct stdio; a bare JSON relay with no guards (`bare_relay.py`, the floor for any
relay in Python); the gateway stdio->stdio on its fast lane and on the SDK path; direct HTTP; a
bare HTTP relay on the gateway's own HTTP libraries (uvicorn, aiohttp); the gateway HTTP->HTTP.
Each is measured sequentially and with 8 concurrent callers, interleaved over several rounds so a
noisy neighbour hits every path alike; medians are reported, with the relaying process's resident
memory and CPU time per call (gateway or bare relay; /proc). The gateway is compared with direct
calls and with the bare relay of its transport. Everything runs on 127.0.0.1, is bounded in calls
and time, and stops by itself.

    python bench/overhead.py [--calls 500] [--rounds 3] [--only http]

`--only WORD` keeps the paths whose name contains WORD (e.g. `http`, `stdio`), with their baselines.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import httpx
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

HERE = Path(__file__).resolve().parent
TRIVIAL = HERE / "trivial_server.py"
BARE_RELAY = HERE / "bare_relay.py"
PY = sys.executable
CONCURRENCY = 8
WARMUP = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code < 500:
                return
        time.sleep(0.05)
    raise TimeoutError(url)


@contextlib.contextmanager
def process(args: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


@contextlib.contextmanager
def trivial_http_upstream(workdir: Path) -> Iterator[str]:
    """The trivial server on Streamable HTTP for the whole run; yields its MCP URL once it answers."""
    port = free_port()
    with process([PY, str(TRIVIAL), "--http", str(port)], workdir / "upstream.log"):
        url = f"http://127.0.0.1:{port}/mcp"
        wait_http(url)
        yield url


def rss_mb(pid: int) -> float:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process so far (Linux /proc), NaN when it cannot be read."""
    with contextlib.suppress(OSError, ValueError, TypeError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return float("nan")


def find_pid(marker: str) -> int | None:
    """The process whose command line contains `marker` (a path only that process is given)."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if marker in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    return int(entry.name)
    return None


def http_gateway_config(workdir: Path, upstream_url: str, **gateway: object) -> tuple[Path, str]:
    """The whole stack a deployment runs over HTTP: the config file (one upstream, a policy grant,
    the audit trail in its state directory) and an API key minted for principal `bench`."""
    config = workdir / "http.yaml"
    settings: dict[str, object] = {
        "servers": {"t": {"url": upstream_url}},
        "state_dir": str(workdir / "state-http"),
        "policy": {"allow": [{"principal": "bench", "tool": "t__*"}]},
    }
    if gateway:
        settings["gateway"] = gateway
    config.write_text(json.dumps(settings))
    minted = subprocess.run(
        [PY, "-m", "mcpwarden.cli", "keys", "create", "--principal", "bench", "-c", str(config)],
        capture_output=True,
        text=True,
        check=True,
    )
    return config, minted.stdout.strip().splitlines()[-1]


def serve_args(config: Path, port: int) -> list[str]:
    return [
        PY,
        "-m",
        "mcpwarden.cli",
        "serve",
        "-c",
        str(config),
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]


async def _no_progress(progress: float, total: float | None, message: str | None) -> None:
    """Never called (the tool reports none); asking for progress keeps a call off the fast lane."""


async def measure(
    client: Client, tool: str, calls: int, relay_pid: int | None, sdk_lane: bool = False
) -> dict[str, float]:
    progress = _no_progress if sdk_lane else None

    async def call(a: int, b: int) -> None:
        await client.call_tool(tool, {"a": a, "b": b}, progress_callback=progress)

    for _ in range(WARMUP):
        await call(1, 2)
    latencies: list[float] = []
    cpu_before = cpu_seconds(relay_pid)
    started = time.perf_counter()
    for i in range(calls):
        t0 = time.perf_counter()
        await call(i, 1)
        latencies.append(time.perf_counter() - t0)
    sequential = calls / (time.perf_counter() - started)
    relay_cpu_us = (cpu_seconds(relay_pid) - cpu_before) / calls * 1e6

    per_worker = max(1, calls // CONCURRENCY)

    async def worker() -> None:
        for i in range(per_worker):
            await call(i, 2)

    started = time.perf_counter()
    async with anyio.create_task_group() as tg:
        for _ in range(CONCURRENCY):
            tg.start_soon(worker)
    concurrent = per_worker * CONCURRENCY / (time.perf_counter() - started)
    latencies.sort()
    return {
        "seq_calls_s": sequential,
        "conc_calls_s": concurrent,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "relay_cpu_us": relay_cpu_us,
        "rss_mb": rss_mb(relay_pid) if relay_pid else float("nan"),
    }


@contextlib.asynccontextmanager
async def path_client(
    name: str, workdir: Path, upstream_url: str
) -> AsyncIterator[tuple[Client, str, int | None]]:
    if name == "direct stdio":
        async with Client(StdioServerParameters(command=PY, args=[str(TRIVIAL)])) as client:
            yield client, "add", None
    elif name == "bare relay stdio":
        params = StdioServerParameters(command=PY, args=[str(BARE_RELAY), PY, str(TRIVIAL)])
        async with Client(params) as client:
            yield client, "add", find_pid(str(BARE_RELAY))
    elif name.startswith("gateway stdio"):
        config = workdir / "stdio.yaml"
        config.write_text(
            json.dumps(
                {
                    "servers": {"t": {"command": PY, "args": [str(TRIVIAL)]}},
                    "state_dir": str(workdir / "state-stdio"),
                }
            )
        )
        params = StdioServerParameters(
            command=PY,
            args=["-m", "mcpwarden.cli", "stdio", "-c", str(config), "--log-level", "warning"],
            env=dict(os.environ),
        )
        async with Client(params) as client:
            yield client, "t__add", find_pid(str(config))
    elif name == "direct http":
        async with Client(upstream_url) as client:
            yield client, "add", None
    elif name == "bare relay http":
        port = free_port()
        args = [PY, str(BARE_RELAY), "--http", upstream_url, "--port", str(port)]
        with process(args, workdir / "bare-relay-http.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/mcp")
            async with Client(f"http://127.0.0.1:{port}/mcp") as client:
                yield client, "add", proc.pid
    else:
        config, key = http_gateway_config(workdir, upstream_url)
        port = free_port()
        args = serve_args(config, port)
        with process(args, workdir / "gateway-http.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/healthz")
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"})
            async with Client(
                streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            ) as client:
                yield client, "t__add", proc.pid


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", default="", help="measure only the paths whose name contains this")
    args = parser.parse_args()
    # "(SDK lane)": the same gateway, each call asking for progress, which only the SDK path serves:
    # what the fast lane (transport/fastlane.py) saves, measured beside it.
    # "bare relay": a Python JSON relay with no guards at all (bench/bare_relay.py), the floor any
    # relay in Python starts from, measured beside the gateway.
    paths = [
        "direct stdio",
        "bare relay stdio",
        "gateway stdio",
        "gateway stdio (SDK lane)",
        "direct http",
        "bare relay http",
        "gateway http",
    ]
    paths = [name for name in paths if args.only.lower() in name.lower()]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in paths}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with trivial_http_upstream(workdir) as upstream_url:
            for round_index in range(args.rounds):
                for name in paths:
                    with anyio.fail_after(300):
                        async with path_client(name, workdir, upstream_url) as (client, tool, pid):
                            figures = await measure(
                                client, tool, args.calls, pid, sdk_lane="SDK lane" in name
                            )
                    results[name].append(figures)
                    print(
                        f"round {round_index + 1} {name:24s} {figures['seq_calls_s']:7.0f} calls/s",
                        file=sys.stderr,
                    )

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in results[name])

    print(
        f"\ntools/call on a trivial tool, {args.calls} calls x {args.rounds} rounds (medians), "
        f"{CONCURRENCY} concurrent callers for the concurrent column\n"
    )
    # The relay's CPU per call (sequential phase) and memory: the gateway's, or the bare relay's.
    columns = ("seq calls/s", "conc calls/s", "p50 ms", "p99 ms", "relay RSS MB", "relay CPU us")
    header = f"{'path':25s} " + " ".join(f"{c:>12s}" for c in columns)
    print(header)
    print("-" * len(header))
    for name in paths:
        print(
            f"{name:25s} {median(name, 'seq_calls_s'):12.0f} {median(name, 'conc_calls_s'):12.0f} "
            f"{median(name, 'p50_ms'):12.2f} {median(name, 'p99_ms'):12.2f} {median(name, 'rss_mb'):12.1f} "
            f"{median(name, 'relay_cpu_us'):12.0f}"
        )
    print()

    def compare(relayed: str, baseline: str) -> str:
        sequential = median(relayed, "seq_calls_s") / median(baseline, "seq_calls_s")
        concurrent = median(relayed, "conc_calls_s") / median(baseline, "conc_calls_s")
        added = median(relayed, "p50_ms") - median(baseline, "p50_ms")
        return (
            f"{relayed:25s}: of {baseline}, {sequential:.0%} sequential, "
            f"{concurrent:.0%} concurrent throughput; p50 added {added:+.2f} ms"
        )

    for relayed in (name for name in paths if not name.startswith("direct")):
        print(compare(relayed, "direct http" if "http" in relayed else "direct stdio"))
    # The floors: what the gateway's guards, audit and routing cost on top of any relay in Python.
    print()
    for relayed in ("gateway stdio", "gateway http"):
        if relayed in paths:
            print(compare(relayed, "bare relay http" if "http" in relayed else "bare relay stdio"))


if __name__ == "__main__":
    anyio.run(main)
