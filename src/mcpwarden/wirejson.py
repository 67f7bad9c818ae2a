"""JSON for the fast lanes: orjson where its reading is exactly the standard one, else the standard
library, so relaying a message never changes it.

orjson reads an integer beyond 64 bits as a float and cannot write one at all; the SDK path (and
the standard library) keeps such integers exact. Lines and bodies are read with orjson unless they
hold a run of 19 digits (such messages are rare and lose only speed), and written with orjson unless
it refuses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import orjson

# The run of digits is found with two passes in C: every ASCII digit becomes "0" and everything
# else "x", then a substring search. The regex `\d{19}` took three times as long as orjson's whole
# parse of a typical request (it tries a match at every digit).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x78 for byte in range(256))
_LONG_RUN = b"0" * 19


def loads_exact(data: bytes) -> Any:
    """orjson's reading of `data` where it is exactly the standard one, else None (also for
    anything that is not strict JSON: NaN, lone surrogates, invalid UTF-8, nesting too deep)."""
    if _LONG_RUN in data.translate(_DIGITS_AS_ZERO):
        return None
    try:
        return orjson.loads(data)
    except ValueError:
        return None


def loads(data: bytes) -> Any:
    """The standard reading of `data`, through orjson where that is the same; ValueError if it is
    not JSON."""
    value = loads_exact(data)
    if value is not None:
        return value
    try:
        return json.loads(data)
    except RecursionError:
        raise ValueError("JSON nested too deep") from None


def dumps(value: Any, default: Callable[[Any], Any] | None = None) -> bytes:
    """`value` as compact JSON (`default` converts what JSON lacks, as in both libraries);
    TypeError or ValueError if it is not JSON."""
    try:
        return orjson.dumps(value, default=default)
    except TypeError:  # orjson.JSONEncodeError: an integer beyond 64 bits, or not JSON at all
        compact = json.dumps(
            value, separators=(",", ":"), ensure_ascii=False, allow_nan=False, default=default
        )
        return compact.encode()
