"""Scoring API: normalise -> rules + secrets -> classifier -> one `Finding`.

This is the one entry point the gateway guards and the scanner share. ``scan`` scores a text of a
given kind; ``scan_tool`` scores a whole MCP tool definition (every schema string *and* key, bad
``type`` values, invalid names, icon URLs) by rendering it into the same text format the
classifier was trained on.

How a score is made: each rule id that fires contributes its weight once, combined as a noisy-OR
(``1 - prod(1 - w)``); the classifier's probability joins the same noisy-OR. A text is flagged when
the score reaches the per-kind threshold (chosen in training at ~1 % false positives on held-out
benign data of that kind) or when a *strong* rule fired. Everything here is pure: no I/O after the
one lazy model load, no shared mutable state, so calls are thread-safe.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from mcpwarden.detect.classifier import Model, load_model, prepare, prepare_segments
from mcpwarden.detect.normalize import NormalizedText, normalize
from mcpwarden.detect.rules import METADATA_KINDS, STRUCTURAL_WEIGHTS, match_rules
from mcpwarden.detect.secrets import CREDENTIAL_KINDS, find_secrets_normalized

__all__ = ["KINDS", "Finding", "Kind", "Span", "render_tool", "scan", "scan_tool", "score_text"]

Kind = Literal[
    "tool_description", "tool_result", "argument", "server_instructions", "elicitation", "sampling"
]
KINDS: tuple[str, ...] = get_args(Kind)

# Used only if the shipped model has no threshold for a kind (it always should).
_DEFAULT_THRESHOLD = 0.5
# Personal data that is blocking in an argument: numbers with a checksum or an id format.
_SENSITIVE_PII = frozenset({"credit-card", "iban", "us-ssn", "uk-nino", "es-dni"})
_SEMANTIC_RULES = frozenset(
    {
        "hidden-instruction-tag",
        "model-addressed-instruction",
        "concealment",
        "sensitive-file-reference",
        "credential-solicitation",
        "context-solicitation",
        "system-prompt-solicitation",
        "tool-shadowing",
        "preference-manipulation",
        "coercion",
        "exfiltration-channel",
        "recipient-redirect",
        "instruction-override",
        "fake-role-marker",
        "dangerous-command",
        "ai-addressed-message",
    }
)
# Kinds scored by the segment model (instructions addressed to the model inside data).
_SEGMENT_KINDS = frozenset({"tool_result"})
_MIN_ARGUMENT_CHARS = 24
_MAX_SCAN_CHARS = 1_000_000  # beyond this only the head and tail are scored (size caps are the gateway's job)


@dataclass(frozen=True)
class Span:
    """Where a rule matched, as [start, end) offsets into the original text."""

    start: int
    end: int
    rule: str


@dataclass(frozen=True)
class Finding:
    """The verdict on one text: score in [0, 1], whether it is flagged, why, and where."""

    score: float
    flagged: bool
    reasons: tuple[str, ...]
    spans: tuple[Span, ...]


# ANSI sequences that hide or overwrite text rather than colour it: conceal (SGR 8), cursor
# movement, erase, and OSC (hyperlinks, window titles). Colour codes alone are common in command
# output and only count as weak evidence.
_ANSI_CONCEAL_RE = re.compile(r"\x1b\[[0-9;]*8[;m]|\x1b\[[0-9;]*[ABCDEFGHJKSTfsu]|\x1b\]|\x9d|\x1b\[\?")
_PADDING_RE = re.compile(r"[ \t\u00a0\u2000-\u200a\u3000]{40,}\S|(?:[ \t]*\n){10,}[ \t]*\S")


@dataclass
class _Evidence:
    weights: dict[str, float]
    strong: set[str]
    spans: list[Span]

    def add(self, rule: str, weight: float, strong: bool, start: int, end: int) -> None:
        if weight > self.weights.get(rule, 0.0):
            self.weights[rule] = weight
        if strong:
            self.strong.add(rule)
        if len(self.spans) < 256:  # a flood of matches adds no information, only memory
            self.spans.append(Span(start, end, rule))


def _structural(norm: NormalizedText, kind: str, ev: _Evidence) -> None:
    text = norm.original
    vs_count = 0
    zw_count = sum(1 for r, _s, _e in norm.removed if r == "zero-width-character")
    for rule, s, e in norm.removed:
        chunk = text[s:e]
        if rule == "ansi-escape" and _ANSI_CONCEAL_RE.match(chunk):
            rule = "ansi-concealment"
        if rule == "variation-selector":
            vs_count += e - s
            continue
        weight, strong = STRUCTURAL_WEIGHTS[rule]
        if rule == "unicode-tag-smuggling":
            decoded = "".join(chr(ord(c) - 0xE0000) for c in chunk if 0x20 <= ord(c) - 0xE0000 < 0x7F)
            # Flag emoji (England, Scotland, Wales) are tag sequences of a few lowercase letters.
            if len(decoded) <= 6 and decoded.isalpha():
                continue
        if rule == "zero-width-character" and kind in METADATA_KINDS and zw_count >= 3:
            weight = 0.45  # several zero-width characters in metadata: someone is hiding something
        if rule == "bidi-control" and kind in METADATA_KINDS:
            strong = True  # no tool name or description needs its display order reversed
        ev.add(rule, weight, strong, s, e)
    if vs_count >= 8:
        weight, strong = STRUCTURAL_WEIGHTS["variation-selector-smuggling"]
        ev.add("variation-selector-smuggling", weight, strong, 0, len(text))
    if kind in METADATA_KINDS or kind == "argument":
        for m in _PADDING_RE.finditer(text):
            weight, strong = STRUCTURAL_WEIGHTS["whitespace-padding"]
            ev.add("whitespace-padding", weight, strong, m.start(), m.end())


def _secrets(norm: NormalizedText, kind: str, ev: _Evidence) -> None:
    for m in find_secrets_normalized(norm):
        if m.kind in CREDENTIAL_KINDS:
            rid = f"secret-{m.kind}"
            # A credential leaving in an argument is exfiltration (C1's canary in `sidenote`); in
            # results and errors it is a redaction matter, so it informs but does not flag.
            weight, strong = (0.9, True) if kind in ("argument", "elicitation", "sampling") else (0.15, False)
        else:
            rid = f"pii-{m.kind}"
            sensitive = m.kind in _SENSITIVE_PII
            weight, strong = (
                (0.6, True) if sensitive and kind == "argument" else (0.1 if sensitive else 0.03, False)
            )
        ev.add(rid, weight, strong, m.start, m.end)


def score_text(text: str, kind: str, model: Model | None, *, use_rules: bool = True) -> Finding:
    """Score ``text``; ``model=None`` scores with rules only (used by the bench and evaluation)."""
    shift = 0
    if len(text) > _MAX_SCAN_CHARS:
        half = _MAX_SCAN_CHARS // 2
        shift = len(text) - half - (half + 1)  # tail offsets in the cut text -> original offsets
        text = text[:half] + "\n" + text[-half:]
    norm = normalize(text)
    ev = _Evidence({}, set(), [])
    if use_rules:
        _structural(norm, kind, ev)
        for view in norm.views:
            for hit in match_rules(view.lower, kind):
                s, e = view.to_original(hit.start, hit.end)
                ev.add(hit.rule, hit.weight, hit.strong, s, e)
                if view.source in ("base64", "hex", "percent"):
                    # An instruction someone bothered to encode is worse than a plain one.
                    ev.add("encoded-payload", 0.5, hit.strong, s, e)
        _secrets(norm, kind, ev)
        semantic = [r for r in ev.weights if r in _SEMANTIC_RULES]
        if (kind in METADATA_KINDS or kind == "tool_result") and len(semantic) >= 3:
            # Three independent kinds of evidence (say a file path, an instruction to the model and
            # concealment) in one definition or result: measured to occur in no registry tool,
            # BFCL function, BIPIA context, benign prompt or generated benign result (20k texts).
            ev.add("multiple-indicators", 0.6, True, 0, len(text))

    rule_keep = 1.0
    for w in ev.weights.values():
        rule_keep *= 1.0 - w
    p = 0.0
    threshold = _DEFAULT_THRESHOLD
    if model is not None:
        threshold = model.thresholds.get(kind, _DEFAULT_THRESHOLD)
        # The main view plus up to four decoded payloads; decoded text can hide what plain text shows.
        views = norm.views[:5]
        if kind in _SEGMENT_KINDS and model.segment is not None:
            # Data the model reads: the most instruction-like window of it decides.
            p = max(model.segment.score(prepare_segments(v.lower)) for v in views)
        elif kind == "argument" and len(norm.main.text.strip()) < _MIN_ARGUMENT_CHARS:
            p = 0.0  # a few words carry no evidence a text classifier can weigh; rules still apply
        else:
            p = max(model.score(prepare(v.lower), kind) for v in views)
    elif use_rules:
        threshold = 0.5
    score = 1.0 - rule_keep * (1.0 - p)
    reasons = sorted(ev.weights, key=lambda r: (-ev.weights[r], r))
    if model is not None and p >= threshold:
        reasons.append("classifier")
    flagged = bool(ev.strong) or score >= threshold
    found = set(ev.spans)
    if shift:
        cut = _MAX_SCAN_CHARS // 2
        found = {
            Span(
                sp.start + shift if sp.start > cut else sp.start,
                sp.end + shift if sp.end > cut else sp.end,
                sp.rule,
            )
            for sp in found
        }
    spans = tuple(sorted(found, key=lambda sp: (sp.start, sp.end, sp.rule)))
    return Finding(round(score, 6), flagged, tuple(reasons), spans)


def scan(text: str, kind: Kind) -> Finding:
    """Score one text of the given kind with rules, secrets and the shipped classifier."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}")
    return score_text(text, kind, load_model())


