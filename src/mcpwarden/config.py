"""Configuration: one YAML file plus the environment, turned into frozen, validated settings.

This is the first step of the flow: nothing else reads the file. Every option is declared once,
here, with its type, default and help text. Errors say which file, which key (with its line) and
what was expected, and never echo a value that came from the environment (it may be a secret).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mcpwarden.errors import ConfigError

DEFAULT_CONFIG_FILE = "mcpwarden.yaml"
SERVER_ID_PATTERN = r"^[a-z0-9_-]+$"
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UpstreamOAuthSettings(_Model):
    """OAuth 2.1 client credentials (RFC 6749 §4.4) the gateway uses to get its own token for an
    HTTP upstream; the client's token is never forwarded (THREATS A4)."""

    token_url: str = Field(description="The authorization server's token endpoint.")
    client_id: str = Field(min_length=1, description="The gateway's client id at that server.")
    client_secret: str | None = Field(None, description="The client secret; use ${VAR}, never a literal.")
    client_secret_file: str | None = Field(None, description="A file holding the client secret, instead.")
    scope: str | None = Field(None, description="Scopes to ask for (space-separated).")
    resource: str | None = Field(
        None, description="RFC 8707 resource to ask a token for (the upstream's URI)."
    )

    @model_validator(mode="after")
    def _one_secret(self) -> UpstreamOAuthSettings:
        if (self.client_secret is None) == (self.client_secret_file is None):
            raise ValueError("give exactly one of 'client_secret' or 'client_secret_file'")
        if not _is_https_or_loopback(self.token_url):
            raise ValueError(
                "'token_url' must be an https URL (plain http only on 127.0.0.1, ::1 or localhost)"
            )
        return self


class ServerSpec(_Model):
    """One upstream server: a stdio child (command/args/env) or Streamable HTTP (url/headers).

    The `type` key lets users paste entries from MCP clients' `mcpServers` JSON unchanged.
    """

    command: str | None = Field(None, description="Executable of a stdio server; started without a shell.")
    args: tuple[str, ...] = Field((), description="Arguments passed to the command, one argv entry each.")
    env: dict[str, str] = Field(
        default_factory=dict, description="Environment for the child, added to a minimal safe base."
    )
    cwd: str | None = Field(None, description="Working directory of a stdio server.")
    url: str | None = Field(None, description="Streamable HTTP endpoint of an HTTP server.")
    headers: dict[str, str] = Field(default_factory=dict, description="Headers sent to an HTTP server.")
    headers_from_files: dict[str, str] = Field(
        default_factory=dict,
        description="Headers sent to an HTTP server whose values are read from files (secrets), "
        "re-read at each (re)connect: {Authorization: /run/secrets/tickets}; relative paths are "
        "taken from the working directory.",
    )
    oauth_client: UpstreamOAuthSettings | None = Field(
        None, description="Get the gateway's own token for an HTTP server by OAuth client credentials."
    )
    type: Literal["stdio", "http", "streamable-http", "streamableHttp"] | None = Field(
        None, description="Transport, as MCP client configs spell it; inferred when omitted."
    )
    request_timeout: float | None = Field(
        None,
        gt=0,
        description="Seconds this server may take to answer a request; omitted: gateway.request_timeout.",
    )

    @model_validator(mode="after")
    def _one_transport(self) -> ServerSpec:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either 'command' (a stdio server) or 'url' (a Streamable HTTP server)")
        if self.url is not None:
            if self.type == "stdio":
                raise ValueError("type 'stdio' needs 'command', not 'url'")
            if not re.match(r"^https?://", self.url):
                raise ValueError("'url' must start with http:// or https://")
        elif self.type not in (None, "stdio"):
            raise ValueError(f"type {self.type!r} needs 'url', not 'command'")
        if (self.headers_from_files or self.oauth_client) and self.url is None:
            raise ValueError("'headers_from_files' and 'oauth_client' are for HTTP servers (with 'url')")
        if self.oauth_client is not None and any(
            name.lower() == "authorization" for name in (*self.headers, *self.headers_from_files)
        ):
            raise ValueError("'oauth_client' sets the Authorization header; do not give it in headers too")
        both = {name.lower() for name in self.headers} & {name.lower() for name in self.headers_from_files}
        if both:
            raise ValueError(
                f"header {sorted(both)[0]!r} is given in both 'headers' and 'headers_from_files'"
            )
        return self

    @property
    def is_stdio(self) -> bool:
        return self.command is not None


