"""The fast lane answers exactly as the SDK path does, and knows which messages are not its own.

Each request is sent twice on the raw stdio wire: once plain (the fast lane takes it) and once with a
progress token (which only the SDK path handles); both answers must match.
"""

from __future__ import annotations

import copy
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from mcpwarden.transport.fastlane import FastLane
from tests.support import LEGACY_INITIALIZE, GatewayUrl, http_gateway, stdio_upstream, write_config
from tests.transport.test_stdio_wire import META, RawStdio

CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[RawStdio]:
    config = write_config(
        tmp_path,
        {"alpha": stdio_upstream("alpha")},
        gateway={"request_timeout": 2},
        policy={
            "allow": [{"principal": "*", "tool": "alpha__*"}],
            "deny": [{"principal": "*", "tool": "alpha__pid"}],
        },
    )
    connection = RawStdio(config)
    yield connection
    connection.close()


def _call(request_id: int, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
    params = {"name": name, "arguments": arguments, "_meta": {**META, **meta}}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": params}


def _comparable(answer: dict[str, Any]) -> dict[str, Any]:
    answer = copy.deepcopy(answer)
    answer.pop("id")
    if isinstance(answer.get("error", {}).get("data"), dict):
        answer["error"]["data"].pop("correlation_id", None)
    return answer


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("alpha__echo", {"text": "hello"}),
        ("alpha__add", {"a": 2, "b": 3}),  # structured content
        ("alpha__fail", {"message": "it broke"}),  # the tool's own error result
        ("alpha__nope", {}),  # no such tool
        ("alpha__pid", {}),  # refused by policy
        ("alpha__add", {"a": "two"}),  # invalid arguments, refused by the upstream
        ("alpha__echo", {"text": "key AKIAIOSFODNN7EXAMPLE"}),  # a secret leaving in arguments
        ("alpha__slow", {"seconds": 5}),  # upstream timeout
        ("alpha__add", {"a": 3**50, "b": 1}),  # beyond 64 bits: relayed exactly, never as a float
        ("alpha__power", {"base": 3, "exponent": 50}),  # a result beyond 64 bits, kept exact
    ],
)
def test_both_lanes_answer_alike(raw: RawStdio, name: str, arguments: dict[str, Any]) -> None:
    fast = raw.request(_call(1, name, arguments))
    sdk = raw.request(_call(2, name, arguments, progressToken="p"))
    assert (fast["id"], sdk["id"]) == (1, 2)
    assert _comparable(fast) == _comparable(sdk)


def test_a_cancelled_fast_call_gets_no_answer_and_the_gateway_goes_on(raw: RawStdio) -> None:
    raw.send(_json(_call(1, "alpha__slow", {"seconds": 1.5})))
    time.sleep(0.2)
    raw.send(_json({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1}}))
    assert raw.request(_call(2, "alpha__echo", {"text": "next"}))["id"] == 2
    time.sleep(1.5)  # past when the slow call would have answered
    assert raw.request(_call(3, "alpha__echo", {"text": "after"}))["id"] == 3


def test_a_legacy_session_stays_on_the_sdk_path(raw: RawStdio) -> None:
    init = LEGACY_INITIALIZE
    assert raw.request(init)["result"]["protocolVersion"] == "2025-11-25"
    raw.send(_json({"jsonrpc": "2.0", "method": "notifications/initialized"}))
    legacy_call = {
        "jsonrpc": "2.0",
        "id": 2,
        "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {"text": "x"}},
    }
    answer = raw.request(legacy_call)
    assert answer["result"]["content"][0]["text"] == "x"
    assert "resultType" not in answer["result"]  # a 2025 result, shaped by the SDK


def _json(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    "change",
    [
        lambda m: m["params"]["_meta"].update(progressToken="p"),
        lambda m: m["params"].update(task={"ttl": 1000}),
        lambda m: m["params"].update(requestState="s", inputResponses={}),
        lambda m: m["params"]["_meta"].update({"io.modelcontextprotocol/protocolVersion": "2025-11-25"}),
        lambda m: m["params"]["_meta"].update(
            {"io.modelcontextprotocol/clientCapabilities": {"elicitation": 5}}
        ),
        lambda m: m["params"]["_meta"].pop(CAPABILITIES),
        lambda m: m["params"].pop("_meta"),
        lambda m: m["params"].update(arguments=[1]),
        lambda m: m["params"].update(name=7),
        lambda m: m.update(id=True),
        lambda m: m.update(method="tools/list"),
        lambda m: m.update(extra=1),
    ],
)
def test_anything_but_the_plain_shape_goes_to_the_sdk(change: Any) -> None:
    lane = FastLane(gateway=None)  # type: ignore[arg-type]  # accept() never touches the gateway
    message = _call(1, "alpha__echo", {"text": "x"})
    assert lane.accept(copy.deepcopy(message)) is not None
    change(message)
    assert lane.accept(message) is None


