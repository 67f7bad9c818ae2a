"""Argument conditions: path containment (THREATS C18), URL hosts and recipients (T2, C2),
read-only SQL (C21).

Path vectors run against a real directory tree with real symlinks, through the same resolution the
gateway uses (`policy.paths`), and the pure containment check on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mcpwarden.config import PolicySettings
from mcpwarden.policy import PolicyEngine, PolicyRequest, PrincipalFacts, ResourceRef, compile_policy
from mcpwarden.policy.conditions import host_allowed, is_within, recipient_addresses, recipients_allowed
from mcpwarden.policy.paths import resolve_path_arguments, with_resolved_paths
from mcpwarden.policy.sql import is_read_only_sql


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/allowed_dir (a file, a subdir, symlinks out and in, a loop) and its look-alike sibling."""
    root = tmp_path / "allowed_dir"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("ok")
    (root / "sub" / "deep.txt").write_text("ok")
    sibling = tmp_path / "allowed_dir_sensitive_credentials"
    sibling.mkdir()
    (sibling / "key").write_text("secret")
    os.symlink("/etc", root / "etc_link")
    os.symlink(sibling, root / "to_sibling")
    os.symlink(root / "sub", root / "inner_link")
    os.symlink(root / "loop_a", root / "loop_b")
    os.symlink(root / "loop_b", root / "loop_a")
    return tmp_path


def engine_for(root: Path) -> PolicyEngine:
    policy = PolicySettings.model_validate(
        {"allow": [{"principal": "*", "tool": "fs__*", "where": {"path": {"within": [str(root)]}}}]}
    )
    return PolicyEngine(compile_policy(policy))


def allowed(engine: PolicyEngine, path: object) -> bool:
    request = PolicyRequest(
        PrincipalFacts("alice"), "call_tool", ResourceRef("fs", "fs__read_file"), {"path": path}, "http"
    )
    return engine.decide(with_resolved_paths(engine, request)).allowed


@pytest.mark.parametrize(
    ("relative", "expected"),
    [
        ("allowed_dir", True),
        ("allowed_dir/", True),  # trailing slash
        ("allowed_dir/notes.txt", True),
        ("allowed_dir/sub/deep.txt", True),
        ("allowed_dir/new-file-to-write.txt", True),  # not there yet: resolved lexically below the root
        ("allowed_dir/inner_link/deep.txt", True),  # a symlink that stays inside
        ("allowed_dir/./sub/../notes.txt", True),
        ("allowed_dir_sensitive_credentials/key", False),  # CVE-2025-53110: prefix sibling
        ("allowed_dir_sensitive_credentials", False),
        ("allowed_dir/../allowed_dir_sensitive_credentials/key", False),  # `..` out
        ("allowed_dir/sub/../../allowed_dir_sensitive_credentials/key", False),
        ("allowed_dir/etc_link/passwd", False),  # CVE-2025-53109: symlink to /etc
        ("allowed_dir/etc_link", False),
        ("allowed_dir/to_sibling/key", False),  # symlink to the look-alike sibling
        ("allowed_dir/inner_link/../../allowed_dir_sensitive_credentials", False),  # `..` after a symlink
        ("ALLOWED_DIR/notes.txt", False),  # case: a different path on a case-sensitive file system
        ("Allowed_Dir/notes.txt", False),
    ],
)
def test_path_escape_vectors(tree: Path, relative: str, expected: bool) -> None:
    engine = engine_for(tree / "allowed_dir")
    assert allowed(engine, str(tree / relative)) is expected


@pytest.mark.parametrize(
    "value",
    [
        "notes.txt",  # relative: depends on the server's working directory
        "./allowed_dir/notes.txt",
        "~/notes.txt",
        "",
        "{root}/notes.txt\x00.png",  # NUL
        None,
        42,
        ["{root}/notes.txt", "/etc/passwd"],  # every item of a list must be inside
        [],
        {"path": "{root}/notes.txt"},
        "file://evil.example{root}/notes.txt",  # a remote file URI
    ],
)
def test_doubtful_path_values_are_refused(tree: Path, value: object) -> None:
    root = str(tree / "allowed_dir")

    def fill(item: object) -> object:
        if isinstance(item, str):
            return item.replace("{root}", root)
        if isinstance(item, list):
            return [fill(x) for x in item]
        if isinstance(item, dict):
            return {k: fill(v) for k, v in item.items()}
        return item

    assert not allowed(engine_for(tree / "allowed_dir"), fill(value))


def test_lists_and_file_uris_inside_are_allowed(tree: Path) -> None:
    root = tree / "allowed_dir"
    engine = engine_for(root)
    assert allowed(engine, [str(root / "notes.txt"), str(root / "sub" / "deep.txt")])
    assert allowed(engine, f"file://{root}/notes.txt")
    assert allowed(engine, f"file://{root}/sub%2Fdeep.txt")
    assert not allowed(engine, f"file://{root}/..%2F..%2Fetc/passwd")


