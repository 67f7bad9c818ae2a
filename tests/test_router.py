"""Names: every exposed name maps back to exactly one configured server."""

from __future__ import annotations

import pytest

from mcpwarden.router import Route, Router, RoutingError

ROUTER = Router("__", ["notes", "clock"])


@pytest.mark.parametrize(
    ("method", "params", "expected"),
    [
        (
            "tools/call",
            {"name": "notes__search", "arguments": {"q": 1}},
            Route("notes", "search", "notes__search", {"q": 1}),
        ),
        ("tools/call", {"name": "notes__a__b"}, Route("notes", "a__b", "notes__a__b", None)),
        ("prompts/get", {"name": "clock__summary"}, Route("clock", "summary", "clock__summary", None)),
        (
            "resources/read",
            {"uri": "mcpwarden://notes/file:///a.txt"},
            Route("notes", "file:///a.txt", "mcpwarden://notes/file:///a.txt", None),
        ),
        (
            "completion/complete",
            {"ref": {"type": "ref/prompt", "name": "notes__p"}},
            Route("notes", "p", "notes__p", None),
        ),
        ("tasks/get", {"taskId": "clock__t-1"}, Route("clock", "t-1", "clock__t-1", None)),
        ("tools/list", {}, Route(None, None, None, None)),
    ],
)
def test_routes(method: str, params: dict[str, object], expected: Route) -> None:
    assert ROUTER.route(method, params) == expected


@pytest.mark.parametrize(
    ("method", "params", "reason"),
    [
        ("tools/call", {"name": "ghost__search"}, "unknown-tool"),
        ("tools/call", {"name": "search"}, "unknown-tool"),
        ("tools/call", {"name": "notes__"}, "unknown-tool"),
        ("tools/call", {"name": "notes__re\u0430d"}, "invalid-name"),  # Cyrillic a: a look-alike name
        ("tools/call", {"name": "notes__x\u200b"}, "invalid-name"),
        ("tools/call", {"name": "x" * 129}, "invalid-name"),
        ("tools/call", {"name": 5}, "invalid-name"),
        ("tools/call", {"name": "notes__s", "arguments": [1]}, "invalid-request"),
        ("prompts/get", {"name": "ghost__p"}, "unknown-prompt"),
        ("resources/read", {"uri": "file:///etc/passwd"}, "unknown-resource"),
        ("resources/read", {"uri": "mcpwarden://ghost/x"}, "unknown-resource"),
        ("resources/read", {"uri": 7}, "invalid-request"),
        ("tasks/get", {"taskId": "nope"}, "unknown-task"),
    ],
)
def test_refusals(method: str, params: dict[str, object], reason: str) -> None:
    with pytest.raises(RoutingError) as caught:
        ROUTER.route(method, params)
    assert caught.value.reason == reason


def test_expose_and_split_are_inverse() -> None:
    assert ROUTER.split(ROUTER.expose("notes", "x__y")) == ("notes", "x__y")
    assert ROUTER.split_uri(ROUTER.expose_uri("clock", "time://now?tz=UTC")) == ("clock", "time://now?tz=UTC")
