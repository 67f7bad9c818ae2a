"""Capping results: under the limit, shape kept, a marker, and a refusal when text cannot shrink."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from mcpwarden.quota.truncate import TRUNCATED_META, cap_result, json_size

KB = 1024


def tool_result(text: str, structured: bool = True) -> dict[str, Any]:
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": False}
    if structured:
        result["structuredContent"] = {"result": text}
    return result


def test_under_the_limit_is_untouched() -> None:
    result = tool_result("small")
    before = copy.deepcopy(result)
    assert cap_result(result, 10 * KB) == json_size(before)
    assert result == before


@pytest.mark.parametrize("text", ["x" * 300_000, 'é€😀\n"' * 40_000, "a\u0000b" * 50_000])
def test_text_is_cut_to_fit_with_a_marker_and_the_shape_is_kept(text: str) -> None:
    result = tool_result(text)
    original = json_size(result)
    size = cap_result(result, 16 * KB)
    assert size is not None and size <= 16 * KB and size == json_size(result)
    block = result["content"][0]
    assert block["type"] == "text" and block["text"].endswith("over the 16 KB limit]")
    assert text.startswith(block["text"].split("\n[truncated by mcpwarden")[0])
    assert isinstance(result["structuredContent"]["result"], str)
    assert result["structuredContent"]["result"].endswith("over the 16 KB limit]")
    assert result["_meta"][TRUNCATED_META] == {"originalBytes": original, "limitBytes": 16 * KB}
    assert result["isError"] is False
    assert size > 8 * KB  # the cap is used, not wasted


def test_the_longest_strings_are_cut_first() -> None:
    result: dict[str, Any] = {
        "content": [
            {"type": "text", "text": "keep me whole " * 20},
            {"type": "text", "text": "y" * 200_000},
        ]
    }
    short = result["content"][0]["text"]
    assert cap_result(result, 8 * KB) is not None
    assert result["content"][0]["text"] == short
    assert len(result["content"][1]["text"]) < 8 * KB


def test_resource_and_prompt_results_are_capped_too() -> None:
    resource = {"contents": [{"uri": "file:///a", "mimeType": "text/plain", "text": "z" * 100_000}]}
    assert (cap_result(resource, 4 * KB) or 1 << 30) <= 4 * KB
    assert resource["contents"][0]["uri"] == "file:///a"
    prompt = {"messages": [{"role": "user", "content": {"type": "text", "text": "w" * 100_000}}]}
    assert (cap_result(prompt, 4 * KB) or 1 << 30) <= 4 * KB


def test_binary_content_is_never_cut_so_it_cannot_fit() -> None:
    image = base64.b64encode(b"\x89PNG" * 30_000).decode()
    result = {"content": [{"type": "image", "data": image, "mimeType": "image/png"}]}
    assert cap_result(result, 8 * KB) is None


def test_many_small_strings_cannot_shrink() -> None:
    result = {"content": [{"type": "text", "text": f"row {i}"} for i in range(5000)]}
    assert cap_result(result, 8 * KB) is None
