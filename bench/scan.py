"""Benchmark: scanning 20 local MCP servers concurrently vs one at a time (target: < 10 s concurrent).

Two fleets, both on this machine only:
- http:  20 Streamable HTTP servers served by one fixture process on 127.0.0.1 (one endpoint each)
- stdio: 20 stdio fixture servers, started by the scan itself (what --run-stdio does)
Each fleet is scanned with the real scanner (connect, list tools/prompts/resources, detection on
every string, pins) with concurrency 20 and then with concurrency 1, in the same run.
Bounded and self-stopping: fixed server counts, a timeout per server, the fixture process killed
at the end.

    /work/venv/bin/python bench/scan.py [--servers 20] [--fleet http|stdio|both]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import anyio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mcpwarden.scan.model import ServerEntry  # noqa: E402
from mcpwarden.scan.runner import ScanOptions, run_scan  # noqa: E402

SERVERS = ROOT / "tests" / "scan" / "fixtures" / "servers.py"
TARGET_SECONDS = 10.0
FIXTURES = ["notes", "weather", "files"]


def _start_http_fleet(count: int) -> tuple[subprocess.Popen[str], int]:
    process = subprocess.Popen(
        [sys.executable, str(SERVERS), "--many", str(count), "--http"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline() if process.stdout else ""))
    reader.start()
    reader.join(60)
    if not line or not line[0].startswith("PORT "):
        process.kill()
        raise SystemExit("the HTTP fixture fleet did not start")
    return process, int(line[0].split()[1])


def _entries(fleet: str, count: int, port: int) -> list[ServerEntry]:
    if fleet == "http":
        return [
            ServerEntry(
                name=f"http-{i}",
                source="bench",
                transport="http",
                url=f"http://127.0.0.1:{port}/s{i}/mcp",
                group="bench",
            )
            for i in range(count)
        ]
    return [
        ServerEntry(
            name=f"stdio-{i}",
            source="bench",
            transport="stdio",
            command=sys.executable,
            args=(str(SERVERS), FIXTURES[i % len(FIXTURES)]),
            group="bench",
        )
        for i in range(count)
    ]


def _timed_scan(entries: list[ServerEntry], concurrency: int, pins: Path) -> tuple[float, int, int]:
    options = ScanOptions(run_stdio=True, timeout=60, pins=pins, concurrency=concurrency)
    start = time.perf_counter()
    report = anyio.run(lambda: run_scan(entries, options))
    elapsed = time.perf_counter() - start
    ok = sum(1 for server in report.servers if server.live == "ok")
    tools = sum(len(server.tools) for server in report.servers)
    return elapsed, ok, tools


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--servers", type=int, default=20)
    parser.add_argument("--fleet", choices=["http", "stdio", "both"], default="both")
    options = parser.parse_args()
    count = max(1, min(options.servers, 64))
    fleets = ["http", "stdio"] if options.fleet == "both" else [options.fleet]
    process, port = _start_http_fleet(count) if "http" in fleets else (None, 0)
    rows: list[tuple[str, float, float, int, int]] = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for fleet in fleets:
                entries = _entries(fleet, count, port)
                _timed_scan(entries[:1], 1, Path(tmp) / "warm.json")  # warm imports and the engine's model
                concurrent, ok_c, tools = _timed_scan(entries, count, Path(tmp) / f"{fleet}-c.json")
                sequential, ok_s, _ = _timed_scan(entries, 1, Path(tmp) / f"{fleet}-s.json")
                if ok_c != count or ok_s != count:
                    print(f"{fleet}: only {ok_c}/{ok_s} of {count} servers answered", file=sys.stderr)
                    return 2
                rows.append((fleet, concurrent, sequential, ok_c, tools))
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
    print(f"scan of {count} local servers (tools listed and scanned; 2-core machine)")
    header = f"{'fleet':<6} {'concurrent s':>13} {'sequential s':>13} {'speed-up':>9} {'tools':>6}"
    print(f"{header}  target < {TARGET_SECONDS:g} s")
    failed = False
    for fleet, concurrent, sequential, _ok, tools in rows:
        verdict = "ok" if concurrent < TARGET_SECONDS else "MISSED"
        failed = failed or concurrent >= TARGET_SECONDS
        speed_up = sequential / concurrent
        print(f"{fleet:<6} {concurrent:>13.2f} {sequential:>13.2f} {speed_up:>8.1f}x {tools:>6}  {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