# --- tool definitions ----------------------------------------------------------------------------

_NAME_RE = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|[_\-.\s]+")
_JSON_TYPES = frozenset({"string", "number", "integer", "boolean", "object", "array", "null"})
# JSON Schema keywords whose values are text a model reads.
_TEXT_KEYS = (
    "title",
    "description",
    "$comment",
    "default",
    "examples",
    "example",
    "enum",
    "const",
    "pattern",
    "format",
)
_KNOWN_KEYWORDS = frozenset(
    {
        "type",
        "properties",
        "required",
        "items",
        "additionalProperties",
        "description",
        "title",
        "default",
        "enum",
        "const",
        "examples",
        "example",
        "$comment",
        "$schema",
        "$id",
        "$ref",
        "$defs",
        "definitions",
        "anyOf",
        "oneOf",
        "allOf",
        "not",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minItems",
        "maxItems",
        "uniqueItems",
        "prefixItems",
        "minProperties",
        "maxProperties",
        "patternProperties",
        "propertyNames",
        "dependentRequired",
        "dependentSchemas",
        "if",
        "then",
        "else",
        "multipleOf",
        "contentEncoding",
        "contentMediaType",
        "readOnly",
        "writeOnly",
        "deprecated",
        "nullable",
        "contains",
        "unevaluatedProperties",
        "unevaluatedItems",
        "$anchor",
        "$dynamicRef",
        "$dynamicAnchor",
        "$vocabulary",
        "strict",
    }
)
_ICON_OK_RE = re.compile(
    r"^(?:https://[^\s/?#@]+(?:[/?#]\S*)?|data:image/(?:png|jpeg|gif|webp|svg\+xml)[;,]\S*)$", re.I
)