@pytest.fixture(scope="module")
def http_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayUrl]:
    directory = tmp_path_factory.mktemp("fastlane-http")
    config = write_config(directory, {"alpha": stdio_upstream("alpha")}, gateway={"request_timeout": 2})
    with http_gateway(config) as url:
        yield url


def _http_call(url: GatewayUrl, message: dict[str, Any], **headers: str) -> httpx.Response:
    base = {
        "Accept": "application/json, text/event-stream",
        "Content-Type": "application/json",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": "tools/call",
        "Mcp-Name": message["params"]["name"],
    }
    return httpx.post(url, json=message, headers={**base, **url.auth, **headers}, timeout=10)


@pytest.mark.parametrize(
    ("name", "arguments"),
    [
        ("alpha__echo", {"text": "hello"}),
        ("alpha__nope", {}),
        ("alpha__add", {"a": "two"}),
        ("alpha__echo", {"text": "key AKIAIOSFODNN7EXAMPLE"}),
        ("alpha__add", {"a": 3**50, "b": 1}),  # beyond 64 bits: relayed exactly, never as a float
        ("alpha__power", {"base": 3, "exponent": 50}),  # a result beyond 64 bits, kept exact
    ],
)
def test_both_lanes_answer_alike_over_http(
    http_url: GatewayUrl, name: str, arguments: dict[str, Any]
) -> None:
    fast = _http_call(http_url, _call(1, name, arguments))
    sdk = _http_call(http_url, _call(2, name, arguments, progressToken="p"))
    assert fast.status_code == sdk.status_code
    assert fast.headers["content-type"] == sdk.headers["content-type"] == "application/json"
    assert _comparable(fast.json()) == _comparable(sdk.json())


def test_header_disagreements_are_left_to_the_sdk(http_url: GatewayUrl) -> None:
    mismatch = _http_call(http_url, _call(1, "alpha__echo", {"text": "x"}), **{"Mcp-Name": "alpha__add"})
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["code"] == -32020  # HeaderMismatch, from the SDK's ladder


def test_a_second_request_under_an_id_in_flight_is_refused(raw: RawStdio) -> None:
    raw.send(_json(_call(1, "alpha__slow", {"seconds": 1})))
    raw.send(_json(_call(1, "alpha__echo", {"text": "same id"})))
    refusal = raw.receive()
    assert refusal["error"]["code"] == -32600 and refusal["id"] is None
    assert raw.receive()["result"]["content"][0]["text"].startswith("slept")  # the first one, answered once


def test_whitespace_around_a_header_value_is_not_part_of_it(http_url: GatewayUrl) -> None:
    # Clients' HTTP libraries refuse to send such a header, so this request is written by hand.
    body = json.dumps(_call(1, "alpha__echo", {"text": "x"})).encode()
    host, port = http_url.removeprefix("http://").split("/")[0].split(":")
    head = (
        f"POST /mcp HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Accept: application/json, text/event-stream\r\nMCP-Protocol-Version: 2026-07-28\r\n"
        "Mcp-Method: tools/call\r\nMcp-Name:   alpha__echo \t\r\n"
        f"Authorization: Bearer {http_url.api_key}\r\nContent-Length: {len(body)}\r\n"
        "Connection: close\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    status, _, rest = answer.partition(b"\r\n")
    assert b" 200 " in status, answer[:300]
    assert json.loads(rest.split(b"\r\n\r\n", 1)[1])["result"]["content"][0]["text"] == "x"


TASKS = {"extensions": {"io.modelcontextprotocol/tasks": {}}}


@pytest.mark.parametrize("declared", [False, True])
def test_both_lanes_refuse_a_task_the_caller_did_not_ask_for(raw: RawStdio, declared: bool) -> None:
    capabilities = {CAPABILITIES: TASKS if declared else {}}
    fast = raw.request(_call(1, "alpha__rogue_task", {}, **capabilities))
    sdk = raw.request(_call(2, "alpha__rogue_task", {}, progressToken="p", **capabilities))
    assert _comparable(fast) == _comparable(sdk)
    if declared:  # relayed, with the task id under the server's name
        assert fast["result"]["resultType"] == "task" and fast["result"]["taskId"] == "alpha__rogue-1"
    else:  # the caller could never poll it: fail closed
        assert fast["error"]["data"]["reason"] == "upstream-invalid-reply"
