"""The training pipeline's generator: deterministic, covers every attack family, and its output is
caught by the engine; benign insertions are not."""

from __future__ import annotations

from collections import Counter

from training.generate import FAMILIES, Tool, generate, render

TOOLS = [
    Tool("get_weather", "Get the weather for a city.", ["- city (string): City name"], "s1", "docker"),
    Tool(
        "search_docs",
        "Search the documentation. Returns matching pages.",
        ["- query (string): Search text"],
        "s2",
        "docker",
    ),
    Tool(
        "send_invoice",
        "Send an invoice to a customer by email.",
        ["- invoice_id (string): Invoice"],
        "s3",
        "bfcl",
    ),
]


def test_generator_is_deterministic() -> None:
    a = list(generate(TOOLS, 50, 20, seed=3))
    b = list(generate(TOOLS, 50, 20, seed=3))
    assert a == b
    assert a != list(generate(TOOLS, 50, 20, seed=4))


def test_generator_covers_families_and_labels() -> None:
    rows = list(generate(TOOLS, 600, 100, seed=1))
    fams = Counter(r["meta"]["family"] for r in rows if r["label"] == 1)
    assert set(FAMILIES) - {"concealment"} <= set(fams) | {"schema"}
    assert Counter(r["label"] for r in rows) == {1: 600, 0: 100}
    assert all(r["kind"] == "tool_description" and r["text"].startswith("name: ") for r in rows)


def test_engine_flags_generated_poison_and_passes_benign_insertions() -> None:
    from mcpwarden.detect import scan

    rows = list(generate(TOOLS, 120, 60, seed=11))
    pos = [scan(r["text"], "tool_description").flagged for r in rows if r["label"] == 1]
    neg = [scan(r["text"], "tool_description").flagged for r in rows if r["label"] == 0]
    assert sum(pos) / len(pos) >= 0.9
    assert sum(neg) / len(neg) <= 0.1


def test_render_format() -> None:
    assert render("t", "d", ["- a (string): x"]) == "name: t\ndescription: d\nparameters:\n- a (string): x"
