"""Toxic-flow control (THREATS C5, C21): the "lethal trifecta" inside one conversation.

Every tool carries labels — `untrusted-content` (it returns text anyone could have written: issues,
web pages, messages), `private-data` (it returns the user's own data: files, databases, secrets),
`external-sink` (it can send data out: a pull request, a message, a post) — derived from its risk
categories, its name and its `openWorldHint`, plus `flow.labels` and minus `flow.unlabel` from the
config. Once a conversation has read untrusted content *and* private data, a call to an external
sink is where injected instructions would exfiltrate: it is held for a human (`flow.action: hold`,
via the approval guard, which must come after this one) or denied (`deny`) with `toxic-flow`.
The same calls in another order (the sink first), or without untrusted input, pass.

What is "one conversation" — the choice, since modern clients are stateless:
1. the value of `_meta[flow.conversation_meta_key]` on the request (default
   `io.modelcontextprotocol/related-task`), scoped to the principal, when the client sends one;
2. else the exchange's session key: the legacy session (`Mcp-Session-Id`) or the stdio client;
   for stateless modern HTTP clients that is the principal;
3. always within `flow.window` seconds: what was read longer ago is forgotten.
   A task's result is read when it arrives (`tasks/get`, a legacy `tasks/result`), which may be
   long after the call that created it.
Erring towards one big conversation per principal only costs an extra approval; erring the other
way would let a split conversation slip through. State is per gateway process, in memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpwarden import reasons
from mcpwarden.audit.events import canonical_json
from mcpwarden.catalog import CatalogView, DefinitionMemo
from mcpwarden.config import FlowLabel, FlowSettings, RiskSettings, Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.guards.approval import APPROVAL_REASONS_KEY
from mcpwarden.guards.tasks import TASK_TOOL_KEY
from mcpwarden.pipeline import BaseGuard
from mcpwarden.risk import RiskAssessment, classify, glob_matches, name_words


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


UNTRUSTED: FlowLabel = "untrusted-content"
PRIVATE: FlowLabel = "private-data"
SINK: FlowLabel = "external-sink"
MAX_CONVERSATIONS = 10_000

_UNTRUSTED_WORDS = frozenset(
    [
        "issue",
        "issues",
        "comment",
        "comments",
        "email",
        "emails",
        "mail",
        "mails",
        "inbox",
        "message",
        "messages",
        "web",
        "url",
        "page",
        "pages",
        "fetch",
        "browse",
        "scrape",
        "crawl",
        "ticket",
        "tickets",
        "post",
        "posts",
        "tweet",
        "tweets",
        "feed",
        "rss",
        "review",
        "reviews",
        "pr",
        "prs",
        "pull",
        "pulls",
        "discussion",
        "discussions",
        "chat",
        "chats",
        "website",
        "html",
        "search_web",
    ]
)
_PRIVATE_WORDS = frozenset(
    [
        "file",
        "files",
        "content",
        "contents",
        "database",
        "db",
        "sql",
        "table",
        "tables",
        "record",
        "records",
        "secret",
        "secrets",
        "private",
        "document",
        "documents",
        "doc",
        "docs",
        "note",
        "notes",
        "contact",
        "contacts",
        "customer",
        "customers",
        "account",
        "accounts",
        "env",
        "config",
        "history",
        "calendar",
        "drive",
        "email",
        "emails",
        "inbox",
        "message",
        "messages",
        "chat",
        "chats",
        "token",
        "tokens",
        "credential",
        "credentials",
        "password",
        "passwords",
    ]
)
_SINK_WORDS = frozenset(
    [
        "pull",
        "pr",
        "issue",
        "comment",
        "post",
        "publish",
        "message",
        "email",
        "gist",
        "share",
        "ticket",
        "reply",
        "tweet",
        "webhook",
        "upload",
        "request",
        "release",
        "wiki",
        "page",
    ]
)


def labels_for(
    exposed: str,
    assessment: RiskAssessment,
    name: str,
    definition: Mapping[str, Any] | None,
    settings: FlowSettings,
) -> frozenset[FlowLabel]:
    """A tool's flow labels (pure): derived, plus config labels, minus config unlabels."""
    words = set(name_words(name))
    categories = set(assessment.categories)
    labels: set[FlowLabel] = set()
    reads = "read" in categories
    writes = bool(categories & {"write", "destructive"})
    if reads and words & _UNTRUSTED_WORDS:
        labels.add(UNTRUSTED)
    annotations = (definition or {}).get("annotations")
    if isinstance(annotations, Mapping) and annotations.get("openWorldHint") is True and not writes:
        labels.add(UNTRUSTED)
    if "credential-access" in categories or (reads and words & _PRIVATE_WORDS):
        labels.add(PRIVATE)
    if "external-communication" in categories or (writes and words & _SINK_WORDS):
        labels.add(SINK)
    for pattern, extra in settings.labels.items():
        if glob_matches(pattern, exposed):
            labels.update(extra)
    for pattern, dropped in settings.unlabel.items():
        if glob_matches(pattern, exposed):
            labels.difference_update(dropped)
    return frozenset(labels)


