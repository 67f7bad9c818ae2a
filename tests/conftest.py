"""Shared fixtures: real upstream servers and real gateways, on stdio and on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import TokenEndpoint


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def endpoint() -> Iterator[TokenEndpoint]:
    """An OAuth token endpoint on 127.0.0.1 (tests.support.TokenEndpoint)."""
    served = TokenEndpoint()
    yield served
    served.close()
