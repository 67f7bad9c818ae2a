"""Helpers for tests that run real processes: fixture servers, gateways, and MCP clients.

Everything listens on 127.0.0.1 on a free port, waits for readiness with a deadline (never a fixed
sleep), and is stopped by the test that started it.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import yaml
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from mcpwarden.config import ServerSpec

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
def background_process(
    args: Sequence[str], ready: Any, what: str, env: Mapping[str, str] | None = None, timeout: float = 20
) -> Iterator[subprocess.Popen[bytes]]:
    """A helper process (fixture server, Redis, ...) for the length of a block: started, waited
    for until `ready()` (failing at once if it exits), then stopped, killed if it lingers."""
    proc = subprocess.Popen(
        list(args),
        env=dict(env) if env is not None else None,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: proc.poll() is not None or ready(), timeout, what)
        assert proc.poll() is None, f"{what} exited with {proc.returncode}"
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def http_upstream(name: str = "fixture", legacy_only: bool = False) -> Iterator[dict[str, Any]]:
    """A fixture server on Streamable HTTP; yields its config entry."""
    port = free_port()
    env = {**os.environ, "FIXTURE_NAME": name}
    if legacy_only:
        env["FIXTURE_LEGACY_ONLY"] = "1"
    args = [PYTHON, str(UPSTREAM_SERVER), "--http", str(port)]
    with background_process(args, lambda: _port_open(port), f"fixture server {name} on port {port}", env):
        yield {"url": f"http://127.0.0.1:{port}/mcp"}


GRANT_ALL = {"allow": [{"principal": "*", "tool": "*"}]}

# A 2025-11-25 client opening a legacy session, for tests on the raw wire.
LEGACY_INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"},
    },
}


def write_config(directory: Path, servers: Mapping[str, Any], **extra: Any) -> Path:
    """A config file. HTTP callers get nothing a policy does not grant, so tests about other things
    grant everything explicitly (GRANT_ALL) unless they pass their own `policy` (None: no key)."""
    extra.setdefault("policy", GRANT_ALL)
    if extra["policy"] is None:
        del extra["policy"]
    config = {"servers": dict(servers), "state_dir": str(directory / "state"), **extra}
    path = directory / "mcpwarden.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


class GatewayUrl(str):
    """The MCP endpoint URL of a test gateway, carrying the API key minted for it."""

    api_key: str | None = None

    @property
    def auth(self) -> dict[str, str]:
        """The header that authenticates as the test principal (empty when no key was minted)."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}


def mint_key(config: Path, principal: str = "test", roles: Sequence[str] = ()) -> str:
    """`mcpwarden keys create`; returns the key (the last line of its output, as CONTRACT.md says)."""
    role_args = [arg for role in roles for arg in ("--role", role)]
    done = subprocess.run(
        [*MCPWARDEN, "keys", "create", "--principal", principal, *role_args, "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


@contextlib.contextmanager
def http_gateway(config: Path, log: Path | None = None, **kwargs: Any) -> Iterator[GatewayUrl]:
    """`mcpwarden serve` on a free port; yields the MCP endpoint URL once /healthz says ready."""
    with http_gateway_process(config, log, **kwargs) as (url, _):
        yield url


@contextlib.contextmanager
def http_gateway_process(
    config: Path, log: Path | None = None, *, port: int | None = None, api_key: bool = True
) -> Iterator[tuple[GatewayUrl, subprocess.Popen[bytes]]]:
    """Like `http_gateway`, with the process; by default mints an API key for principal `test`."""
    key = mint_key(config) if api_key else None
    port = port or free_port()
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
        url = GatewayUrl(base + "/mcp")
        url.api_key = key
        yield url, proc
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
            async with Client(authenticated(url), mode=mode, **kwargs) as client:  # type: ignore[arg-type]
                yield client


@contextlib.asynccontextmanager
async def authenticated(url: str, key: str | None = None) -> AsyncIterator[Any]:
    """A Streamable HTTP transport for `mcp.Client` that sends `Authorization: Bearer KEY`
    (by default the key minted for a `GatewayUrl`)."""
    token = key if key is not None else getattr(url, "api_key", None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        create_mcp_http_client(headers=headers) as http,
        streamable_http_client(str(url), http_client=http) as streams,
    ):
        yield streams


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler for the stand-in servers below: replies in one call, logs nothing."""

    def reply(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def reply_json(self, status: int, document: Any, headers: Mapping[str, str] | None = None) -> None:
        json_headers = {"Content-Type": "application/json", **(headers or {})}
        self.reply(status, json.dumps(document).encode(), json_headers)

    def log_message(self, *args: Any) -> None:
        pass


class LoopbackServer:
    """A plain HTTP server on 127.0.0.1 in a daemon thread, standing in for a remote party."""

    def serve(self, handler: type[BaseHTTPRequestHandler], path: str = "") -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}{path}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TokenEndpoint(LoopbackServer):
    """An authorization server's token endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {
            "access_token": "upstream-token-1",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
        self.status = 200
        outer = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                outer.requests.append({"authorization": self.headers.get("Authorization"), "form": form})
                self.reply_json(outer.status, outer.answer)

        self.serve(Handler, "/token")


def spec_for(endpoint: TokenEndpoint, **oauth: Any) -> ServerSpec:
    return ServerSpec(
        url="https://up.example/mcp",
        oauth_client={
            "token_url": endpoint.url,
            "client_id": "gateway",
            "client_secret": "s3cret",
            "scope": "tickets:read",
            "resource": "https://up.example/mcp",
            **oauth,
        },
    )