def test_symlink_loop_fails_closed(tree: Path) -> None:
    assert not allowed(engine_for(tree / "allowed_dir"), str(tree / "allowed_dir" / "loop_a" / "x"))


def test_roots_are_resolved_too(tree: Path) -> None:
    # A root given through a symlink (macOS: /tmp -> /private/tmp) still admits its real contents.
    os.symlink(tree / "allowed_dir", tree / "alias")
    engine = engine_for(tree / "alias")
    assert allowed(engine, str(tree / "allowed_dir" / "notes.txt"))
    assert allowed(engine, str(tree / "alias" / "notes.txt"))
    assert not allowed(engine, str(tree / "allowed_dir_sensitive_credentials" / "key"))


def test_decide_itself_does_no_io_and_refuses_unresolved_paths(tree: Path) -> None:
    """Without resolved paths in the request, `within` never holds: the pure function cannot guess."""
    engine = engine_for(tree / "allowed_dir")
    path = str(tree / "allowed_dir" / "notes.txt")
    bare = PolicyRequest(
        PrincipalFacts("a"), "call_tool", ResourceRef("fs", "fs__read"), {"path": path}, "http"
    )
    assert not engine.decide(bare).allowed
    fake = {path: str(tree / "allowed_dir" / "notes.txt")}
    assert engine.decide(PolicyRequest(**{**_fields(bare), "resolved_paths": fake})).allowed
    lying = {path: "/etc/shadow"}  # what the resolver says is what counts
    assert not engine.decide(PolicyRequest(**{**_fields(bare), "resolved_paths": lying})).allowed


def _fields(request: PolicyRequest) -> dict[str, object]:
    return {name: getattr(request, name) for name in request.__dataclass_fields__}


def test_only_checked_arguments_are_resolved(tree: Path) -> None:
    engine = engine_for(tree / "allowed_dir")
    calls: list[str] = []

    def spy(path: str) -> str:
        calls.append(path)
        return os.path.realpath(path)

    resolved = resolve_path_arguments(engine, "fs__read", {"path": "/a/b", "other": "/c"}, spy)
    assert calls == ["/a/b"] and set(resolved) == {"/a/b"}
    assert resolve_path_arguments(engine, "db__query", {"path": "/a/b"}, spy) == {}
    assert calls == ["/a/b"]


@pytest.mark.parametrize(
    ("path", "roots", "expected"),
    [
        ("/private/tmp/allowed_dir", ("/private/tmp/allowed_dir",), True),
        ("/private/tmp/allowed_dir/x", ("/private/tmp/allowed_dir",), True),
        ("/private/tmp/allowed_dir_sensitive_credentials", ("/private/tmp/allowed_dir",), False),
        ("/private/tmp/allowed_dir_sensitive_credentials", ("/private/tmp/allowed_dir/",), False),
        ("/private/tmp/allowed_dir/../x", ("/private/tmp/allowed_dir",), False),
        ("/srv", ("/srv/data",), False),
        ("/anything", ("/",), True),
        ("/srv/data/x", ("/other", "/srv/data"), True),
    ],
)
def test_containment_is_separator_aware(path: str, roots: tuple[str, ...], expected: bool) -> None:
    assert is_within(path, roots) is expected


# -- URL hosts ----------------------------------------------------------------------------------

HOSTS = ("example.com", "*.example.org")


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://example.com/path?q=1", True),
        ("http://EXAMPLE.com./x", True),
        ("https://example.com:8443/x", True),
        ("https://api.example.org/v1", True),
        ("https://a.b.example.org/", True),
        ("https://example.org/", False),  # *.example.org is subdomains only
        ("https://evil.com/example.com", False),
        ("https://example.com.evil.com/", False),
        ("https://evilexample.com/", False),
        ("https://example.com@evil.com/", False),  # userinfo hides the real host
        ("https://evil.com\\@example.com/", False),  # backslash: parsers disagree
        ("https://evil.com#@example.com", False),
        ("https://exa mple.com/", False),
        ("ftp://example.com/", False),
        ("javascript:alert(1)//example.com", False),
        ("//example.com/x", False),
        ("example.com", False),
        ("https://example.com:99999/", False),
        ("https://[::1]/", False),
        ("", False),
    ],
)
def test_url_host_allow_list(url: str, expected: bool) -> None:
    assert host_allowed(url, HOSTS) is expected


def test_url_lists_need_every_host_allowed() -> None:
    assert host_allowed(["https://example.com/a", "https://x.example.org/b"], HOSTS)
    assert not host_allowed(["https://example.com/a", "https://evil.com/b"], HOSTS)
    assert not host_allowed(None, HOSTS)


# -- recipients ---------------------------------------------------------------------------------

