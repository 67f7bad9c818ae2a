"""Drift since the last scan (rug pulls, THREATS C3/C4): a local file of tool-definition hashes.

The first scan of a server records a SHA-256 of the canonical JSON of each tool definition (and of
the server's instructions). Later scans compare: a changed definition or changed instructions are
reported every time until the user accepts them with `--update-pins` (a rug pull must not pass
because someone re-ran the scan); a new tool is reported once and then recorded; a removed tool is
only noted. Servers are keyed by `ServerEntry.identity` (name plus command or URL), not by the file
that configures them, so the same server seen by two clients shares its pins.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mcpwarden.scan.model import ScanFinding

__all__ = ["DEFAULT_PINS_FILE", "PinFile", "definition_hash"]

DEFAULT_PINS_FILE = Path("~/.mcpwarden/scan-pins.json")
_VERSION = 1
# _meta is transport bookkeeping (timestamps, server info), not part of what the model is told.
_UNPINNED_KEYS = frozenset({"_meta"})


def definition_hash(definition: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of a definition: sorted keys, no whitespace, UTF-8."""
    pinned = {key: value for key, value in definition.items() if key not in _UNPINNED_KEYS}
    canonical = json.dumps(pinned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _text_hash(text: str | None) -> str | None:
    return None if text is None else "sha256:" + hashlib.sha256(text.encode("utf-8")).hexdigest()


class PinFile:
    """The pin file in memory; `save()` writes it atomically (a crash never leaves half a file)."""

    def __init__(self, path: Path, data: dict[str, Any]) -> None:
        self.path = path
        self._servers: dict[str, Any] = data.setdefault("servers", {})
        self._data = data

    @classmethod
    def load(cls, path: Path) -> PinFile:
        path = path.expanduser()
        if not path.exists():
            return cls(path, {"version": _VERSION, "servers": {}})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the pin file: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
            raise ValueError(f"{path}: not a scan pin file")
        return cls(path, data)

    def check(
        self,
        identity: str,
        tools: Mapping[str, Mapping[str, Any]],
        instructions: str | None,
        *,
        accept_changes: bool,
    ) -> list[ScanFinding]:
        """Findings for drift against the recorded pins; records what is new (and, if asked, changes)."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        current = {name: definition_hash(tool) for name, tool in tools.items()}
        record = self._servers.get(identity)
        if not isinstance(record, dict):
            self._servers[identity] = {
                "first_seen": now,
                "instructions": _text_hash(instructions),
                "tools": current,
            }
            return []
        findings: list[ScanFinding] = []
        pinned: dict[str, str] = record.setdefault("tools", {})
        for name, digest in sorted(current.items()):
            old = pinned.get(name)
            if old is None:
                findings.append(
                    ScanFinding(
                        "tool-added",
                        "medium",
                        "New tool since the last scan",
                        "The server now offers a tool it did not offer before; review it before use.",
                        tool=name,
                        evidence=digest,
                        location="tool",
                    )
                )
                pinned[name] = digest
            elif old != digest:
                findings.append(
                    ScanFinding(
                        "tool-changed",
                        "high",
                        "Tool definition changed since the last scan (possible rug pull)",
                        "The definition (description or schema) differs from the one pinned earlier. A "
                        "server that changes what its tools say after approval can turn a benign tool "
                        "malicious. Review it, then accept it with --update-pins.",
                        tool=name,
                        evidence=f"{old} -> {digest}",
                        location="tool",
                    )
                )
                if accept_changes:
                    pinned[name] = digest
        for name in sorted(set(pinned) - set(current)):
            findings.append(
                ScanFinding(
                    "tool-removed",
                    "info",
                    "Tool removed since the last scan",
                    tool=name,
                    location="tool",
                )
            )
            if accept_changes:
                del pinned[name]
        instructions_hash = _text_hash(instructions)
        if record.get("instructions") != instructions_hash:
            findings.append(
                ScanFinding(
                    "instructions-changed",
                    "high",
                    "Server instructions changed since the last scan",
                    "The instructions the server gives every session changed; they reach the model "
                    "before any tool is used (line jumping, C6).",
                    evidence=f"{record.get('instructions')} -> {instructions_hash}",
                    location="instructions",
                )
            )
            if accept_changes:
                record["instructions"] = instructions_hash
        record["last_seen"] = now
        return findings

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._data["version"] = _VERSION
        text = json.dumps(self._data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        handle, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=".scan-pins.", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                stream.write(text)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
