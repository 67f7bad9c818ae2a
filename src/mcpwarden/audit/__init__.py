"""The audit trail: one hash-chained event per exchange, written by the pipeline in its `finally`.

`events` defines the event and its canonical form; `log` the SQLite sink and chain verification;
`cli` the `mcpwarden audit` commands.
"""

from mcpwarden.audit.events import AuditEvent, canonical_json, digest_arguments
from mcpwarden.audit.log import (
    AUDIT_DB_NAME,
    GENESIS_HASH,
    AuditError,
    AuditRecord,
    AuditSink,
    SqliteAuditLog,
    VerifyResult,
    audit_db_path,
    record_hash,
)

__all__ = [
    "AUDIT_DB_NAME",
    "GENESIS_HASH",
    "AuditError",
    "AuditEvent",
    "AuditRecord",
    "AuditSink",
    "SqliteAuditLog",
    "VerifyResult",
    "audit_db_path",
    "canonical_json",
    "digest_arguments",
    "record_hash",
]
