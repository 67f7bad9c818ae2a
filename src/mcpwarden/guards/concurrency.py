"""A cap on requests one client has in flight at once (THREATS E21).

Keyed by the exchange's session key (a stdio connection, a legacy HTTP session, or for stateless
modern HTTP clients the principal), so one client cannot tie up every upstream slot; over the cap
the client gets a "busy" error at once and the gateway stays up.
"""

from __future__ import annotations

from collections import Counter

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pipeline import BaseGuard

_COUNTED = "concurrency.counted"


class ConcurrencyGuard(BaseGuard):
    name = "concurrency"

    def __init__(self, max_in_flight: int) -> None:
        self.max_in_flight = max_in_flight
        self._in_flight: Counter[str] = Counter()

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> ConcurrencyGuard:
        return cls(settings.gateway.max_in_flight)

    def in_flight(self, session_key: str) -> int:
        return self._in_flight[session_key]

    async def check_request(self, exchange: Exchange) -> Decision:
        if self._in_flight[exchange.session_key] >= self.max_in_flight:
            return deny(
                reasons.TOO_MANY_IN_FLIGHT,
                f"busy: this client already has {self.max_in_flight} requests in flight",
            )
        self._in_flight[exchange.session_key] += 1
        exchange.metadata[_COUNTED] = True
        return ALLOW

    def finish(self, exchange: Exchange) -> None:
        if exchange.metadata.pop(_COUNTED, False):
            self._in_flight[exchange.session_key] -= 1
            if self._in_flight[exchange.session_key] <= 0:
                del self._in_flight[exchange.session_key]