class OAuthSettings(_Model):
    """The gateway as an OAuth 2.1 resource server: which JWT access tokens it accepts, and how
    their claims become an identity. Everything a token could choose (algorithm, keys, issuer) is
    fixed here instead; see `mcpwarden.auth.jwt`."""

    issuer: str = Field(
        min_length=1, description="The authorization server's issuer; tokens' `iss` must equal it."
    )
    audience: str = Field(
        min_length=1, description="The gateway's own resource URI; tokens' `aud` must equal or contain it."
    )
    jwks_uri: str | None = Field(None, description="Where the issuer's signing keys are published.")
    jwks_file: str | None = Field(None, description="A local JWKS file, instead of jwks_uri.")
    algorithms: tuple[str, ...] = Field(
        ("RS256",), min_length=1, description="Accepted signature algorithms (asymmetric only)."
    )
    leeway: float = Field(30.0, ge=0, le=60, description="Seconds of clock skew allowed on exp, nbf and iat.")
    required_claims: tuple[str, ...] = Field(
        ("exp", "iat", "iss", "aud", "sub"), description="Claims every token must carry."
    )
    required_typ: str | None = Field(
        None, description="Required JWT `typ` header, e.g. at+jwt (RFC 9068); unset accepts JWT or at+jwt."
    )
    principal_claim: str = Field("sub", min_length=1, description="Claim that names the principal.")
    roles_claim: str = Field(
        "roles", min_length=1, description="Claim holding roles (list or space-separated)."
    )
    scopes_claim: str = Field(
        "scope", min_length=1, description="Claim holding scopes (space-separated or list)."
    )
    jwks_ttl: float = Field(
        300.0,
        gt=0,
        le=86400,
        description="Seconds fetched keys stay valid; past it, unreachable keys fail closed.",
    )
    jwks_refresh_interval: float = Field(
        30.0, ge=0, description="Least seconds between two refreshes prompted by an unknown `kid`."
    )
    jwks_timeout: float = Field(5.0, gt=0, le=60, description="Seconds one JWKS fetch may take.")
    tool_scopes: dict[str, str] = Field(
        default_factory=dict,
        description="Exposed tool name (glob) -> scope a token needs to call it; all matching apply.",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> OAuthSettings:
        if (self.jwks_uri is None) == (self.jwks_file is None):
            raise ValueError("give exactly one of 'jwks_uri' or 'jwks_file'")
        if self.jwks_uri is not None and not _is_https_or_loopback(self.jwks_uri):
            raise ValueError(
                "'jwks_uri' must be an https URL (plain http only on 127.0.0.1, ::1 or localhost)"
            )
        return self

    @field_validator("algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for algorithm in value:
            if algorithm not in ASYMMETRIC_ALGORITHMS:
                raise ValueError(
                    f"unsupported algorithm {algorithm!r}; use one of {', '.join(ASYMMETRIC_ALGORITHMS)}"
                )
        return value

    @field_validator("tool_scopes")
    @classmethod
    def _narrow_scopes(cls, value: dict[str, str]) -> dict[str, str]:
        for pattern, scope in value.items():
            if not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]+", scope):
                raise ValueError(f"scope for {pattern!r} must be one scope token (no spaces or quotes)")
            if scope.lower() in _OVERBROAD_SCOPES:
                raise ValueError(f"scope {scope!r} for {pattern!r} is over-broad; name a narrow scope")
        return value


ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)
_OVERBROAD_SCOPES = frozenset({"*", "all", "full-access", "full_access", "admin:*", "root"})


