"""parse_message: the standard reading both fronts check messages with."""

from __future__ import annotations

from mcpwarden.transport.wire import parse_message


def test_a_long_integer_is_kept_exactly_by_the_standard_reading() -> None:
    data = b'{"jsonrpc":"2.0","id":1,"method":"m","params":{"a":%d}}' % 2**70
    message, error = parse_message(data)
    assert error is None and message is not None
    assert message["params"]["a"] == 2**70
