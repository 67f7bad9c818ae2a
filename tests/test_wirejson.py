"""wirejson: the fast lanes read and write JSON exactly as the standard library does."""

from __future__ import annotations

import json

import pytest

from mcpwarden.wirejson import dumps, loads, loads_exact


@pytest.mark.parametrize(
    "data",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"t","arguments":{"a":1.5}}}',
        b'{"n":922337203685477580,"m":-123456789012345678,"s":"caf\\u00e9 \\ud83d\\ude00"}',
        b'{"deep":[[[[{"a":[true,false,null]}]]]]}',
    ],
)
def test_strict_json_reads_as_the_standard_parser_reads_it(data: bytes) -> None:
    assert loads_exact(data) == json.loads(data)


@pytest.mark.parametrize(
    "data",
    [
        b'{"a":1180591620717411303425}',  # orjson would read this integer as a float
        b'{"a":-1180591620717411303425}',
        b'{"id":"1234567890123456789 in a string is declined too: only speed is lost"}',
        b'{"a":NaN}',
        b'{"a":"\\ud800"}',  # a lone surrogate
        b'{"a":"\xff"}',  # not UTF-8
        b"[" * 2000 + b"]" * 2000,
        b"not json",
    ],
)
def test_anything_else_is_left_to_the_standard_reading(data: bytes) -> None:
    assert loads_exact(data) is None


def test_loads_and_dumps_keep_long_integers_exact() -> None:
    value = {"big": 3**50, "negative": -(3**50), "small": 1, "text": "é"}
    encoded = dumps(value)
    assert json.loads(encoded) == value
    assert loads(encoded) == value
    assert loads(dumps({"a": 1.5})) == {"a": 1.5}


def test_loads_refuses_what_is_not_json() -> None:
    for data in (b"not json", b"[" * 100_000):
        with pytest.raises(ValueError):
            loads(data)


def test_dumps_converts_what_json_lacks_with_default_in_either_library() -> None:
    when = object()
    assert loads(dumps({"at": when}, default=lambda _: "then")) == {"at": "then"}
    assert loads(dumps({"at": when, "big": 3**50}, default=lambda _: "then")) == {"at": "then", "big": 3**50}