def _is_https_or_loopback(url: str) -> bool:
    match = re.match(r"^(https?)://(\[[^\]]+\]|[^/:?#]+)", url)
    if match is None:
        return False
    scheme, host = match.group(1), match.group(2).lower()
    return scheme == "https" or host in {"127.0.0.1", "localhost", "[::1]"}


class AuthSettings(_Model):
    """How HTTP callers prove who they are (stdio callers are the local user and need nothing)."""

    api_keys: bool = Field(True, description="Accept API keys minted with `mcpwarden keys create`.")
    oauth: OAuthSettings | None = Field(None, description="Accept OAuth 2.1 JWT access tokens.")
    anonymous: bool = Field(
        False,
        description="Let HTTP callers that send no credentials in as principal `anonymous` (only when "
        "serving on a loopback address; for local test harnesses). Credentials that are sent are "
        "still checked, and policy and scopes still apply.",
    )

    @model_validator(mode="after")
    def _some_method(self) -> AuthSettings:
        if not self.api_keys and self.oauth is None and not self.anonymous:
            raise ValueError(
                "with 'api_keys: false', configure 'oauth'; otherwise no HTTP caller could connect"
            )
        return self


def _star_glob(value: str) -> str:
    # The policy engine (Cedar `like`) knows one wildcard, `*`; refuse others rather than misread them.
    if any(char in value for char in "?[]"):
        raise ValueError("only '*' is a wildcard here ('?' and '[...]' are not supported)")
    if not value or any(ord(char) < 0x20 or ord(char) == 0x7F for char in value):
        raise ValueError("must be a non-empty name or glob without control characters")
    return value


