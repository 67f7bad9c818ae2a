"""API keys: minted by `mcpwarden keys create`, checked by the HTTP front on every request.

A key reads `mcpw_<id>_<secret>`: `id` (16 hex digits) is the row's primary key, so a lookup is
one indexed read, never a scan; `secret` (32 random bytes, base64url) is never stored. The store
keeps HMAC-SHA256(pepper, id "." secret), where the pepper is 32 random bytes in
`state_dir/api_key_pepper` (0600): a stolen `keys.db` alone does not let anyone test guesses, and
a key is long enough that a plain keyed hash (no slow password hash) is the right cost per request.
Comparison is constant time (`hmac.compare_digest`).

Every check reads the database (WAL: the CLI writes while the gateway reads), so `keys revoke`
takes effect on the next request, with no restart and no cache to go stale.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hmac
import json
import os
import re
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from mcpwarden.errors import MCPWardenError
from mcpwarden.store.sqlite import open_database, transaction

KEY_PREFIX = "mcpw_"
KEYS_DB = "keys.db"
PEPPER_FILE = "api_key_pepper"
_ID_HEX = 16
_SECRET_BYTES = 32
_KEY_SHAPE = re.compile(rf"^{KEY_PREFIX}([0-9a-f]{{{_ID_HEX}}})_([A-Za-z0-9_-]{{43}})$")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@:+-]{0,127}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS api_keys (
    id TEXT PRIMARY KEY,
    principal TEXT NOT NULL,
    roles TEXT NOT NULL,
    digest TEXT NOT NULL,
    created REAL NOT NULL,
    revoked REAL
)
"""


class KeyStoreError(MCPWardenError):
    """The key store cannot be used (unreadable pepper, bad name, unknown key id)."""


@dataclass(frozen=True, slots=True)
class ApiKey:
    """One minted key as stored: never the secret."""

    id: str
    principal: str
    roles: tuple[str, ...]
    created: float
    revoked: float | None = None

    @property
    def active(self) -> bool:
        return self.revoked is None


def looks_like_api_key(token: str) -> bool:
    return token.startswith(KEY_PREFIX)


def keys_db_path(state_dir: Path) -> Path:
    return state_dir / KEYS_DB


class ApiKeyStore:
    """The embedded (SQLite) key store of one state directory."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self._pepper = _load_or_create_pepper(state_dir / PEPPER_FILE)
        self._db = open_database(keys_db_path(state_dir))
        self._lock = threading.Lock()  # one connection, shared by the event loop and CLI threads
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def create(self, principal: str, roles: tuple[str, ...] = ()) -> tuple[ApiKey, str]:
        """Mint a key; returns its record and the key itself, which exists nowhere else afterwards."""
        _check_name("principal", principal)
        for role in roles:
            _check_name("role", role)
        key_id = secrets.token_hex(_ID_HEX // 2)
        secret = base64.urlsafe_b64encode(secrets.token_bytes(_SECRET_BYTES)).rstrip(b"=").decode()
        record = ApiKey(key_id, principal, tuple(dict.fromkeys(roles)), time.time())
        with self._lock, transaction(self._db):
            self._db.execute(
                "INSERT INTO api_keys (id, principal, roles, digest, created) VALUES (?, ?, ?, ?, ?)",
                (
                    key_id,
                    principal,
                    json.dumps(list(record.roles)),
                    self._digest(key_id, secret),
                    record.created,
                ),
            )
        return record, f"{KEY_PREFIX}{key_id}_{secret}"

    def list(self) -> list[ApiKey]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, principal, roles, created, revoked FROM api_keys ORDER BY created, id"
            ).fetchall()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str) -> ApiKey:
        """Revoke by id (as `keys list` shows it) or by the whole key; raises if there is no such key."""
        match = _KEY_SHAPE.match(key_id)
        if match is not None:
            key_id = match.group(1)
        key_id = key_id.removeprefix(KEY_PREFIX)
        with self._lock, transaction(self._db):
            row = self._db.execute(
                "SELECT id, principal, roles, created, revoked FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
            if row is None:
                # Echo only what has an id's shape: a mistyped whole key must not land in a terminal log.
                shown = repr(key_id) if re.fullmatch(r"[0-9a-f]{16}", key_id) else "like that"
                raise KeyStoreError(f"no API key with id {shown} (see `mcpwarden keys list`)")
            if row[4] is None:
                self._db.execute("UPDATE api_keys SET revoked = ? WHERE id = ?", (time.time(), key_id))
        return _record(
            self._db.execute(
                "SELECT id, principal, roles, created, revoked FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        )

    def verify(self, presented: str) -> ApiKey | None:
        """The active key `presented` is, or None. Costs one indexed read and one HMAC."""
        match = _KEY_SHAPE.match(presented)
        if match is None:
            return None
        key_id, secret = match.group(1), match.group(2)
        with self._lock:
            row = self._db.execute(
                "SELECT id, principal, roles, created, revoked, digest FROM api_keys WHERE id = ?", (key_id,)
            ).fetchone()
        expected = self._digest(key_id, secret)
        if row is None:
            hmac.compare_digest(expected, expected)  # same work whether or not the id exists
            return None
        if not hmac.compare_digest(expected, str(row[5])) or row[4] is not None:
            return None
        return _record(row[:5])

    def _digest(self, key_id: str, secret: str) -> str:
        # The one-shot C function: the same HMAC-SHA256 as hmac.new(...).hexdigest(), without the
        # HMAC object this checks on every HTTP request.
        return hmac.digest(self._pepper, f"{key_id}.{secret}".encode(), "sha256").hex()


@functools.lru_cache(maxsize=1024)
def _record(row: tuple[object, ...]) -> ApiKey:
    """A stored row as a key, parsed once per distinct row (it is read on every HTTP request, and
    the record is immutable; a revoked key's row differs from its active one)."""
    roles = json.loads(str(row[2]))
    revoked = row[4]
    return ApiKey(
        id=str(row[0]),
        principal=str(row[1]),
        roles=tuple(str(role) for role in roles),
        created=float(row[3]),  # type: ignore[arg-type]
        revoked=float(revoked) if revoked is not None else None,  # type: ignore[arg-type]
    )


def _check_name(what: str, value: str) -> None:
    if not NAME_PATTERN.fullmatch(value):
        raise KeyStoreError(
            f"{what} must be 1-128 characters: letters, digits and . _ @ : + - "
            "(starting with a letter or digit)"
        )


def _load_or_create_pepper(path: Path) -> bytes:
    """Read the install's pepper, creating it (0600, never world-readable) on first use."""
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        # Written whole to a private temporary file, then linked into place: a racing reader
        # sees no file or the whole pepper, never a half-written one; a racing creator loses.
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(32))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink()
    try:
        pepper = path.read_bytes()
    except OSError as exc:
        raise KeyStoreError(f"cannot read {path}: {exc.strerror}") from None
    if len(pepper) < 32:
        # A racing creator may not have written yet, or the file was truncated: never use a weak key.
        raise KeyStoreError(f"{path} is damaged (shorter than 32 bytes); restore it or re-mint all keys")
    return pepper
