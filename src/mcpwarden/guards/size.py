"""Size caps: a request or a result over its cap is refused whole (THREATS E4).

The transports cap raw bytes before parsing (HTTP body limit, stdio line limit); this guard caps
what the pipeline measured, so a result that an upstream streams in is still refused before it
reaches the client.
"""

from __future__ import annotations

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pipeline import BaseGuard


class SizeGuard(BaseGuard):
    name = "size"

    def __init__(self, max_request_bytes: int, max_result_bytes: int) -> None:
        self.max_request_bytes = max_request_bytes
        self.max_result_bytes = max_result_bytes

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> SizeGuard:
        return cls(settings.gateway.max_request_kb * 1024, settings.gateway.max_result_kb * 1024)

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.request_bytes > self.max_request_bytes:
            return deny(
                reasons.REQUEST_TOO_LARGE,
                f"request of {exchange.request_bytes} bytes is over the {self.max_request_bytes}-byte limit",
            )
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.response_bytes > self.max_result_bytes:
            return deny(
                reasons.RESULT_TOO_LARGE,
                f"result of {exchange.response_bytes} bytes is over the {self.max_result_bytes}-byte limit",
            )
        return ALLOW
