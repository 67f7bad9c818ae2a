"""loads_exact: the fast lanes' reading of a message is the standard one, or there is none."""

from __future__ import annotations

import json

import pytest

from mcpwarden.transport.wire import loads_exact, parse_message


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


def test_a_long_integer_is_kept_exactly_by_the_standard_reading() -> None:
    data = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":%d}}' % 2**70
    message, error = parse_message(data)
    assert error is None and message is not None
    assert message["params"]["a"] == 2**70