class ArgumentCondition(_Model):
    """What one named argument must satisfy; give exactly one kind of check."""

    within: tuple[str, ...] | None = Field(
        None, description="Path roots: the argument (or each item of a list) must resolve inside one."
    )
    hosts: tuple[str, ...] | None = Field(
        None, description="URL host allow-list (exact or glob, e.g. *.example.com)."
    )
    recipients: tuple[str, ...] | None = Field(
        None, description="E-mail recipient allow-list (exact or glob, e.g. *@example.com)."
    )
    sql: Literal["read-only"] | None = Field(
        None, description="'read-only': one SELECT (or WITH ... SELECT) statement and no writes."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ArgumentCondition:
        given = [name for name in ("within", "hosts", "recipients", "sql") if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of 'within', 'hosts', 'recipients' or 'sql'")
        lists = (self.within, self.hosts, self.recipients)
        if any(values is not None and (not values or not all(values)) for values in lists):
            raise ValueError("the allow-list must name at least one non-empty entry")
        if self.within is not None and not all(os.path.isabs(root) for root in self.within):
            raise ValueError("path roots must be absolute")
        return self


class PolicyRule(_Model):
    principal: str = Field("*", description="A principal name or role:NAME; glob ('*' only).")
    tool: str = Field("*", description="An exposed tool, prompt or resource name; glob ('*' only).")
    scopes: tuple[str, ...] = Field((), description="Scopes the caller must all hold (exact match).")
    risk: tuple[Literal["low", "medium", "high", "critical"], ...] = Field(
        (),
        description="Only tools of these risk tiers (an allow never matches an unknown tier, a deny does).",
    )
    where: dict[str, ArgumentCondition] = Field(
        default_factory=dict, description="Argument conditions, keyed by argument name."
    )

    _globs = field_validator("principal", "tool")(_star_glob)


class PolicySettings(_Model):
    mode: Literal["enforce", "dry-run"] = Field(
        "enforce", description="dry-run: log and audit what would be denied, but allow it."
    )
    allow: tuple[PolicyRule, ...] = Field((), description="Grants; HTTP callers get nothing else.")
    deny: tuple[PolicyRule, ...] = Field(
        (), description="Refusals; they win over grants. With 'where': refuse calls that fail it."
    )
    cedar_file: str | None = Field(
        None, description="A Cedar policy file (relative to this config), used beside the shorthand."
    )


class Budget(_Model):
    """Cost units a principal (or, with scope global, everyone matched) may spend per calendar
    period in UTC: the hour, the day (from 00:00Z) or the month (from the 1st, 00:00Z)."""

    units: float = Field(gt=0, le=1e15, description="Cost units allowed per period.")
    per: Literal["hour", "day", "month"] = Field(description="The UTC calendar period: hour, day or month.")


class LoopSettings(_Model):
    repeats: int = Field(
        gt=1, le=100_000, description="Identical calls (principal, tool, arguments) let through per window."
    )
    window: str = Field(
        pattern=r"^\d+(\.\d+)?(ms|s|m|h)$", description="Sliding window: 500ms, 30s, 10m or 1h."
    )

    @field_validator("window")
    @classmethod
    def _positive_window(cls, value: str) -> str:
        if duration_seconds(value) <= 0:
            raise ValueError("the window must be longer than zero")
        return value


def duration_seconds(value: str) -> float:
    """`500ms`, `30s`, `10m`, `1h` → seconds."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", value)
    if match is None:
        raise ValueError(f"not a duration: {value!r}")
    return float(match.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[match.group(2)]


def rate_per_second(value: str) -> tuple[float, float]:
    """`5/s`, `100/m`, `1000/h` → (calls per period, the period in seconds)."""
    count, _, unit = value.partition("/")
    return float(count), {"s": 1.0, "m": 60.0, "h": 3600.0}[unit]


class LimitRule(_Model):
    """One limit; every rule whose principal and tool match a call applies to it (see mcpwarden.quota)."""

    principal: str = Field("*", description="A principal name or role:NAME; glob ('*' only).")
    tool: str = Field("*", description="An exposed tool, prompt or resource name; glob ('*' only).")
    scope: Literal["principal", "global"] = Field(
        "principal",
        description="principal: each principal has its own counters under this rule; "
        "global: one set of counters shared by every caller the rule matches.",
    )
    rate: str | None = Field(
        None, pattern=r"^\d+(\.\d+)?/(s|m|h)$", description="Token bucket: N per s, m or h (burst N)."
    )
    concurrency: int | None = Field(None, gt=0, description="Calls in flight at once.")
    cost: float | None = Field(
        None, ge=0, le=1e12, description="Cost units per call (the largest of the matching rules; default 1)."
    )
    cost_per_kb: float | None = Field(
        None,
        ge=0,
        le=1e12,
        description="Cost units per KB of result the upstream returned (the largest of the matching rules).",
    )
    budget: Budget | None = Field(None, description="Cost units allowed per UTC hour, day or month.")
    max_result_kb: int | None = Field(None, gt=0, description="Largest result passed back, in KB.")
    on_large_result: Literal["truncate", "deny"] = Field(
        "deny", description="Over max_result_kb: deny (result-too-large) or truncate with a marker."
    )
    loop: LoopSettings | None = Field(None, description="Loop breaker: the same call repeated.")

    _globs = field_validator("principal", "tool")(_star_glob)

    @field_validator("rate")
    @classmethod
    def _positive_rate(cls, value: str | None) -> str | None:
        if value is not None and rate_per_second(value)[0] <= 0:
            raise ValueError("the rate must allow at least some calls (N > 0)")
        return value


class QuotaSettings(_Model):
    """Where the `limits` counters live: embedded SQLite in state_dir, or Redis shared by replicas."""

    backend: Literal["sqlite", "redis"] = Field(
        "sqlite", description="sqlite: state_dir/quota.db (one host); redis: shared by several gateways."
    )
    redis_url: str | None = Field(
        None, description="redis://[:password@]host:port/db, rediss://… or unix://…; use ${VAR} for secrets."
    )
    key_prefix: str = Field(
        "mcpwarden:quota:", min_length=1, max_length=100, description="Prefix of every Redis key."
    )
    timeout: float = Field(2.0, gt=0, le=60, description="Seconds one counter update may take (fail closed).")

    @model_validator(mode="after")
    def _redis_needs_url(self) -> QuotaSettings:
        if self.backend == "redis":
            if self.redis_url is None:
                raise ValueError("backend 'redis' needs 'redis_url'")
            if not re.match(r"^(redis|rediss|unix)://", self.redis_url):
                raise ValueError("'redis_url' must start with redis://, rediss:// or unix://")
        elif self.redis_url is not None:
            raise ValueError("'redis_url' is only used with 'backend: redis'")
        return self


class ContentSettings(_Model):
    """Scanning of arguments, listings, results and errors with the detection engine."""

    enabled: bool = Field(True, description="Scan, clean and redact message text with the detection engine.")
    on_injection: Literal["mark", "redact", "block"] = Field(
        "mark",
        description="A result flagged as injected instructions: fence it as untrusted data (mark), "
        "replace it (redact) or refuse the answer (block).",
    )
    withhold_flagged_tools: bool = Field(
        True, description="Withhold listed tools and prompts flagged as poisoned."
    )
    block_injected_arguments: bool = Field(
        False,
        description="Refuse arguments flagged as injected instructions (off: they are only recorded in the "
        "audit event, since a false positive there breaks a legitimate call).",
    )
    max_scan_kb: int = Field(256, gt=0, description="Text scanned per answer; all of it is still cleaned.")
    max_error_chars: int = Field(
        2000,
        gt=0,
        description="Error messages and data are cut to this size (an upstream's errors, and a task's "
        "status message and error).",
    )


class GatewaySettings(_Model):
    """How the gateway itself behaves; every field is an operator's knob with a safe default."""

    separator: str = Field("__", min_length=1, description="Joins server id and name: notes__search.")
    request_timeout: float = Field(60.0, gt=0, description="Seconds an upstream may take to answer.")
    connect_timeout: float = Field(20.0, gt=0, description="Seconds to start or reach an upstream.")
    max_request_kb: int = Field(4096, gt=0, description="Largest request accepted from a client.")
    max_result_kb: int = Field(16384, gt=0, description="Largest result passed back from an upstream.")
    max_in_flight: int = Field(64, gt=0, description="Concurrent requests one client may have open.")
    restart_backoff_max: float = Field(30.0, gt=0, description="Longest wait between upstream restarts.")
    approval_timeout: float = Field(120.0, gt=0, description="Seconds to wait for a human's answer.")
    audit_commit_ms: float = Field(
        10.0,
        ge=0,
        le=1000,
        description="Audit events are committed in batches this many ms after their exchange ends "
        "(kill -9 can lose that window); 0 commits right after each answer.",
    )
    allowed_hosts: tuple[str, ...] = Field((), description="Extra Host values accepted (host:port).")
    allowed_origins: tuple[str, ...] = Field((), description="Extra Origin values accepted.")

    @field_validator("separator")
    @classmethod
    def _separator_chars(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", value):
            raise ValueError("must use only letters, digits, '_', '.' or '-' (MCP tool-name characters)")
        return value


RiskTier = Literal["low", "medium", "high", "critical"]
FlowLabel = Literal["untrusted-content", "private-data", "external-sink"]


class RiskSettings(_Model):
    """How risky each tool is (see `mcpwarden.risk`) and which tiers need a human's yes."""

    overrides: dict[str, RiskTier] = Field(
        default_factory=dict,
        description="Exposed tool name or glob ('notes__delete_*', 'notes__*', or a server id "
        "'notes') -> tier; the operator's word, so it may also lower a tier. Most specific wins.",
    )
    approval_tiers: tuple[RiskTier, ...] = Field(
        ("high", "critical"), description="Calls to tools of these tiers are held for approval."
    )

    _globs = field_validator("overrides")(lambda value: {_star_glob(k): v for k, v in value.items()})


class ApprovalRule(_Model):
    """Per principal and tool: always or never hold (first matching rule wins, before the tiers)."""

    principal: str = Field("*", description="A principal name or role:NAME; glob ('*' only).")
    tool: str = Field("*", description="An exposed tool name; glob ('*' only).")
    require: bool = Field(description="true: always hold for approval; false: never.")

    _globs = field_validator("principal", "tool")(_star_glob)


class ApprovalSettings(_Model):
    """Human approval of risky calls (THREATS T10, LLM06)."""

    lifetime: float = Field(
        600.0, gt=0, description="Seconds an approval stays usable (once) after a human approved it."
    )
    timeout: float = Field(
        3600.0,
        gt=0,
        description="Seconds a pending approval waits for `mcpwarden approvals approve` before it "
        "expires (a timeout is a no).",
    )
    max_prompts_per_minute: int = Field(
        10, gt=0, description="New approval requests per principal per minute; more are rate-limited."
    )
    rules: tuple[ApprovalRule, ...] = Field((), description="Per principal/tool exceptions to the tiers.")
    admin_role: str = Field(
        "admin", min_length=1, description="Role an HTTP caller needs for /admin/approvals (list, decide)."
    )


class PinningSettings(_Model):
    """Trust on first use of tool definitions and server instructions (THREATS C3, C4)."""

    enabled: bool = Field(True, description="Pin definitions; changed ones are withheld until approved.")
    new_tools: Literal["review", "trust"] = Field(
        "review",
        description="A tool a server adds after it was first pinned: 'review' withholds it until "
        "`mcpwarden pins approve`; 'trust' pins it on first sight.",
    )
    startup_approval: bool = Field(
        True, description="A stdio command that `vet_command` flags needs approval before its first start."
    )
    poll_interval: float | None = Field(
        300.0,
        gt=0,
        description="Seconds between re-listings of each server's tools even without list_changed, so a "
        "silent change is caught (null: only on list_changed and reconnect).",
    )


class FlowSettings(_Model):
    """Toxic-flow control (THREATS C5, C21): untrusted content + private data -> external sink."""

    action: Literal["hold", "deny", "off"] = Field(
        "hold", description="What happens to a sink call after untrusted content and private data."
    )
    labels: dict[str, tuple[FlowLabel, ...]] = Field(
        default_factory=dict,
        description="Exposed tool name or glob -> labels, added to the derived ones.",
    )
    unlabel: dict[str, tuple[FlowLabel, ...]] = Field(
        default_factory=dict, description="Exposed tool name or glob -> derived labels to drop."
    )
    window: float = Field(
        3600.0,
        gt=0,
        description="Seconds a conversation remembers what was read (for clients without a session "
        "or conversation key, the principal's calls within this window form one conversation).",
    )
    conversation_meta_key: str = Field(
        "io.modelcontextprotocol/related-task",
        description="`_meta` key whose value identifies the conversation of a stateless request.",
    )

    _label_globs = field_validator("labels", "unlabel")(
        lambda value: {_star_glob(k): v for k, v in value.items()}
    )


ServerId = Annotated[str, Field(pattern=SERVER_ID_PATTERN)]


class Settings(_Model):
    """The whole validated configuration."""

    servers: dict[ServerId, ServerSpec] = Field(
        default_factory=dict,
        description="Upstream servers by id ([a-z0-9_-]+); `mcpServers` is accepted too.",
    )
    state_dir: Path = Field(Path(".mcpwarden"), description="Embedded store and generated secrets.")
    auth: AuthSettings | None = Field(
        None, description="Omitted: stdio needs none; HTTP requires an API key."
    )
    policy: PolicySettings | None = Field(
        None, description="Who may call what; HTTP callers get only grants."
    )
    limits: tuple[LimitRule, ...] = Field(
        (), description="Rate, concurrency, cost and size limits; all matching apply."
    )
    quota: QuotaSettings = Field(default_factory=QuotaSettings, description="Where limit counters live.")
    gateway: GatewaySettings = Field(
        default_factory=GatewaySettings, description="The gateway's own behaviour."
    )
    content: ContentSettings = Field(default_factory=ContentSettings, description="Content scanning.")
    risk: RiskSettings = Field(default_factory=RiskSettings, description="Tool risk tiers and overrides.")
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings, description="Human approval.")
    pinning: PinningSettings = Field(default_factory=PinningSettings, description="Definition pins.")
    flow: FlowSettings = Field(default_factory=FlowSettings, description="Toxic-flow control.")
    source: Path | None = Field(None, exclude=True, description="The file these settings came from.")

    @model_validator(mode="after")
    def _ids_do_not_contain_separator(self) -> Settings:
        separator = self.gateway.separator
        for server_id in self.servers:
            if separator in server_id:
                raise ValueError(
                    f"server id {server_id!r} contains the separator {separator!r}, "
                    "so exposed names could not be mapped back to it"
                )
            # `a_` + `__` + `x` is `a___x`, which reads back as server `a`, tool `_x`.
            if (server_id + separator).find(separator) != len(server_id):
                raise ValueError(
                    f"server id {server_id!r} ends with part of the separator {separator!r}, "
                    "so exposed names could not be mapped back to it"
                )
        return self


def load_settings(path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate a configuration file (default: ./mcpwarden.yaml).

    A missing default file yields empty settings, so state-reading commands work anywhere; a missing
    file that was named explicitly is an error. `state_dir` is resolved against the file's folder.
    """
    explicit = path is not None
    config_path = Path(path) if path is not None else Path(DEFAULT_CONFIG_FILE)
    if not config_path.exists():
        if explicit:
            raise ConfigError(f"{config_path}: no such configuration file")
        return Settings(state_dir=Path.cwd() / ".mcpwarden")
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{config_path}: cannot read: {exc}") from None
    return parse_settings(text, config_path, os.environ if environ is None else environ)


def parse_settings(text: str, source: Path, environ: Mapping[str, str]) -> Settings:
    try:
        root_node = yaml.compose(text, Loader=yaml.SafeLoader)
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}:{where}: {problem}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys such as 'servers'")
    if "mcpServers" in raw:
        # Users paste whole client configs; their `mcpServers` is our `servers`.
        if "servers" in raw:
            raise ConfigError(f"{source}: give 'servers' or 'mcpServers', not both")
        raw["servers"] = raw.pop("mcpServers")
    expanded = _expand_env(raw, environ, source, ())
    try:
        settings = Settings.model_validate(expanded)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, source, root_node)) from None
    state_dir = settings.state_dir if settings.state_dir.is_absolute() else source.parent / settings.state_dir
    return settings.model_copy(update={"state_dir": state_dir.resolve(), "source": source.resolve()})


def _expand_env(value: Any, environ: Mapping[str, str], source: Path, key_path: tuple[str, ...]) -> Any:
    if isinstance(value, str):

        def substitute(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"{source}: key '{'.'.join(key_path)}': environment variable {name} is not set")

        return _ENV_REFERENCE.sub(substitute, value)
    if isinstance(value, dict):
        return {k: _expand_env(v, environ, source, (*key_path, str(k))) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand_env(v, environ, source, (*key_path, str(i))) for i, v in enumerate(value)]
    return value


def _describe_validation_error(exc: ValidationError, source: Path, root: yaml.Node | None) -> str:
    lines = []
    for error in exc.errors():
        location = tuple(part for part in error["loc"] if not _is_validator_tag(part))
        if location and location[0] == "source":
            continue
        key = ".".join(str(part) for part in location) or "(top level)"
        line = _line_of(root, location)
        where = f"{source}:{line}" if line is not None else str(source)
        # Never echo the offending value: it may have come from a secret in the environment.
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        lines.append(f"{where}: key '{key}': {message}")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def _is_validator_tag(part: int | str) -> bool:
    # pydantic adds tags such as 'function-after[...]' or 'str' for unions; they are not keys.
    return isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"})


def _line_of(node: yaml.Node | None, location: tuple[int | str, ...]) -> int | None:
    """The 1-based line of the YAML node at `location`, or of its nearest existing parent."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in location:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if str(key_node.value) == str(part) or (part == "servers" and key_node.value == "mcpServers"):
                    child = value_node
                    line = key_node.start_mark.line + 1
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            return line
        node = child
    return line
