"""Risk tiers: how dangerous each tool is, and why — a pure function of its definition and config.

MCP has no notion of risk, so the gateway derives one (THREATS LLM06): every tool gets a tier
(`low` < `medium` < `high` < `critical`), the categories that put it there (read, write,
destructive, external communication, code execution, financial, credential access) and the
reasons, in words. Sources, in order of trust:

1. **Configuration** (`risk.overrides`): the operator's word. It sets the tier outright — it may
   lower it too — by exposed tool name, glob, or server id. The most specific pattern wins: an
   exact name, then the longest glob, then a bare server id.
2. **Heuristics** on the tool's name, description and input schema (`delete_repo`, "permanently
   removes", a `command` argument…).
3. **Annotations** (`destructiveHint`, `readOnlyHint: false`, `openWorldHint`): untrusted hints from
   the server. They may *raise* the risk, never lower it, so `readOnlyHint: true` on `delete_repo`
   changes nothing (the name still says destructive). The spec's defaults (an unannotated tool is
   "destructive" by default) are not applied: only hints a server states explicitly count, or
   every unannotated tool would need a human.

The same function serves the runtime guard (`guards/risk.py`, which puts the tier in
`exchange.metadata["risk_tier"]` for the policy and the approval guard), the `mcpwarden tools`
command and the flow labels (`guards/flow.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Literal, get_args

from mcpwarden.config import RiskSettings, RiskTier


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


TIERS: tuple[RiskTier, ...] = ("low", "medium", "high", "critical")

Category = Literal[
    "read",
    "write",
    "destructive",
    "external-communication",
    "code-execution",
    "financial",
    "credential-access",
]
CATEGORIES: tuple[Category, ...] = get_args(Category)
CATEGORY_TIER: dict[Category, RiskTier] = {
    "read": "low",
    "write": "medium",
    "destructive": "high",
    "external-communication": "high",
    "credential-access": "high",
    "code-execution": "critical",
    "financial": "critical",
}

# Name words (after splitting snake_case, kebab-case, dots and camelCase) that mark a category
# wherever they appear in the name…
_NAME_WORDS: dict[Category, frozenset[str]] = {
    "read": frozenset(
        [
            "get",
            "list",
            "read",
            "search",
            "find",
            "query",
            "fetch",
            "show",
            "describe",
            "view",
            "lookup",
            "count",
            "browse",
            "retrieve",
            "download",
            "inspect",
            "stat",
            "status",
            "info",
        ]
    ),
    "write": frozenset(
        [
            "create",
            "update",
            "write",
            "set",
            "put",
            "edit",
            "modify",
            "insert",
            "upload",
            "save",
            "rename",
            "move",
            "patch",
            "commit",
            "push",
            "merge",
            "append",
            "apply",
            "deploy",
            "replace",
            "import",
            "change",
            "mkdir",
            "copy",
            "store",
            "upsert",
            "assign",
        ]
    ),
    "destructive": frozenset(
        [
            "delete",
            "remove",
            "rm",
            "del",
            "drop",
            "destroy",
            "purge",
            "wipe",
            "erase",
            "truncate",
            "kill",
            "terminate",
            "revoke",
            "reset",
            "uninstall",
            "unlink",
            "overwrite",
            "shutdown",
            "prune",
        ]
    ),
    "external-communication": frozenset(
        ["send", "notify", "tweet", "publish", "share", "webhook", "invite", "broadcast", "forward", "sms"]
    ),
    "code-execution": frozenset(
        [
            "exec",
            "execute",
            "eval",
            "shell",
            "bash",
            "subprocess",
            "powershell",
            "terminal",
            "interpreter",
            "repl",
            "spawn",
        ]
    ),
    "financial": frozenset(
        [
            "pay",
            "payment",
            "payout",
            "transfer",
            "charge",
            "refund",
            "invoice",
            "purchase",
            "buy",
            "withdraw",
            "wallet",
            "trade",
            "checkout",
            "billing",
        ]
    ),
    "credential-access": frozenset(
        [
            "secret",
            "secrets",
            "password",
            "passwords",
            "credential",
            "credentials",
            "token",
            "apikey",
            "keychain",
            "vault",
            "privatekey",
            "ssh",
        ]
    ),
}
# …and words that only mark it as the leading verb (`post_message`, not `get_posts`; `run_command`,
# not `get_run_status`).
_LEADING_WORDS: dict[Category, frozenset[str]] = {
    "external-communication": frozenset(["email", "mail", "message", "post", "reply", "text", "dm"]),
    "code-execution": frozenset(["run", "cmd", "command", "script", "sh"]),
}
# Descriptions are longer and chattier than names: only unambiguous phrases count there.
_DESCRIPTION_PATTERNS: dict[Category, re.Pattern[str]] = {
    "destructive": re.compile(
        r"\b(permanently|irreversibl[ey]|cannot be undone|(delete|remove|drop|destroy|wipe|erase|purge)s?"
        r"\b(?! nothing))",
        re.IGNORECASE,
    ),
    "external-communication": re.compile(
        r"\b(sends?|e-?mails?|sms|publish(es)?|posts? (a |the )?(message|comment|tweet)|notif(y|ies) "
        r"(a|the) (user|recipient|channel))\b",
        re.IGNORECASE,
    ),
    "code-execution": re.compile(
        r"\b(execut(e|es|ing)|arbitrary code|shell command|run(s)? (a |the |any )?(command|script|code)"
        r"|eval(uates)? (python|javascript|code))\b",
        re.IGNORECASE,
    ),
    "financial": re.compile(
        r"\b(payments?|transfers? (money|funds)|charges? (a |the )?(card|customer)|refunds?|invoices?)\b",
        re.IGNORECASE,
    ),
    "credential-access": re.compile(
        r"\b(passwords?|secrets?|api[ _-]?keys?|credentials?|access tokens?|private keys?)\b",
        re.IGNORECASE,
    ),
}
# Input-schema property names that reveal what a call does.
_SCHEMA_WORDS: dict[Category, frozenset[str]] = {
    "code-execution": frozenset({"command", "cmd", "script", "shell"}),
    "external-communication": frozenset({"recipient", "recipients", "cc", "bcc", "webhook", "webhook_url"}),
    "financial": frozenset({"amount", "currency", "iban", "card_number", "cardnumber", "account_number"}),
    "credential-access": frozenset({"password", "secret", "api_key", "apikey", "private_key"}),
}


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    """One tool's tier, the categories behind it and the reasons, in words."""

    tool: str  # the exposed name (notes__delete_note)
    tier: RiskTier
    categories: tuple[Category, ...]
    reasons: tuple[str, ...]
    override: str | None = None  # the config pattern that set the tier, if any

    def to_dict(self) -> dict[str, Any]:
        return {
            "tool": self.tool,
            "tier": self.tier,
            "categories": list(self.categories),
            "reasons": list(self.reasons),
            "override": self.override,
        }


