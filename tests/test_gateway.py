"""The gateway's shortcut past the SDK's result check holds exactly where the check would hand the
result back unchanged, and nowhere else."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest
from mcp_types.methods import serialize_server_result

from mcpwarden.gateway import PLAIN_RESULT_VERSION, is_plain_call_result

TEXT = {"type": "text", "text": "3"}
PARTS: dict[str, list[Any]] = {
    "content": [[], [TEXT], [TEXT, {"type": "text", "text": "\ud800 odd"}]],
    "structuredContent": [{}, {"result": 3, "none": None, "deep": [None, {"x": None}]}],
    "isError": [False, True],
    "_meta": [{}, {"com.example/trace": "t", "nested": {"inner": None}}],
}


def shapes() -> list[dict[str, Any]]:
    found = []
    optional = ["structuredContent", "isError", "_meta"]
    for count in range(len(optional) + 1):
        for keys in itertools.combinations(optional, count):
            for content in PARTS["content"]:
                for values in itertools.product(*(PARTS[key] for key in keys)):
                    chosen = dict(zip(keys, values, strict=True))
                    found.append({"resultType": "complete", "content": content, **chosen})
    return found


@pytest.mark.parametrize("raw", shapes())
def test_a_plain_result_is_what_the_sdk_would_return(raw: dict[str, Any]) -> None:
    assert is_plain_call_result(raw)
    assert serialize_server_result("tools/call", PLAIN_RESULT_VERSION, copy.deepcopy(raw)) == raw


@pytest.mark.parametrize(
    "raw",
    [
        {"content": [TEXT]},  # no resultType: the SDK refuses it
        {"resultType": "input_required", "content": [TEXT]},
        {"resultType": "complete", "content": [TEXT], "extra": 1},  # dropped by the SDK
        {"resultType": "complete", "content": [{**TEXT, "annotations": None}]},
        {"resultType": "complete", "content": [{**TEXT, "annotations": {"priority": 1}}]},
        {"resultType": "complete", "content": [{"type": "image", "data": "AA==", "mimeType": "image/png"}]},
        {"resultType": "complete", "content": [{"type": "text", "text": 3}]},
        {"resultType": "complete", "content": "text"},
        {"resultType": "complete", "content": [TEXT], "isError": None},
        {"resultType": "complete", "content": [TEXT], "isError": 0},
        {"resultType": "complete", "content": [TEXT], "structuredContent": [1]},
        {"resultType": "complete", "content": [TEXT], "_meta": {"dropped": None}},
        {"resultType": "complete", "content": [TEXT], "_meta": "m"},
    ],
)
def test_any_other_result_takes_the_sdk_check(raw: dict[str, Any]) -> None:
    assert not is_plain_call_result(raw)
