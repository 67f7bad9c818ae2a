"""AuditEvent normalisation and the canonical form that the chain hashes."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from typing import Any

import pytest

from mcpwarden.audit.events import (
    EVENT_FIELDS,
    MAX_DETAIL_CHARS,
    AuditEvent,
    canonical_json,
    digest_arguments,
)
from mcpwarden.audit.log import GENESIS_HASH, record_hash

EventFactory = Callable[..., AuditEvent]  # the make_event fixture (conftest.py)


def test_canonical_json_is_sorted_compact_ascii_and_uses_float_repr() -> None:
    value = {"b": [1, 0.1 + 0.2], "a": "é", "c": None}
    assert canonical_json(value) == '{"a":"\\u00e9","b":[1,0.30000000000000004],"c":null}'


def test_canonical_json_rejects_non_finite_numbers() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": math.nan})


def test_digest_arguments_ignores_key_order_and_distinguishes_values() -> None:
    assert digest_arguments({"a": 1, "b": [2]}) == digest_arguments({"b": [2], "a": 1})
    assert digest_arguments({"a": 1}) != digest_arguments({"a": 2})
    assert digest_arguments(None) is None
    assert digest_arguments({}) == hashlib.sha256(b"{}").hexdigest()


def test_numbers_are_normalised_so_they_round_trip_through_sqlite(make_event: EventFactory) -> None:
    event = make_event(time=1_790_000_000, latency_ms=-0.0)
    assert isinstance(event.time, float) and event.time == 1_790_000_000.0
    assert math.copysign(1.0, event.latency_ms) == 1.0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("time", math.inf, ValueError),
        ("latency_ms", math.nan, ValueError),
        ("time", True, TypeError),
        ("time", "1", TypeError),
        ("request_bytes", -1, ValueError),
        ("response_bytes", 1.0, TypeError),
        ("request_bytes", 2**63, ValueError),
        ("decision", "maybe", ValueError),
        ("principal", None, TypeError),
        ("server", 3, TypeError),
        ("extra", {"f": object()}, ValueError),
        ("extra", {"f": math.inf}, ValueError),
        ("extra", ["not", "a", "mapping"], TypeError),
    ],
)
def test_invalid_values_fail_at_construction(
    field: str, value: Any, error: type[Exception], make_event: EventFactory
) -> None:
    with pytest.raises(error):
        make_event(**{field: value})


def test_detail_is_truncated_to_the_limit(make_event: EventFactory) -> None:
    event = make_event(detail="x" * 2000)
    assert len(event.detail) == MAX_DETAIL_CHARS
    assert event.detail.endswith("…")
    assert make_event(detail="y" * MAX_DETAIL_CHARS).detail == "y" * MAX_DETAIL_CHARS


def test_lone_surrogates_are_replaced_so_the_event_can_be_stored(make_event: EventFactory) -> None:
    event = make_event(target="bad\ud800name")
    assert event.target == "bad?name"
    event.target.encode("utf-8")


def test_extra_is_a_private_copy(make_event: EventFactory) -> None:
    extra: dict[str, Any] = {"cost": 0.25, "tags": ["a"]}
    event = make_event(extra=extra)
    extra["cost"] = 99
    extra["tags"].append("b")
    assert event.extra == {"cost": 0.25, "tags": ["a"]}


def test_to_dict_and_from_dict_round_trip(make_event: EventFactory) -> None:
    event = make_event(guard="policy", decision="deny", reason="tool-not-permitted", extra={"n": 1})
    data = event.to_dict()
    assert tuple(data) == EVENT_FIELDS
    assert AuditEvent.from_dict(json.loads(json.dumps(data))) == event
    with pytest.raises(ValueError, match="unknown"):
        AuditEvent.from_dict({**data, "arguments": {"secret": "x"}})


def test_record_hash_matches_the_documented_formula(make_event: EventFactory) -> None:
    event = make_event(extra={"cost": 0.1})
    payload = json.dumps(
        {"seq": 7, **event.to_dict()}, sort_keys=True, separators=(",", ":"), ensure_ascii=True
    )
    expected = hashlib.sha256((GENESIS_HASH + payload).encode()).hexdigest()
    assert record_hash(7, event, GENESIS_HASH) == expected
    assert record_hash(8, event, GENESIS_HASH) != expected
    assert record_hash(7, make_event(extra={"cost": 0.2}), GENESIS_HASH) != expected