@dataclass(slots=True)
class Conversation:
    read: dict[FlowLabel, tuple[float, str]] = field(default_factory=dict)  # label -> (when, which tool)


class FlowGuard(BaseGuard):
    name = "flow"

    def __init__(
        self,
        flow: FlowSettings,
        risk: RiskSettings,
        catalog: CatalogView | None = None,
        separator: str = "__",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flow = flow
        self.risk = risk
        self.catalog = catalog
        self.separator = separator
        self.clock = clock
        self._conversations: OrderedDict[str, Conversation] = OrderedDict()
        self._labels: DefinitionMemo[frozenset[FlowLabel]] = DefinitionMemo()

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> FlowGuard | None:
        if settings.flow.action == "off":
            return None
        return cls(settings.flow, settings.risk, catalog, settings.gateway.separator)

    def labels(self, exchange: Exchange) -> frozenset[FlowLabel]:
        if exchange.server is None or exchange.target is None:
            return frozenset()
        return self._labels_of(exchange.server, exchange.target, exchange.exposed_name)

    def _labels_of(self, server: str, target: str, exposed: str | None = None) -> frozenset[FlowLabel]:
        definition = self.catalog.tool(server, target) if self.catalog is not None else None
        known = self._labels.get(server, target, definition) if definition else None
        if known is not None:
            return known
        assessment = classify(server, target, definition, self.risk, self.separator)
        labels = labels_for(
            exposed or f"{server}{self.separator}{target}", assessment, target, definition, self.flow
        )
        if definition is not None:
            self._labels.put(server, target, definition, labels)
        return labels

    def conversation_key(self, exchange: Exchange) -> str:
        meta = exchange.params.get("_meta")
        if isinstance(meta, Mapping) and meta.get(self.flow.conversation_meta_key) is not None:
            try:
                value = canonical_json(meta[self.flow.conversation_meta_key])
            except (TypeError, ValueError):
                value = repr(meta[self.flow.conversation_meta_key])
            return f"{exchange.principal}\x00meta\x00{value[:512]}"
        return f"{exchange.principal}\x00session\x00{exchange.session_key}"

    def _conversation(self, key: str, now: float) -> Conversation:
        conversation = self._conversations.get(key)
        if conversation is None:
            conversation = self._conversations[key] = Conversation()
            while len(self._conversations) > MAX_CONVERSATIONS:
                self._conversations.popitem(last=False)
        else:
            self._conversations.move_to_end(key)
        for label, (when, _) in list(conversation.read.items()):
            if now - when > self.flow.window:
                del conversation.read[label]
        return conversation

    async def check_request(self, exchange: Exchange) -> Decision:
        if exchange.method != "tools/call":
            return ALLOW
        labels = self.labels(exchange)
        exchange.metadata["flow_labels"] = sorted(labels)
        if SINK not in labels:
            return ALLOW
        conversation = self._conversation(self.conversation_key(exchange), self.clock())
        if UNTRUSTED not in conversation.read or PRIVATE not in conversation.read:
            return ALLOW
        untrusted_from = conversation.read[UNTRUSTED][1]
        private_from = conversation.read[PRIVATE][1]
        why = (
            f"toxic flow: this conversation read untrusted content ({untrusted_from}) and private data "
            f"({private_from}); {exchange.exposed_name} can send data out"
        )
        exchange.metadata.setdefault("audit", {})["toxic_flow"] = {
            "untrusted": untrusted_from,
            "private": private_from,
            "sink": exchange.exposed_name,
            "action": self.flow.action,
        }
        if self.flow.action == "deny":
            return deny(reasons.TOXIC_FLOW, why)
        exchange.metadata.setdefault(APPROVAL_REASONS_KEY, []).append(why)
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.method == "tools/call":
            labels = exchange.metadata.get("flow_labels", ())
            source = exchange.exposed_name or "?"
        elif _delivers_task_result(exchange):
            # A task's result may come long after the call that created it (past the window): the
            # conversation reads what its tool returns when the result arrives.
            tool = exchange.metadata.get(TASK_TOOL_KEY)
            if not isinstance(tool, str):
                return ALLOW
            server, _, target = tool.partition(self.separator)
            labels, source = self._labels_of(server, target, tool), tool
        else:
            return ALLOW
        read = [label for label in (UNTRUSTED, PRIVATE) if label in labels]
        if read:
            now = self.clock()
            conversation = self._conversation(self.conversation_key(exchange), now)
            for label in read:
                conversation.read[label] = (now, source)
        return ALLOW


def _delivers_task_result(exchange: Exchange) -> bool:
    """A task's `tools/call` result: inlined in `tasks/get`, or a legacy session's `tasks/result`."""
    if exchange.method == "tasks/result":
        return True
    return (
        exchange.method == "tasks/get" and isinstance(exchange.result, dict) and "result" in exchange.result
    )
