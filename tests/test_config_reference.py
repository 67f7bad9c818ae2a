"""docs/configuration.md is generated from the option declarations and must not drift from them."""

from __future__ import annotations

from pathlib import Path

from mcpwarden.config_reference import reference_markdown

DOC = Path(__file__).parent.parent / "docs" / "configuration.md"


def test_reference_is_up_to_date() -> None:
    assert DOC.read_text() == reference_markdown(), (
        "regenerate: mcpwarden config reference > docs/configuration.md"
    )


def test_reference_names_every_section() -> None:
    text = reference_markdown()
    for key in ("`servers.<id>.command`", "`gateway.request_timeout`", "`limits[].rate`", "`state_dir`"):
        assert key in text