RECIPIENTS = ("*@example.com", "boss@partner.org")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("alice@example.com", True),
        ("Alice@EXAMPLE.com", True),
        ("Alice Smith <alice@example.com>", True),
        ("boss@partner.org", True),
        ("alice@example.com, boss@partner.org", True),
        (["alice@example.com", "bob@example.com"], True),
        ("attacker@pwnd.com", False),  # THREATS C2: the shadowing tool's off-policy recipient
        ("alice@example.com, attacker@pwnd.com", False),
        ("alice@example.com; attacker@pwnd.com", False),
        (["alice@example.com", "attacker@pwnd.com"], False),
        ("other@partner.org", False),
        ("alice@example.com.pwnd.com", False),
        ("alice@sub.example.com", False),
        ('"alice@example.com"@pwnd.com', False),
        ("attacker@pwnd.com (alice@example.com)", False),
        ("alice@example.com\n@pwnd.com", False),
        ("alice@example.com\r\nBcc: attacker@pwnd.com", False),
        ("Alice <attacker@pwnd.com> alice@example.com", False),
        ("alice", False),
        ("", False),
        (None, False),
    ],
)
def test_recipient_allow_list(value: object, expected: bool) -> None:
    assert recipients_allowed(value, RECIPIENTS) is expected


def test_recipient_parsing() -> None:
    assert recipient_addresses("A <a@x.io>, b@y.io") == ["a@x.io", "b@y.io"]
    assert recipient_addresses("a@@x.io") is None


# -- read-only SQL (C21) ------------------------------------------------------------------------

READ_ONLY = [
    "SELECT 1",
    "select * from tickets where id = 3;",
    "SELECT name, comment, start FROM t",  # column names that are also statement words
    "SELECT 'DROP TABLE x; --' AS s",
    'SELECT "update", "delete" FROM t',
    "WITH recent AS (SELECT * FROM t WHERE d > now() - interval '1 day') SELECT count(*) FROM recent",
    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r",
    "(SELECT 1) UNION (SELECT 2)",
    "SELECT a[1] FROM arrays",
    "SELECT /* a comment */ 1 -- and another",
    "SELECT created_at, deleted_at, updated_by FROM t",
    "SELECT replace(name, 'a', 'b') FROM t",
]
NOT_READ_ONLY = [
    "",
    "   ",
    "-- only a comment",
    "DELETE FROM tickets",
    "UPDATE t SET a = 1",
    "INSERT INTO t VALUES (1)",
    "DROP TABLE integration_tokens",
    "SELECT 1; DROP TABLE t",
    "SELECT 1;; ",
    "SELECT 1; SELECT 2",
    "WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",  # a write hidden in a CTE
    "WITH u AS (UPDATE t SET a = 1 RETURNING a) SELECT * FROM u",
    "WITH x AS (SELECT 1) DELETE FROM t",
    "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
    "SELECT * INTO backup FROM t",
    "SELECT * FROM t FOR UPDATE",
    "SELECT * FROM t FOR SHARE",
    "SELECT nextval('seq')",
    "SELECT set_config('role', 'admin', false)",
    "SELECT pg_advisory_lock(1)",
    "SELECT lo_export(1, '/tmp/x')",
    "SELECT pg_read_file('/etc/passwd')",
    "SELECT load_extension('x')",
    "EXPLAIN ANALYZE DELETE FROM t",
    "COPY t TO '/tmp/x'",
    "CALL proc()",
    "PRAGMA writable_schema = 1",
    "ATTACH DATABASE 'x' AS y",
    "SELECT $$; DROP TABLE t; $$",  # dollar quoting
    "SELECT 'a\\'; DROP TABLE t; --'",  # backslash escapes differ between databases
    'SELECT "a\\"; DROP TABLE t; --"',
    "SELECT 'unterminated",
    "SELECT /* unterminated",
    "SELECT /* nested /* */ ; DROP TABLE t; */ 1",
    "SELECT (1",
    "SELECT 1)",
    "VALUES (1)",
    "TABLE t",
    "SHOW ALL",
    "SET ROLE admin",
    "BEGIN; SELECT 1; COMMIT",
    "select * from t; delete from t",
    "SELECT * FROM t WHERE x = 1 /* ; */ ; DELETE FROM t",
    "SELECT * FROM [t; DELETE FROM u]",
    "SELECT $1",
    "SELECT 1 INTO OUTFILE '/tmp/x'",
]


@pytest.mark.parametrize("sql", READ_ONLY)
def test_read_only_sql_is_accepted(sql: str) -> None:
    assert is_read_only_sql(sql)


@pytest.mark.parametrize("sql", NOT_READ_ONLY)
def test_anything_else_is_refused(sql: str) -> None:
    assert not is_read_only_sql(sql)


def test_sql_size_is_bounded() -> None:
    assert not is_read_only_sql("SELECT " + "1," * 60_000 + "1")