def split_identifier(name: str) -> str:
    """``contentFromReading_ssh_id_rsa`` -> ``content From Reading ssh id rsa``."""
    return " ".join(p for p in _CAMEL_RE.split(name) if p)


def _text_of(value: Any, depth: int = 0) -> str:
    if isinstance(value, str):
        return value
    if depth > 32:  # a pathologically nested default must not exhaust the stack
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(_text_of(v, depth + 1) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {_text_of(v, depth + 1)}" for k, v in value.items())
    return "" if value is None else str(value)


def _walk_schema(
    schema: Any, path: str, lines: list[str], problems: list[tuple[str, str]], depth: int = 0
) -> None:
    if depth > 32 or not isinstance(schema, Mapping):
        return
    for key, value in schema.items():
        if not isinstance(key, str):
            problems.append(("invalid-schema-field", path))
            continue
        if key == "type":
            types = value if isinstance(value, list) else [value]
            if not all(isinstance(t, str) and t in _JSON_TYPES for t in types):
                problems.append(("invalid-schema-type", f"{path}.type"))
                lines.append(f"- {path} type: {_text_of(value)}")
        elif key not in _KNOWN_KEYWORDS and not key.startswith("x-"):
            problems.append(("unknown-schema-field", f"{path}.{key}"))
            lines.append(f"- {path} {key} [{split_identifier(key)}]: {_text_of(value)}")
        elif key.startswith("x-"):
            lines.append(f"- {path} {key}: {_text_of(value)}")
    props = schema.get("properties")
    if isinstance(props, Mapping):
        for pname, pschema in props.items():
            pname = str(pname)
            words = split_identifier(pname)
            ptype = _text_of(pschema.get("type")) if isinstance(pschema, Mapping) else ""
            head = f"- {pname}" + (f" [{words}]" if words != pname else "") + f" ({ptype})"
            details: list[str] = []
            if isinstance(pschema, Mapping):
                for tk in _TEXT_KEYS:
                    if tk in pschema:
                        text = _text_of(pschema[tk])
                        details.append(text if tk == "description" else f"{tk}: {text}")
            lines.append(head + ": " + " ".join(details))
            _walk_schema(pschema, f"{path}.{pname}" if path else pname, lines, problems, depth + 1)
    for sub in ("items", "additionalProperties", "not", "if", "then", "else", "contains"):
        if isinstance(schema.get(sub), Mapping):
            _walk_schema(schema[sub], f"{path}[{sub}]", lines, problems, depth + 1)
    for sub in ("anyOf", "oneOf", "allOf", "prefixItems"):
        if isinstance(schema.get(sub), list):
            for i, s in enumerate(schema[sub]):
                _walk_schema(s, f"{path}[{sub}{i}]", lines, problems, depth + 1)
    for sub in ("$defs", "definitions", "patternProperties", "dependentSchemas"):
        if isinstance(schema.get(sub), Mapping):
            for dname, dschema in schema[sub].items():
                lines.append(f"- {dname} [{split_identifier(str(dname))}]")
                _walk_schema(dschema, f"{path}[{sub}.{dname}]", lines, problems, depth + 1)
    if depth == 0:
        for tk in ("description", "title", "$comment"):
            if isinstance(schema.get(tk), str):
                lines.append(f"- schema {tk}: {schema[tk]}")


def _render(tool: Mapping[str, Any]) -> tuple[str, list[tuple[str, str]]]:
    problems: list[tuple[str, str]] = []
    name = tool.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        problems.append(("invalid-tool-name", "name"))
    name_s = _text_of(name)
    lines = [f"name: {name_s}"]
    desc = _text_of(tool.get("description"))
    title = tool.get("title")
    if title:
        desc = f"{_text_of(title)}. {desc}"
    lines.append(f"description: {desc}")
    param_lines: list[str] = []
    for key in ("inputSchema", "outputSchema"):
        schema = tool.get(key)
        if isinstance(schema, Mapping):
            before = len(param_lines)
            _walk_schema(schema, "" if key == "inputSchema" else "output", param_lines, problems)
            if key == "outputSchema" and len(param_lines) > before:
                param_lines.insert(before, "- output:")
    if param_lines:
        lines.append("parameters:")
        lines.extend(param_lines)
    annotations = tool.get("annotations")
    if isinstance(annotations, Mapping):
        text_ann = {k: v for k, v in annotations.items() if isinstance(v, str)}
        if text_ann:
            lines.append("annotations: " + _text_of(text_ann))
    icons = tool.get("icons")
    if isinstance(icons, list):
        for icon in icons:
            src = icon.get("src") if isinstance(icon, Mapping) else icon
            if not isinstance(src, str) or not _ICON_OK_RE.match(src.strip()):
                problems.append(("unsafe-icon-url", "icons"))
            lines.append(f"icon: {_text_of(src)}")
    for key, value in tool.items():
        if isinstance(key, str) and key.startswith("x-"):
            lines.append(f"{key}: {_text_of(value)}")
    return "\n".join(lines), problems


def render_tool(tool: Mapping[str, Any]) -> str:
    """The text ``scan_tool`` scores (and its spans point into): name, description, every schema
    string and key, one parameter per line, in the training format."""
    return _render(tool)[0]


# Problems with the definition's structure rather than its words; all are spec violations or
# known poisoning vectors (C8 names, C10 types, C22 icons), so they flag on their own.
_PROBLEM_WEIGHTS: dict[str, tuple[float, bool]] = {
    "invalid-tool-name": (0.7, True),
    "invalid-schema-type": (0.7, True),
    "unsafe-icon-url": (0.7, True),
    "unknown-schema-field": (0.15, False),
    "invalid-schema-field": (0.5, True),
}


def scan_tool(tool: Mapping[str, Any]) -> Finding:
    """Score an MCP tool definition (a ``tools/list`` entry). Spans index ``render_tool(tool)``."""
    text, problems = _render(tool)
    base = score_text(text, "tool_description", load_model())
    if not problems:
        return base
    return _merge(base, problems, load_model().thresholds.get("tool_description", _DEFAULT_THRESHOLD))


def _merge(base: Finding, problems: Sequence[tuple[str, str]], threshold: float) -> Finding:
    keep = 1.0 - base.score
    reasons = list(base.reasons)
    strong = False
    for rid, _where in problems:
        weight, is_strong = _PROBLEM_WEIGHTS[rid]
        if rid not in reasons:
            reasons.append(rid)
            keep *= 1.0 - weight
        strong = strong or is_strong
    score = 1.0 - keep
    return Finding(round(score, 6), base.flagged or strong or score >= threshold, tuple(reasons), base.spans)
