"""Pending and decided approvals, in `state_dir/approvals.db`, shared between processes.

The gateway writes a *pending* row when it holds a call; `mcpwarden approvals approve ID` (another
process, maybe while the gateway runs) marks it *approved* with an expiry; the next identical call
(same kind, principal, exposed tool and canonical-argument digest) *consumes* it in one atomic
UPDATE, so an approval is used at most once even with several gateway processes on one state dir.

Kinds: `call` (a risky tool call, guards/approval.py) and `startup` (a flagged stdio start command,
`pinning/startup.py`; approved once for that exact command fingerprint, never consumed).

Statuses: pending -> approved -> consumed, pending -> denied, pending -> expired (its timeout
passed without an answer; a timeout is a no). Arguments are stored only redacted (secrets replaced),
for `approvals list`; matching uses the digest of the real arguments.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mcpwarden.store.sqlite import LockedDatabase, transaction

DB_FILE = "approvals.db"
CALL_RETENTION = 7 * 86400.0  # seconds decided call approvals are kept
Kind = Literal["call", "startup"]
Status = Literal["pending", "approved", "denied", "consumed", "expired"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS approvals (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    principal TEXT NOT NULL,
    server TEXT,
    tool TEXT NOT NULL,
    digest TEXT NOT NULL,
    arguments TEXT NOT NULL,
    prompt TEXT NOT NULL,
    tier TEXT,
    reasons TEXT NOT NULL,
    created REAL NOT NULL,
    expires REAL NOT NULL,
    status TEXT NOT NULL,
    decided_by TEXT,
    decided_at REAL,
    usable_until REAL
);
CREATE INDEX IF NOT EXISTS approvals_match ON approvals (kind, principal, tool, digest, status);
CREATE INDEX IF NOT EXISTS approvals_created ON approvals (principal, created);
"""


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    kind: str
    principal: str
    server: str | None
    tool: str
    digest: str
    arguments: Any  # redacted, JSON
    prompt: str
    tier: str | None
    reasons: tuple[str, ...]
    created: float
    expires: float
    status: str
    decided_by: str | None
    decided_at: float | None
    usable_until: float | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "principal": self.principal,
            "server": self.server,
            "tool": self.tool,
            "arguments": self.arguments,
            "created": self.created,
            "expires": self.expires,
            "status": self.status,
            "tier": self.tier,
            "reasons": list(self.reasons),
            "decided_by": self.decided_by,
            "decided_at": self.decided_at,
            "prompt": self.prompt,
        }


def approvals_db_path(state_dir: Path) -> Path:
    return state_dir / DB_FILE


def new_approval_id() -> str:
    return "apr_" + secrets.token_hex(8)


