"""Pins and changes awaiting review, in `state_dir/pins.db`, keyed by the configured server id.

Three tables:
- `pins`: the approved definition of each (server, kind, name); kind is `tool`, `prompt`,
  `resource`, `template` or `instructions` (name ""). Keyed by the server id from the config —
  never by a command line that may hold secrets.
- `pending`: a definition seen that differs from its pin, or a tool that is new since the server
  was first pinned; it stays until `mcpwarden pins approve` (which pins exactly the definition
  shown in `pins list`; if the server changes again, the pending entry follows it).
- `servers`: when each server was first pinned (trust on first use: what a server offers the first
  time it is listed is pinned without review), per kind: a server's first tool listing is recorded
  under its id, its first prompt listing under `<id>/prompt`, and so on (ids cannot hold `/`).

`observe` is the one decision: it compares what a server offers now with the pin, in one
transaction, so concurrent gateways on one state dir agree.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcpwarden.pinning.diff import DefinitionKind, PinKind, digest
from mcpwarden.store.sqlite import LockedDatabase, transaction

DB_FILE = "pins.db"
Observation = Literal["ok", "pinned", "pending"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pins (
    server TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    digest TEXT NOT NULL, definition TEXT NOT NULL, pinned_at REAL NOT NULL, approved_by TEXT,
    PRIMARY KEY (server, kind, name)
);
CREATE TABLE IF NOT EXISTS pending (
    server TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL,
    digest TEXT NOT NULL, definition TEXT NOT NULL, first_seen REAL NOT NULL, last_seen REAL NOT NULL,
    PRIMARY KEY (server, kind, name)
);
CREATE TABLE IF NOT EXISTS servers (server TEXT PRIMARY KEY, first_seen REAL NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class PendingChange:
    server: str
    kind: str
    name: str
    digest: str
    definition: dict[str, Any]
    previous: dict[str, Any] | None  # the pinned definition; None for a new tool
    first_seen: float
    last_seen: float


@dataclass(frozen=True, slots=True)
class Pin:
    server: str
    kind: str
    name: str
    digest: str
    definition: dict[str, Any]
    pinned_at: float
    approved_by: str | None


def pins_db_path(state_dir: Path) -> Path:
    return state_dir / DB_FILE


class PinStore(LockedDatabase):
    def __init__(self, path: Path, *, create: bool = True) -> None:
        super().__init__(path, _SCHEMA, create=create)

    @classmethod
    def for_state_dir(cls, state_dir: Path, *, create: bool = True) -> PinStore:
        return cls(pins_db_path(state_dir), create=create)

    # -- the decision --------------------------------------------------------------------------

    def observe(
        self,
        server: str,
        kind: PinKind,
        name: str,
        definition: Mapping[str, Any],
        *,
        trust_new: bool,
        now: float | None = None,
    ) -> Observation:
        """Compare a definition seen now with its pin.

        "ok": equal to the pin (any pending change for it is dropped: the server went back).
        "pinned": no pin yet and `trust_new`: pinned now (trust on first use).
        "pending": changed, or new and not trusted: recorded for review, to be withheld.
        """
        now = time.time() if now is None else now
        current = digest(definition)
        text = json.dumps(dict(definition), sort_keys=True, ensure_ascii=False)
        with self._locked() as db:
            # The common case (unchanged, nothing pending) is a read: no write lock, no commit.
            row = db.execute(
                "SELECT pins.digest, pending.digest FROM pins LEFT JOIN pending"
                " ON pending.server = pins.server AND pending.kind = pins.kind AND pending.name = pins.name"
                " WHERE pins.server = ? AND pins.kind = ? AND pins.name = ?",
                (server, kind, name),
            ).fetchone()
            if row is not None and row[0] == current and row[1] is None:
                return "ok"
        with self._locked() as db, transaction(db):
            row = db.execute(
                "SELECT digest FROM pins WHERE server = ? AND kind = ? AND name = ?", (server, kind, name)
            ).fetchone()
            if row is not None and row[0] == current:
                db.execute(
                    "DELETE FROM pending WHERE server = ? AND kind = ? AND name = ?", (server, kind, name)
                )
                return "ok"
            if row is None and trust_new:
                db.execute(
                    "INSERT INTO pins (server, kind, name, digest, definition, pinned_at, approved_by)"
                    " VALUES (?,?,?,?,?,?, 'first-use')",
                    (server, kind, name, current, text, now),
                )
                return "pinned"
            db.execute(
                "INSERT INTO pending (server, kind, name, digest, definition, first_seen, last_seen)"
                " VALUES (?,?,?,?,?,?,?) ON CONFLICT (server, kind, name) DO UPDATE SET"
                " first_seen = CASE WHEN pending.digest = excluded.digest THEN pending.first_seen"
                "              ELSE excluded.first_seen END,"
                " digest = excluded.digest, definition = excluded.definition, last_seen = excluded.last_seen",
                (server, kind, name, current, text, now, now),
            )
            return "pending"

    def has_pending(self, server: str, kind: PinKind, name: str) -> bool:
        with self._locked() as db:
            row = db.execute(
                "SELECT 1 FROM pending WHERE server = ? AND kind = ? AND name = ?", (server, kind, name)
            ).fetchone()
        return row is not None

    def server_seen(self, server: str, kind: DefinitionKind = "tool") -> bool:
        """Whether this server has listed this kind of definition before (then new ones need review)."""
        with self._locked() as db:
            row = db.execute("SELECT 1 FROM servers WHERE server = ?", (_seen_key(server, kind),)).fetchone()
        return row is not None

    def mark_seen(self, server: str, kind: DefinitionKind = "tool", now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._locked() as db, transaction(db):
            db.execute(
                "INSERT OR IGNORE INTO servers (server, first_seen) VALUES (?, ?)",
                (_seen_key(server, kind), now),
            )

    # -- review --------------------------------------------------------------------------------

    def pending(self, server: str | None = None) -> list[PendingChange]:
        with self._locked() as db:
            rows = db.execute(
                "SELECT p.server, p.kind, p.name, p.digest, p.definition, pins.definition, p.first_seen,"
                " p.last_seen FROM pending AS p LEFT JOIN pins ON pins.server = p.server"
                " AND pins.kind = p.kind AND pins.name = p.name"
                + (" WHERE p.server = ?" if server is not None else "")
                + " ORDER BY p.server, p.kind DESC, p.name",
                (server,) if server is not None else (),
            ).fetchall()
        return [
            PendingChange(
                row[0],
                row[1],
                row[2],
                row[3],
                json.loads(row[4]),
                json.loads(row[5]) if row[5] is not None else None,
                row[6],
                row[7],
            )
            for row in rows
        ]

    def pins(self, server: str | None = None) -> list[Pin]:
        with self._locked() as db:
            rows = db.execute(
                "SELECT server, kind, name, digest, definition, pinned_at, approved_by FROM pins"
                + (" WHERE server = ?" if server is not None else "")
                + " ORDER BY server, kind DESC, name",
                (server,) if server is not None else (),
            ).fetchall()
        return [Pin(r[0], r[1], r[2], r[3], json.loads(r[4]), r[5], r[6]) for r in rows]

    def approve(
        self, server: str, name: str | None, approved_by: str, now: float | None = None
    ) -> list[PendingChange]:
        """Pin what is pending for a server (name None: all of it) or one named definition (a tool,
        prompt, resource URI or template); returns what was pinned."""
        now = time.time() if now is None else now
        changes = [
            c for c in self.pending(server) if name is None or (c.kind != "instructions" and c.name == name)
        ]
        with self._locked() as db, transaction(db):
            for change in changes:
                db.execute(
                    "INSERT INTO pins (server, kind, name, digest, definition, pinned_at, approved_by)"
                    " VALUES (?,?,?,?,?,?,?) ON CONFLICT (server, kind, name) DO UPDATE SET"
                    " digest = excluded.digest, definition = excluded.definition,"
                    " pinned_at = excluded.pinned_at, approved_by = excluded.approved_by",
                    (
                        change.server,
                        change.kind,
                        change.name,
                        change.digest,
                        json.dumps(change.definition, sort_keys=True, ensure_ascii=False),
                        now,
                        approved_by,
                    ),
                )
                db.execute(
                    "DELETE FROM pending WHERE server = ? AND kind = ? AND name = ? AND digest = ?",
                    (change.server, change.kind, change.name, change.digest),
                )
        return changes


def _seen_key(server: str, kind: DefinitionKind) -> str:
    return server if kind == "tool" else f"{server}/{kind}"
