"""Helpers for tests that run real processes: fixture servers, gateways, and MCP clients.

Everything listens on 127.0.0.1 on a free port, waits for readiness with a deadline (never a fixed
sleep), and is stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml
from mcp import Client, StdioServerParameters

FIXTURES = Path(__file__).parent / "fixtures"
UPSTREAM_SERVER = FIXTURES / "upstream_server.py"
PYTHON = sys.executable
MCPWARDEN = [PYTHON, "-m", "mcpwarden.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.HTTPError:
        return False


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def stdio_upstream(name: str = "fixture", legacy_only: bool = False) -> dict[str, Any]:
    env = {"FIXTURE_NAME": name}
    if legacy_only:
        env["FIXTURE_LEGACY_ONLY"] = "1"
    return {"command": PYTHON, "args": [str(UPSTREAM_SERVER)], "env": env}


@contextlib.contextmanager
def http_upstream(name: str = "fixture", legacy_only: bool = False) -> Iterator[dict[str, Any]]:
    """A fixture server on Streamable HTTP; yields its config entry."""
    port = free_port()
    env = {**os.environ, "FIXTURE_NAME": name}
    if legacy_only:
        env["FIXTURE_LEGACY_ONLY"] = "1"
    proc = subprocess.Popen(
        [PYTHON, str(UPSTREAM_SERVER), "--http", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _port_open(port), 20, f"fixture server {name} on port {port}")
        yield {"url": f"http://127.0.0.1:{port}/mcp"}
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def write_config(directory: Path, servers: Mapping[str, Any], **extra: Any) -> Path:
    config = {"servers": dict(servers), "state_dir": str(directory / "state"), **extra}
    path = directory / "mcpwarden.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@contextlib.contextmanager
def http_gateway(config: Path, log: Path | None = None) -> Iterator[str]:
    """`mcpwarden serve` on a free port; yields the MCP endpoint URL once /healthz says ready."""
    with http_gateway_process(config, log) as (url, _):
        yield url


@contextlib.contextmanager
def http_gateway_process(
    config: Path, log: Path | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    port = free_port()
    log_file = open(log or config.parent / "gateway.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*MCPWARDEN, "serve", "-c", str(config), "--port", str(port)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: proc.poll() is not None or _http_ok(base + "/healthz"), 30, "gateway /healthz")
        if proc.poll() is not None:
            raise RuntimeError(f"gateway exited: {(config.parent / 'gateway.log').read_text()[-2000:]}")
        yield base + "/mcp", proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log_file.close()


def stdio_gateway_params(config: Path) -> StdioServerParameters:
    return StdioServerParameters(
        command=PYTHON,
        args=[
            "-m",
            "mcpwarden.cli",
            "stdio",
            "-c",
            str(config),
            "--log-level",
            os.environ.get("GW_LOG", "info"),
        ],
        env=dict(os.environ),
    )


@contextlib.asynccontextmanager
async def gateway_client(
    front: str, config: Path, mode: str = "auto", **kwargs: Any
) -> AsyncIterator[Client]:
    """A real `mcp.Client` talking to a real gateway over the given front (stdio or http)."""
    if front == "stdio":
        async with Client(stdio_gateway_params(config), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
            yield client
    else:
        with http_gateway(config) as url:
            async with Client(url, mode=mode, **kwargs) as client:  # type: ignore[arg-type]
                yield client
