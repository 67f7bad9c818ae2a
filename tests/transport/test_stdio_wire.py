"""The stdio front on the raw wire: malformed input gets the right JSON-RPC error and the stream
stays usable (THREATS E1-E4, E10, E18)."""

from __future__ import annotations

import json
import select
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import MCPWARDEN, stdio_upstream, write_config

META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


class RawStdio:
    def __init__(self, config: Path) -> None:
        self.proc = subprocess.Popen(
            [*MCPWARDEN, "stdio", "-c", str(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def receive(self, timeout: float = 15) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        assert ready, "no answer from the gateway"
        return json.loads(self.proc.stdout.readline())  # type: ignore[no-any-return]

    def request(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(json.dumps(message).encode())
        return self.receive()

    def close(self) -> str:
        self.proc.kill()
        _, stderr = self.proc.communicate(timeout=10)
        return stderr.decode(errors="replace")


@pytest.fixture
def raw(tmp_path: Path) -> Iterator[RawStdio]:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")}, gateway={"max_request_kb": 64})
    connection = RawStdio(config)
    yield connection
    connection.close()


def _ok_call(request_id: int) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "tools/call",
        "params": {"name": "alpha__echo", "arguments": {"text": "still fine"}, "_meta": META},
    }


@pytest.mark.parametrize(
    ("line", "code", "echoed_id"),
    [
        (b'{"jsonrpc":"2.0","id":1,"method":"tools/list"', -32700, None),
        (b"{not json at all", -32700, None),
        (b"null", -32600, None),
        (b"42", -32600, None),
        (b"{}", -32600, None),
        (b'{"id":2,"method":"ping"}', -32600, 2),
        (b'{"jsonrpc":"1.0","id":3,"method":"ping"}', -32600, 3),
        (b'{"jsonrpc":"2.0","id":4,"method":5}', -32600, 4),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, None),
        (b'{"jsonrpc":"2.0","id":5,"method":"ping","params":[1]}', -32600, 5),
        (b"[]", -32600, None),
        (b'[{"jsonrpc":"2.0","id":6,"method":"tools/list"}]', -32600, None),
        (b'{"jsonrpc":"2.0","id":7,"result":{},"error":{"code":1,"message":"x"}}', -32600, 7),
    ],
)
def test_malformed_line_gets_an_error_and_the_stream_stays_usable(
    raw: RawStdio, line: bytes, code: int, echoed_id: int | None
) -> None:
    raw.send(line)
    answer = raw.receive()
    assert answer["error"]["code"] == code
    assert answer["id"] == echoed_id
    assert "Traceback" not in answer["error"]["message"]
    result = raw.request(_ok_call(100))
    assert result["result"]["content"][0]["text"] == "still fine"


def test_over_long_line_is_refused_without_holding_it(raw: RawStdio) -> None:
    raw.send(b'{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"text":"' + b"a" * 300_000 + b'"}}')
    assert raw.receive()["error"]["code"] == -32600
    assert raw.request(_ok_call(10))["result"]["content"][0]["text"] == "still fine"


def test_a_burst_larger_than_the_read_queue_is_answered_in_order(raw: RawStdio) -> None:
    # More lines for the SDK path in one write than the reader queues: reading pauses and resumes.
    raw.send(b"\n".join(b'{"id":%d,"method":"ping"}' % i for i in range(300)))
    # Plain readline, no select: the answers arrive in bursts, and a line already in the file
    # object's buffer does not make its descriptor readable (pytest's timeout bounds the wait).
    assert raw.proc.stdout is not None
    assert [json.loads(raw.proc.stdout.readline())["id"] for _ in range(300)] == list(range(300))
    assert raw.request(_ok_call(301))["result"]["content"][0]["text"] == "still fine"


@pytest.mark.parametrize("answers_to", ["file", "pipe"])
def test_a_file_of_requests_is_answered_before_the_gateway_exits(tmp_path: Path, answers_to: str) -> None:
    # An event loop cannot watch a regular file; uvloop used to take one and abort the process.
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    requests = tmp_path / "requests.jsonl"
    requests.write_bytes(b"".join(json.dumps(_ok_call(i)).encode() + b"\n" for i in range(5)))
    answers = tmp_path / "answers.jsonl"
    with requests.open("rb") as stdin, answers.open("wb") as file:
        done = subprocess.run(
            [*MCPWARDEN, "stdio", "-c", str(config)],
            stdin=stdin,
            stdout=file if answers_to == "file" else subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=60,
        )
    out = answers.read_bytes() if answers_to == "file" else done.stdout
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    answered = [json.loads(line) for line in out.splitlines()]
    assert sorted(answer["id"] for answer in answered) == list(range(5))
    assert all(answer["result"]["content"][0]["text"] == "still fine" for answer in answered)


def test_batch_of_a_denied_and_an_allowed_call_runs_neither(raw: RawStdio) -> None:
    batch = [_ok_call(11), {**_ok_call(12), "params": {"name": "ghost__x", "_meta": META}}]
    raw.send(json.dumps(batch).encode())
    answer = raw.receive()
    assert answer["error"]["code"] == -32600
    assert "batches" in answer["error"]["message"]


def test_modern_request_with_unsupported_version_lists_supported(raw: RawStdio) -> None:
    meta = {**META, "io.modelcontextprotocol/protocolVersion": "1999-01-01"}
    answer = raw.request({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": meta}})
    assert answer["error"]["code"] == -32022
    assert "2026-07-28" in answer["error"]["data"]["supported"]


def _initialize(request_id: int, version: str) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "method": "initialize",
        "params": {
            "protocolVersion": version,
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        },
    }


def test_legacy_lifecycle_second_initialize_is_refused(raw: RawStdio) -> None:
    first = raw.request(_initialize(1, "2025-11-25"))
    assert first["result"]["protocolVersion"] == "2025-11-25"
    raw.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    second = raw.request(_initialize(2, "2025-11-25"))
    assert second["error"]["code"] == -32600


def test_initialize_sent_as_a_notification_is_ignored_without_a_trace(raw: RawStdio) -> None:
    notification = {k: v for k, v in _initialize(0, "2025-11-25").items() if k != "id"}
    raw.send(json.dumps(notification).encode())
    # It did not count as the handshake: the real one still succeeds, and then a repeated
    # notification changes nothing.
    assert raw.request(_initialize(1, "2025-11-25"))["result"]["protocolVersion"] == "2025-11-25"
    raw.send(json.dumps(notification).encode())
    raw.send(b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
    listed = raw.request({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert any(tool["name"] == "alpha__echo" for tool in listed["result"]["tools"])
    stderr = raw.close()
    assert "Traceback" not in stderr
    assert stderr.count("ignored an 'initialize' sent as a notification") == 2


def test_unknown_protocol_version_is_answered_with_a_supported_one(raw: RawStdio) -> None:
    answer = raw.request(_initialize(1, "1999-01-01"))
    assert answer["result"]["protocolVersion"] in {"2025-11-25", "2025-06-18"}


def test_call_before_initialize_is_refused_and_not_forwarded(raw: RawStdio) -> None:
    answer = raw.request(
        {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {"name": "alpha__echo", "arguments": {}},
        }
    )
    assert "error" in answer


def test_upstream_stderr_is_logged_not_forwarded(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"alpha": stdio_upstream("alpha")})
    connection = RawStdio(config)
    try:
        answer = connection.request(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "alpha__noise", "arguments": {"text": "canary-on-stderr"}, "_meta": META},
            }
        )
        assert answer["result"]["content"][0]["text"] == "noisy"
        assert b"canary-on-stderr" not in json.dumps(answer).encode()
    finally:
        stderr = connection.close()
    assert "canary-on-stderr" in stderr  # in the gateway's log, attributed to the upstream
