"""Legacy session ids with 256 random bits, where the SDK mints a uuid4 (122 bits).

THREATS A6 asks for session ids of at least 128 bits. The SDK (pinned 2.3) mints `uuid4().hex`
inside its session manager and offers no hook, so the HTTP front translates at its edge: every
`Mcp-Session-Id` the SDK sends out is replaced by a fresh `secrets.token_urlsafe(32)` (43 characters,
all within 0x21-0x7E), and an id a client sends back is mapped to the SDK's own before the SDK sees
it. An id the gateway never issued becomes one that cannot exist, so the SDK answers 404 as for any
unknown session; the SDK's internal ids never leave the process. A mapping is forgotten when its
session is deleted (only its owner can: the SDK binds sessions to the credential), not on a 404,
which another principal's request also gets; past `max_sessions` the oldest mapping goes first.
"""

from __future__ import annotations

import secrets
from collections import OrderedDict

from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_HEADER = b"mcp-session-id"
_UNKNOWN = b"unknown-session"  # never an id the SDK issues (those are 32 hex digits)


class SessionIdTranslation:
    def __init__(self, app: ASGIApp, max_sessions: int = 100_000) -> None:
        self.app = app
        self.max_sessions = max_sessions
        self._internal: OrderedDict[bytes, bytes] = OrderedDict()  # ours -> the SDK's
        self._external: dict[bytes, bytes] = {}  # the SDK's -> ours

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ours = next((value for name, value in scope["headers"] if name == SESSION_HEADER), None)
        if ours is not None:
            theirs = self._internal.get(ours, _UNKNOWN)
            headers = [
                (name, theirs if name == SESSION_HEADER else value) for name, value in scope["headers"]
            ]
            scope = {**scope, "headers": headers}

        async def send_translated(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {
                    **message,
                    "headers": [self._outgoing(name, value) for name, value in message.get("headers", [])],
                }
                if ours is not None and scope["method"] == "DELETE" and message["status"] < 300:
                    self._forget(ours)
            await send(message)

        await self.app(scope, receive, send_translated)

    def _outgoing(self, name: bytes, value: bytes) -> tuple[bytes, bytes]:
        if name.lower() != SESSION_HEADER:
            return name, value
        ours = self._external.get(value)
        if ours is None:
            ours = secrets.token_urlsafe(32).encode()
            self._internal[ours], self._external[value] = value, ours
            while len(self._internal) > self.max_sessions:
                _, oldest = self._internal.popitem(last=False)
                self._external.pop(oldest, None)
        return name, ours

    def _forget(self, ours: bytes) -> None:
        theirs = self._internal.pop(ours, None)
        if theirs is not None:
            self._external.pop(theirs, None)