class ApprovalStore(LockedDatabase):
    """Pending and decided approvals, shared by the gateway and the CLI."""

    def __init__(self, path: Path, *, create: bool = True) -> None:
        super().__init__(path, _SCHEMA, create=create)

    @classmethod
    def for_state_dir(cls, state_dir: Path, *, create: bool = True) -> ApprovalStore:
        return cls(approvals_db_path(state_dir), create=create)

    # -- writing -------------------------------------------------------------------------------

    def create(
        self,
        *,
        kind: Kind,
        principal: str,
        server: str | None,
        tool: str,
        digest: str,
        arguments: Any,
        prompt: str,
        tier: str | None,
        reasons: tuple[str, ...],
        timeout: float,
        approval_id: str | None = None,
        now: float | None = None,
    ) -> Approval:
        now = time.time() if now is None else now
        approval_id = approval_id or new_approval_id()
        with self._locked() as db, transaction(db):
            # Decided call approvals are history (the audit trail keeps it): keep the table small.
            # Startup approvals stay: they are what lets a vetted command start again.
            db.execute(
                "DELETE FROM approvals WHERE kind = 'call' AND created < ?"
                " AND (status != 'pending' OR expires < ?)",
                (now - CALL_RETENTION, now),
            )
            db.execute(
                "INSERT INTO approvals (id, kind, principal, server, tool, digest, arguments, prompt, tier,"
                " reasons, created, expires, status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?, 'pending')",
                (
                    approval_id,
                    kind,
                    principal,
                    server,
                    tool,
                    digest,
                    json.dumps(arguments, sort_keys=True, ensure_ascii=False),
                    prompt,
                    tier,
                    json.dumps(list(reasons)),
                    now,
                    now + timeout,
                ),
            )
        created = self.get(approval_id)
        assert created is not None
        return created

    def decide(
        self, approval_id: str, approved: bool, decided_by: str, lifetime: float, now: float | None = None
    ) -> Approval | None:
        """Approve or deny a pending approval; None when there is no such pending one."""
        now = time.time() if now is None else now
        with self._locked() as db, transaction(db):
            self._expire(db, now)
            cursor = db.execute(
                "UPDATE approvals SET status = ?, decided_by = ?, decided_at = ?, usable_until = ?"
                " WHERE id = ? AND status = 'pending'",
                ("approved" if approved else "denied", decided_by, now, now + lifetime, approval_id),
            )
            changed = cursor.rowcount == 1
        return self.get(approval_id) if changed else None

    def consume(self, approval_id: str, now: float | None = None) -> bool:
        """Use an approved approval once; False if it is not approved, already used or expired."""
        now = time.time() if now is None else now
        with self._locked() as db, transaction(db):
            cursor = db.execute(
                "UPDATE approvals SET status = 'consumed' WHERE id = ? AND kind = 'call'"
                " AND status = 'approved' AND usable_until > ?",
                (approval_id, now),
            )
            return cursor.rowcount == 1

    # -- reading -------------------------------------------------------------------------------

    def get(self, approval_id: str) -> Approval | None:
        with self._locked() as db:
            row = db.execute("SELECT * FROM approvals WHERE id = ?", (approval_id,)).fetchone()
            columns = [c[0] for c in db.execute("SELECT * FROM approvals LIMIT 0").description]
        return _row(columns, row) if row is not None else None

    def find(
        self, kind: Kind, principal: str, tool: str, digest: str, now: float | None = None
    ) -> Approval | None:
        """The approval that currently governs this exact call: a usable approval first, then a
        standing denial, then an open pending request; None when there is none."""
        now = time.time() if now is None else now
        with self._locked() as db:
            columns = [c[0] for c in db.execute("SELECT * FROM approvals LIMIT 0").description]
            rows = db.execute(
                "SELECT * FROM approvals WHERE kind = ? AND principal = ? AND tool = ? AND digest = ?"
                " AND ((status IN ('approved', 'denied') AND usable_until > ?)"
                "      OR (status = 'pending' AND expires > ?))"
                " ORDER BY created DESC",
                (kind, principal, tool, digest, now, now),
            ).fetchall()
        found = [_row(columns, row) for row in rows]
        for wanted in ("approved", "denied", "pending"):
            for approval in found:
                if approval.status == wanted:
                    return approval
        return None

    def startup_approved(self, server: str, fingerprint: str) -> bool:
        with self._locked() as db:
            row = db.execute(
                "SELECT 1 FROM approvals WHERE kind = 'startup' AND server = ? AND digest = ?"
                " AND status = 'approved' LIMIT 1",
                (server, fingerprint),
            ).fetchone()
        return row is not None

    def pending_startup(self, server: str, fingerprint: str, now: float | None = None) -> Approval | None:
        now = time.time() if now is None else now
        with self._locked() as db:
            columns = [c[0] for c in db.execute("SELECT * FROM approvals LIMIT 0").description]
            row = db.execute(
                "SELECT * FROM approvals WHERE kind = 'startup' AND server = ? AND digest = ?"
                " AND status = 'pending' AND expires > ? ORDER BY created DESC LIMIT 1",
                (server, fingerprint, now),
            ).fetchone()
        return _row(columns, row) if row is not None else None

    def created_since(self, principal: str, since: float) -> int:
        with self._locked() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM approvals WHERE kind = 'call' AND principal = ? AND created >= ?",
                (principal, since),
            ).fetchone()
        return int(row[0])

    def list(
        self, statuses: tuple[Status, ...] = ("pending",), kind: Kind | None = None, now: float | None = None
    ) -> list[Approval]:
        now = time.time() if now is None else now
        with self._locked() as db:
            columns = [c[0] for c in db.execute("SELECT * FROM approvals LIMIT 0").description]
            rows = db.execute("SELECT * FROM approvals ORDER BY created").fetchall()
        found = []
        for row in rows:
            approval = _row(columns, row)
            status = approval.status
            if status == "pending" and approval.expires <= now:
                status = "expired"
            if status in statuses and (kind is None or approval.kind == kind):
                found.append(approval)
        return found

    def _expire(self, db: sqlite3.Connection, now: float) -> None:
        db.execute(
            "UPDATE approvals SET status = 'expired' WHERE status = 'pending' AND expires <= ?", (now,)
        )


def _row(columns: list[str], row: tuple[Any, ...]) -> Approval:
    data = dict(zip(columns, row, strict=True))
    data["arguments"] = json.loads(data["arguments"])
    data["reasons"] = tuple(json.loads(data["reasons"]))
    return Approval(**data)
