"""Fixtures for the scanner tests: fixture MCP servers as real processes (stdio or 127.0.0.1 HTTP)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SERVERS = FIXTURES / "servers.py"
PYTHON = sys.executable


def stdio_entry(name: str, *extra: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """A client-config entry ({command, args, env}) that starts fixture `name` over stdio."""
    entry: dict[str, object] = {"command": PYTHON, "args": [str(SERVERS), name, *extra]}
    if env:
        entry["env"] = env
    return entry


def write_config(path: Path, servers: dict[str, dict[str, object]]) -> Path:
    path.write_text(json.dumps({"mcpServers": servers}, indent=2), encoding="utf-8")
    return path


class HttpFixture:
    def __init__(self, process: subprocess.Popen[str], port: int) -> None:
        self.process = process
        self.port = port

    def url(self, path: str = "/mcp") -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _read_port(process: subprocess.Popen[str], deadline: float) -> int:
    result: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        result.append(process.stdout.readline())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(deadline)
    line = result[0] if result else ""
    if not line.startswith("PORT "):
        process.kill()
        raise RuntimeError(f"fixture server did not start: {line!r}")
    return int(line.split()[1])


@pytest.fixture
def http_server() -> Iterator[Callable[..., HttpFixture]]:
    """Start fixture HTTP servers on 127.0.0.1 (an ephemeral port each); all stopped at teardown."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str) -> HttpFixture:
        process = subprocess.Popen(
            [PYTHON, str(SERVERS), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        started.append(process)
        return HttpFixture(process, _read_port(process, 30.0))

    yield start
    for process in started:
        process.terminate()
    for process in started:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
