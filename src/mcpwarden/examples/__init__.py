"""Example upstream servers and configuration shipped with the package (`mcpwarden serve --example`)."""

from __future__ import annotations

import sys
from pathlib import Path

from mcpwarden.config import PolicyRule, PolicySettings, ServerSpec, Settings

EXAMPLES_DIR = Path(__file__).parent


def example_settings(state_dir: Path) -> Settings:
    """Two small servers, started with this Python, so the example works on a fresh machine."""
    return Settings(
        servers={
            "notes": ServerSpec(command=sys.executable, args=(str(EXAMPLES_DIR / "notes_server.py"),)),
            "clock": ServerSpec(command=sys.executable, args=(str(EXAMPLES_DIR / "clock_server.py"),)),
        },
        state_dir=state_dir,
        # A sensible grant (HTTP callers get nothing that is not granted): everyone may read the
        # clock and search or read notes; only the local stdio user and callers with role `editor`
        # may add notes.
        policy=PolicySettings(
            allow=(
                PolicyRule(principal="stdio", tool="*"),
                PolicyRule(principal="*", tool="clock__*"),
                PolicyRule(principal="*", tool="notes__search"),
                PolicyRule(principal="*", tool="notes__summarize"),
                PolicyRule(principal="*", tool="mcpwarden://notes/*"),
                PolicyRule(principal="role:editor", tool="notes__*"),
            )
        ),
    )
