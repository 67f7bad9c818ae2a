"""A conservative read-only SQL check (THREATS C21): one SELECT, nothing that writes or locks.

It is a syntactic guard, not a SQL parser: it accepts only what it can read with certainty and
refuses the rest. Accepted: a single statement (one optional trailing `;`) that starts with SELECT,
or with WITH whose main statement is a SELECT, possibly inside parentheses, with no write, DDL,
transaction, session or locking keyword anywhere outside string literals and quoted identifiers
(so a data-modifying CTE such as `WITH d AS (DELETE ...) SELECT ...` is refused), no `SELECT ...
INTO`, and no call to a function known to have side effects. Refused outright: dollar quoting,
backslashes inside string literals (their meaning differs between databases), unterminated
strings or comments, and nested block comments. Pair it with a read-only database role: a check
on text can never see what a view or function does inside the database.
"""

from __future__ import annotations

import re

MAX_SQL_CHARS = 100_000


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Words that write, lock, or change the session anywhere in a statement. Words that can only begin
# a statement of their own (COMMENT ON, START TRANSACTION, REPLACE INTO...) need not be here: the
# statement must begin with SELECT or WITH, and common column names (comment, start) stay usable.
_FORBIDDEN_KEYWORDS = _words(
    """
    INSERT UPDATE DELETE MERGE UPSERT CREATE ALTER DROP TRUNCATE RENAME GRANT REVOKE COPY CALL
    EXEC EXECUTE DO LOCK UNLOCK VACUUM ANALYZE ANALYSE REINDEX CLUSTER SET RESET PRAGMA ATTACH
    DETACH LOAD INTO OUTFILE DUMPFILE SHARE NOWAIT BEGIN COMMIT ROLLBACK SAVEPOINT PREPARE
    DEALLOCATE NOTIFY LISTEN UNLISTEN REFRESH IMPORT INSTALL UNINSTALL SHUTDOWN EXPLAIN
    """
)
_SIDE_EFFECT_FUNCTIONS = _words(
    """
    NEXTVAL SETVAL SET_CONFIG PG_SLEEP PG_SLEEP_FOR PG_SLEEP_UNTIL PG_TERMINATE_BACKEND
    PG_CANCEL_BACKEND PG_RELOAD_CONF PG_ROTATE_LOGFILE PG_READ_FILE PG_READ_BINARY_FILE PG_LS_DIR
    PG_STAT_FILE PG_FILE_WRITE LO_IMPORT LO_EXPORT LO_UNLINK LO_CREATE LO_PUT DBLINK DBLINK_EXEC
    LOAD_EXTENSION WRITEFILE READFILE SLEEP BENCHMARK LOAD_FILE SYS_EXEC SYS_EVAL XP_CMDSHELL
    SP_EXECUTESQL OPENROWSET OPENDATASOURCE OPENQUERY QUERY_TO_XML TXID_CURRENT PG_NOTIFY
    """
)
_SIDE_EFFECT_PREFIXES = (
    "PG_ADVISORY",
    "PG_TRY_ADVISORY",
    "LO_",
    "DBLINK",
    "PG_CREATE_",
    "PG_DROP_",
    "PG_REPLICATION",
)

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<line_comment>--[^\n]*)
  | (?P<block_comment>/\*.*?\*/)
  | (?P<unterminated>/\*)
  | (?P<string>'(?:[^'\\]|'')*')
  | (?P<quoted>"(?:[^"\\]|"")*"|`(?:[^`]|``)*`|\[[A-Za-z0-9_ .]*\])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<number>\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)
  | (?P<param>[?]|:[A-Za-z_][A-Za-z0-9_]*|@[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>::|<=|>=|<>|!=|\|\||[(),.;*+\-/%<>=|&^~!])
    """,
    re.VERBOSE | re.DOTALL,
)


def _tokens(sql: str) -> list[tuple[str, str]] | None:
    """(kind, text) tokens without whitespace and comments, or None if anything is unreadable."""
    tokens: list[tuple[str, str]] = []
    position = 0
    while position < len(sql):
        match = _TOKEN.match(sql, position)
        if match is None:
            return None  # dollar quotes, backslash escapes, unterminated strings, stray characters
        kind = match.lastgroup
        text = match.group()
        position = match.end()
        if kind == "unterminated" or (kind == "block_comment" and "/*" in text[2:]):
            return None  # nested comments (PostgreSQL) would end later than this reading says
        if kind in ("space", "line_comment", "block_comment") or kind is None:
            continue
        tokens.append((kind, text))
    return tokens


def is_read_only_sql(sql: str) -> bool:
    if not sql or len(sql) > MAX_SQL_CHARS:
        return False
    tokens = _tokens(sql)
    if not tokens:
        return False
    if tokens[-1] == ("punct", ";"):
        tokens = tokens[:-1]
    if any(token == ("punct", ";") for token in tokens):
        return False  # more than one statement
    words = [text.upper() for kind, text in tokens if kind == "word"]
    if any(word in _FORBIDDEN_KEYWORDS for word in words):
        return False
    for index, (kind, text) in enumerate(tokens):
        if kind != "word":
            continue
        upper = text.upper()
        called = index + 1 < len(tokens) and tokens[index + 1] == ("punct", "(")
        if called and (upper in _SIDE_EFFECT_FUNCTIONS or upper.startswith(_SIDE_EFFECT_PREFIXES)):
            return False
    # The statement itself: SELECT, or WITH ... whose top-level statement is SELECT.
    depth = 0
    first: str | None = None
    top_level: list[str] = []
    for kind, text in tokens:
        if text == "(":
            depth += 1
        elif text == ")":
            depth -= 1
            if depth < 0:
                return False
        elif kind == "word":
            if first is None:
                first = text.upper()
            if depth == 0:
                top_level.append(text.upper())
    if depth != 0 or first is None:
        return False
    return first == "SELECT" or (first == "WITH" and "SELECT" in top_level)