def tier_rank(tier: RiskTier) -> int:
    return TIERS.index(tier)


def max_tier(tiers: Iterable[RiskTier]) -> RiskTier:
    return max(tiers, key=tier_rank, default="low")


def name_words(name: str) -> list[str]:
    """`deleteRepo_v2`, `delete-repo.now` -> ["delete", "repo", "v2"] …, lower case."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1 \2", spaced)
    return [word for word in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if word]


# Several guards ask for the same tool's risk on every call. The gateway hands out one definition
# object per listing, so an entry stays valid exactly while the same objects are passed in.
_MEMO: dict[tuple[str, str, str], tuple[object, RiskSettings, RiskAssessment]] = {}
_MEMO_LIMIT = 50_000


def classify(
    server_id: str,
    name: str,
    definition: Mapping[str, Any] | None,
    settings: RiskSettings,
    separator: str = "__",
) -> RiskAssessment:
    """The risk of tool `name` of server `server_id` (its wire-JSON `definition`, if known)."""
    key = (server_id, name, separator)
    cached = _MEMO.get(key)
    if cached is not None and cached[0] is definition and cached[1] is settings and definition is not None:
        return cached[2]
    assessment = _classify(server_id, name, definition, settings, separator)
    if definition is not None:
        if len(_MEMO) >= _MEMO_LIMIT:
            _MEMO.clear()
        _MEMO[key] = (definition, settings, assessment)
    return assessment


def _classify(
    server_id: str,
    name: str,
    definition: Mapping[str, Any] | None,
    settings: RiskSettings,
    separator: str,
) -> RiskAssessment:
    exposed = f"{server_id}{separator}{name}"
    categories: dict[Category, list[str]] = {}

    def add(category: Category, reason: str) -> None:
        categories.setdefault(category, []).append(reason)

    words = name_words(name)
    joined = "".join(words)
    for category, vocabulary in _NAME_WORDS.items():
        hits = [word for word in words if word in vocabulary]
        # Compounds such as "apikey" or "privatekey" appear split ("api", "key"): check the join too.
        hits += [
            compound for compound in ("apikey", "privatekey") if compound in vocabulary and compound in joined
        ]
        if words and words[0] in _LEADING_WORDS.get(category, frozenset()):
            hits.insert(0, words[0])
        if hits:
            add(category, f"name contains {', '.join(repr(h) for h in dict.fromkeys(hits))}")

    definition = definition or {}
    description = definition.get("description")
    if isinstance(description, str):
        for category, pattern in _DESCRIPTION_PATTERNS.items():
            match = pattern.search(description)
            if match:
                add(category, f"description says {match.group(0).strip()!r}")

    schema = definition.get("inputSchema")
    properties = schema.get("properties") if isinstance(schema, Mapping) else None
    if isinstance(properties, Mapping):
        keys = {str(key).lower() for key in properties}
        for category, vocabulary in _SCHEMA_WORDS.items():
            hits = sorted(keys & vocabulary)
            if hits:
                add(category, f"takes argument {', '.join(repr(h) for h in hits)}")

    annotations = definition.get("annotations")
    if isinstance(annotations, Mapping):
        if annotations.get("destructiveHint") is True:
            add("destructive", "annotated destructiveHint: true")
        if annotations.get("readOnlyHint") is False:
            add("write", "annotated readOnlyHint: false")
        if annotations.get("openWorldHint") is True:
            add(
                "external-communication" if "write" in categories else "read", "annotated openWorldHint: true"
            )
        # readOnlyHint: true is noted but never lowers anything (THREATS LLM06).

    if not categories:
        add("read", "nothing suggests more than reading")
    # A tool that is destructive or writes is not "just" reading because its name says get_.
    ordered = tuple(c for c in CATEGORIES if c in categories)
    tier = max_tier(CATEGORY_TIER[c] for c in ordered)
    reasons = [f"{category}: {'; '.join(categories[category])}" for category in ordered]
    if (
        isinstance(annotations, Mapping)
        and annotations.get("readOnlyHint") is True
        and tier_rank(tier) > tier_rank("low")
    ):
        reasons.append("readOnlyHint: true ignored (annotations may raise risk, never lower it)")

    override = _override_for(server_id, exposed, settings.overrides)
    if override is not None:
        source, forced = override
        reasons.append(f"tier set to {forced} by risk.overrides[{source!r}] (was {tier})")
        tier = forced
    return RiskAssessment(exposed, tier, ordered, tuple(reasons), override[0] if override else None)


def needs_approval_by_tier(assessment: RiskAssessment, settings: RiskSettings) -> bool:
    return assessment.tier in settings.approval_tiers


def _override_for(
    server_id: str, exposed: str, overrides: Mapping[str, RiskTier]
) -> tuple[str, RiskTier] | None:
    best: tuple[tuple[int, int], str, RiskTier] | None = None
    for pattern, tier in overrides.items():
        if pattern == server_id:
            rank = (0, 0)
        elif fnmatchcase(exposed, pattern):
            rank = (2, 0) if "*" not in pattern else (1, len(pattern.replace("*", "")))
        else:
            continue
        if best is None or rank > best[0]:
            best = (rank, pattern, tier)
    return None if best is None else (best[1], best[2])


def glob_matches(pattern: str, value: str) -> bool:
    """The config's globs: `*` is the only wildcard (the config refuses `?` and `[...]`)."""
    return fnmatchcase(value, pattern)
