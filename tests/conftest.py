"""Shared fixtures: real upstream servers and real gateways, on stdio and on 127.0.0.1."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
