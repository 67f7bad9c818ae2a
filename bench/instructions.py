"""What the gateway's own work costs per call, in CPU instructions: steady on a busy machine.

`bench/overhead.py` measures throughput and latency, which move by ten points and more when
anything else runs on the machine. This script counts the instructions the relaying process
executes per `tools/call` under valgrind's callgrind, which does not depend on what else runs: the
same code gives the same count (within about 1 %), so a change can be judged on a shared machine.
It prints the gateway beside the bare relay of the same transport (`bench/bare_relay.py`, the floor
for any relay in Python), over stdio and HTTP, with the event loop's thread apart from the others
(the audit trail's writer thread).

Needs valgrind (Debian: `apt-get install valgrind`). Slow: the relay runs about fifty times slower
under callgrind, so the defaults are small; everything runs on 127.0.0.1 and stops by itself.

    python bench/instructions.py [--calls 200] [--only http]
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

sys.path.insert(0, str(Path(__file__).resolve().parent))
from overhead import (
    BARE_RELAY,
    PY,
    TRIVIAL,
    find_pid,
    free_port,
    http_gateway_config,
    process,
    serve_args,
    trivial_http_upstream,
    wait_http,
)

WARMUP = 30
# The protocol version, pinned: a client in "auto" mode probes with `server/discover`, which can time
# out while a relay still starts under valgrind, and would then fall back to a legacy session.
MODERN = "2026-07-28"
SLOW = 600  # seconds: everything is slow under valgrind


def callgrind(out: Path) -> list[str]:
    # One output file per thread, so the event loop's work is seen apart from the writer thread's.
    return ["valgrind", "-q", "--tool=callgrind", "--separate-threads=yes", f"--callgrind-out-file={out}.%p"]


def instructions_per_thread(out: Path, calls: int) -> list[float]:
    """Instructions per call of each thread, from the dump taken after the measured calls."""
    counts = []
    for path in sorted(glob.glob(f"{out}.*.1-*")):  # <pid>.<dump number>-<thread number>
        total = 0
        for line in Path(path).read_text().splitlines():
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
        counts.append(total / calls)
    return counts


@contextlib.asynccontextmanager
async def relayed_client(
    name: str, workdir: Path, upstream_url: str, out: Path
) -> AsyncIterator[tuple[Client, str, int]]:
    """A client talking to the named relay, which runs under callgrind; yields (client, tool, pid)."""
    valgrind = callgrind(out)
    if name == "bare relay stdio":
        params = StdioServerParameters(
            command=valgrind[0], args=[*valgrind[1:], PY, str(BARE_RELAY), PY, str(TRIVIAL)]
        )
        async with Client(params, mode=MODERN) as client:
            yield client, "add", _pid_of(str(out))
    elif name == "gateway stdio":
        config = workdir / "stdio.yaml"
        config.write_text(
            json.dumps(
                {
                    "servers": {"t": {"command": PY, "args": [str(TRIVIAL)]}},
                    "state_dir": str(workdir / "state-stdio"),
                    "gateway": {"request_timeout": SLOW},
                }
            )
        )
        args = [
            *valgrind[1:],
            PY,
            "-m",
            "mcpwarden.cli",
            "stdio",
            "-c",
            str(config),
            "--log-level",
            "warning",
        ]
        stdio = StdioServerParameters(command=valgrind[0], args=args, env=dict(os.environ))
        async with Client(stdio, mode=MODERN) as client:
            yield client, "t__add", _pid_of(str(out))
    elif name == "bare relay http":
        port = free_port()
        args = [*valgrind, PY, str(BARE_RELAY), "--http", upstream_url, "--port", str(port)]
        with process(args, workdir / "bare-relay-http.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/mcp", timeout=SLOW)
            http = create_mcp_http_client(timeout=SLOW)
            transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            async with Client(transport, mode=MODERN) as client:
                yield client, "add", proc.pid
    else:  # gateway http: an API key, a policy grant, the audit trail, as in bench/overhead.py
        config, key = http_gateway_config(workdir, upstream_url, request_timeout=SLOW)
        port = free_port()
        args = [*valgrind, *serve_args(config, port)]
        with process(args, workdir / "gateway-http.log") as proc:
            wait_http(f"http://127.0.0.1:{port}/healthz", timeout=SLOW)
            http = create_mcp_http_client(headers={"Authorization": f"Bearer {key}"}, timeout=SLOW)
            transport = streamable_http_client(f"http://127.0.0.1:{port}/mcp", http_client=http)
            async with Client(transport, mode=MODERN) as client:
                yield client, "t__add", proc.pid


def _pid_of(marker: str) -> int:
    pid = find_pid(marker)  # valgrind's own command line names the output file
    if pid is None:
        raise RuntimeError(f"no process runs with {marker}")
    return pid


async def measure(name: str, workdir: Path, upstream_url: str, calls: int) -> list[float]:
    out = workdir / name.replace(" ", "-")
    async with relayed_client(name, workdir, upstream_url, out) as (client, tool, pid):
        for _ in range(WARMUP):
            await client.call_tool(tool, {"a": 1, "b": 2})
        subprocess.run(["callgrind_control", "--zero", str(pid)], capture_output=True, check=True)
        for i in range(calls):
            await client.call_tool(tool, {"a": i, "b": 1})
        subprocess.run(["callgrind_control", "--dump", str(pid)], capture_output=True, check=True)
    return instructions_per_thread(out, calls)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--only", default="", help="measure only the paths whose name contains this")
    args = parser.parse_args()
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind and callgrind_control (apt-get install valgrind)")
    paths = [
        p
        for p in ("bare relay stdio", "gateway stdio", "bare relay http", "gateway http")
        if args.only.lower() in p
    ]
    results: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with trivial_http_upstream(workdir) as upstream_url:
            for name in paths:
                with anyio.fail_after(SLOW * 2):
                    results[name] = await measure(name, workdir, upstream_url, args.calls)
                print(f"measured {name}", file=sys.stderr)
    print(
        f"\nInstructions per tools/call on a trivial tool "
        f"({args.calls} calls after {WARMUP} warm-up, callgrind)\n"
    )
    print(f"{'path':20s} {'event loop':>12s} {'other threads':>14s} {'all':>12s}")
    for name, counts in results.items():
        main_thread, others = counts[0], sum(counts[1:])
        print(f"{name:20s} {main_thread:12,.0f} {others:14,.0f} {main_thread + others:12,.0f}")
    print()
    for transport in ("stdio", "http"):
        gateway, bare = results.get(f"gateway {transport}"), results.get(f"bare relay {transport}")
        if gateway and bare:
            print(
                f"gateway {transport}: event loop {gateway[0] / bare[0]:.2f}x the bare relay's, "
                f"all threads {sum(gateway) / sum(bare):.2f}x"
            )


if __name__ == "__main__":
    anyio.run(main)
