"""Secrets and personal data: the data-loss side of detection.

Used three ways: ``find_secrets`` reports what and where, ``redact`` scrubs results, error messages
and logs (THREATS E20, LLM02), and ``scan(..., "argument")`` turns a credential leaving in a tool
argument into a blocking finding (THREATS C1's canary in ``sidenote``).

Matching runs on the normalised view (see ``normalize``), so a key split by zero-width characters
or wrapped in base64 is still found; offsets are mapped back to the original text.

Why our own patterns rather than a library: the maintained scanners (detect-secrets, CredSweeper)
are built for files and repositories, pull in large dependency trees or ML models, and cost
milliseconds per call; the gateway calls this on every message. Formats with a checksum (cards:
Luhn, IBAN: mod 97, Spanish DNI: check letter) are verified so digit runs in ordinary results are
not redacted. Pure hex runs (commit ids, hashes) and UUIDs are deliberately not "high entropy":
they are everywhere in tool results and are identifiers, not credentials.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from mcpwarden.detect.normalize import BASE64_SHAPE, NormalizedText, View, has_run, normalize, utf8

__all__ = ["CREDENTIAL_KINDS", "PII_KINDS", "SecretMatch", "find_secrets", "redact"]


@dataclass(frozen=True)
class SecretMatch:
    """A credential or personal datum found in a text; offsets are into the original text."""

    kind: str
    start: int
    end: int


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _card_ok(s: str) -> bool:
    if "  " in s or "--" in s:
        return False
    digits = re.sub(r"\D", "", s)
    if not 13 <= len(digits) <= 19 or len(set(digits)) < 2:
        return False
    # Known issuer prefixes (Visa, Mastercard, Amex, Discover, JCB, Diners, UnionPay) keep order
    # numbers and timestamps that happen to pass Luhn (one in ten) out.
    if not re.match(r"4|5[1-5]|2[2-7]|3[47]|3[068]|6(?:011|5|4[4-9]|2)|35", digits):
        return False
    return _luhn(digits)


def _iban_ok(s: str) -> bool:
    iban = s.replace(" ", "").upper()
    if not 15 <= len(iban) <= 34:
        return False
    rearranged = iban[4:] + iban[:4]
    num = "".join(str(int(c, 36)) for c in rearranged)
    return int(num) % 97 == 1


def _dni_ok(s: str) -> bool:
    return "TRWAGMYFPDXBNJZSQVHLCKE"[int(s[:8]) % 23] == s[8]


def _entropy(s: str) -> float:
    counts: dict[str, int] = {}
    for c in s:
        counts[c] = counts.get(c, 0) + 1
    n = len(s)
    return -sum(v / n * math.log2(v / n) for v in counts.values())


def _high_entropy_ok(s: str) -> bool:
    core = s.rstrip("=")
    if len(core) < 24 or re.fullmatch(r"[0-9a-fA-F-]+", core):
        return False
    if not (re.search(r"[a-z]", core) and re.search(r"[A-Z]", core) and re.search(r"\d", core)):
        return False
    # Identifiers in snake/camel case have low entropy; random tokens of this length sit above 4.2.
    return _entropy(core) >= 4.2


def _assigned_value_ok(s: str) -> bool:
    # Placeholders and plain words ("key: name", "token=<your token>") are not secrets; a value
    # with letters and digits, or an 8+ character value with some entropy, is.
    if s.startswith(("<", "${", "{{", "%", "$")) or s.lower().strip("x*.") == "":
        return False
    has_alpha = any(c.isalpha() for c in s)
    has_digit = any(c.isdigit() for c in s)
    return (has_alpha and has_digit) or (len(s) >= 8 and _entropy(s) >= 3.0 and not s.isalpha())


def _phone_ok(s: str) -> bool:
    digits = re.sub(r"\D", "", s)
    return 8 <= len(digits) <= 15


def _digits_ok(s: str) -> bool:
    return len(set(re.sub(r"\D", "", s))) > 2


_Check = Callable[[str], bool] | None

# (kind, pattern, group holding the secret, validator). Order matters: earlier, more specific
# kinds win over later generic ones when matches overlap.
_PATTERNS: tuple[tuple[str, re.Pattern[str], int, _Check], ...] = (
    (
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:[\s\S]*?-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|[\s\S]*)"
            # a fragment is still a leak: the tail of a block, or the body of an OpenSSH key
            # (base64 of "openssh-key-v1")
            r"|-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|b3BlbnNzaC1rZXktdjE[A-Za-z0-9+/=]*"
        ),
        0,
        None,
    ),
    (
        "aws-access-key",
        re.compile(r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z0-9]{16}(?![A-Z0-9])"),
        0,
        None,
    ),
    (
        "aws-secret-key",
        re.compile(
            r"(?i)aws.{0,24}?(?:secret|private)?.{0,8}?key[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"
        ),
        1,
        None,
    ),
    (
        "github-token",
        re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})\b"),
        0,
        None,
    ),
    (
        "gitlab-token",
        re.compile(r"\bgl(?:pat|oas|dt|ptt|imt|rt|cbt|soat|ffct|agent|ft)-[A-Za-z0-9_-]{20,}"),
        0,
        None,
    ),
    ("slack-token", re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"), 0, None),
    ("slack-webhook", re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}"), 0, None),
    ("anthropic-key", re.compile(r"\bsk-ant-[A-Za-z0-9_-]{20,}"), 0, None),
    ("openai-key", re.compile(r"\bsk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"), 0, None),
    ("stripe-key", re.compile(r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{16,}"), 0, None),
    ("google-api-key", re.compile(r"\bAIza[0-9A-Za-z_-]{35}"), 0, None),
    ("npm-token", re.compile(r"\bnpm_[A-Za-z0-9]{36}\b"), 0, None),
    ("pypi-token", re.compile(r"\bpypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{40,}"), 0, None),
    ("jwt", re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{0,}"), 0, None),
    (
        "url-credentials",
        re.compile(r"\b[a-z][a-z0-9+.-]*://[^\s/:@]+:(?!\[REDACTED:)([^\s/@]{3,})@"),
        1,
        None,
    ),
    ("bearer-token", re.compile(r"(?i)\bbearer\s+([A-Za-z0-9._~+/-]{20,}=*)"), 1, None),
    (
        "password-assignment",
        re.compile(
            r"(?i)(?:(?:\bpw|password|passwd|pwd|passphrase|secret|api[_-]?key|apikey|access[_-]?key|auth[_-]?token"
            r"|client[_-]?secret|private[_-]?key|token|\bkey)[\"']?\s*(?:[:=]|=>)"
            r"|--?(?:password|passphrase|pass|pwd)\s|identified\s+(?:with\s+\w+\s+)?by)"
            r"\s*[\"']?(?!\[REDACTED:)([^\s\"',;]{6,})"
        ),
        1,
        _assigned_value_ok,
    ),
    (
        "high-entropy-token",
        re.compile(r"(?=[A-Za-z0-9+/_-])(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/_-]{24,}={0,2}(?![A-Za-z0-9+/=_-])"),
        0,
        _high_entropy_ok,
    ),
    # --- personal data ---
    (
        "email",
        re.compile(
            r"(?=[A-Za-z0-9._%+-])(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}\b"
        ),
        0,
        None,
    ),
    ("credit-card", re.compile(r"\d(?<![\d-]\d)[\d -]{11,22}\d(?![\d-])"), 0, _card_ok),
    ("iban", re.compile(r"[A-Z](?<!\w[A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}\b"), 0, _iban_ok),
    (
        "us-ssn",
        re.compile(r"(?=\d)(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
        0,
        _digits_ok,
    ),
    (
        "uk-nino",
        re.compile(
            r"[A-CEGHJ-PR-TW-Z](?<!\w[A-CEGHJ-PR-TW-Z])(?![DFIOQUV])[A-CEGHJ-NPR-TW-Z]"
            r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b"
        ),
        0,
        None,
    ),
    ("es-dni", re.compile(r"\d(?<!\w\d)\d{7}[A-HJ-NP-TV-Z]\b"), 0, _dni_ok),
    (
        "phone",
        re.compile(
            r"(?=[+(\d])(?<![\w+])(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ "
            r".-]?\d{2,4}){1,3}|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4})(?![\w])"
        ),
        0,
        _phone_ok,
    ),
)

PII_KINDS = frozenset({"email", "credit-card", "iban", "us-ssn", "uk-nino", "es-dni", "phone"})
CREDENTIAL_KINDS = frozenset(k for k, *_ in _PATTERNS) - PII_KINDS

# Cheap pre-filters: most tool results contain none of these, and then only the PII and
# entropy patterns need to run.
_FAST_SKIP = {
    "private-key": "PRIVATE KEY",  # the OpenSSH body prefix is checked separately below
    "github-token": "gh",
    "gitlab-token": "gl",
    "slack-token": "xox",
    "slack-webhook": "hooks.slack",
    "anthropic-key": "sk-ant-",
    "openai-key": "sk-",
    "stripe-key": "k_",
    "google-api-key": "AIza",
    "npm-token": "npm_",
    "pypi-token": "pypi-",
    "jwt": "eyJ",
    "url-credentials": "://",
    "email": "@",
}


_ASSIGN_NEEDLES = ("pass", "pw", "secret", "key", "token", "identified")
# Exact pre-conditions of the costlier numeric patterns, tested on the text's ASCII shape (digits
# as "0"); only used on ASCII texts, since ``\d`` also matches other scripts' digits.
_SSN_GATE = re.compile(r"\d-\d\d-\d")
_DIGIT_SHAPE = bytes(48 if 48 <= c <= 57 else c for c in range(256))
_PHONE_TAILS = (b"000 0000", b"000.0000", b"000-0000")  # "\d{3}[ .-]\d{4}" of the local form
_B64_RUN = b"a" * 24
_NUMERIC = frozenset({"credit-card", "iban", "us-ssn", "es-dni", "phone"})
_DIGITS3 = re.compile(r"\d\d\d")


def _find_in_view(view: View, out: list[SecretMatch]) -> None:
    text = view.text
    lower = view.lower
    # Every numeric personal-data format has a run of at least three digits.
    has_digits = _DIGITS3.search(text) is not None
    ascii_text = text.isascii()
    digit_shape = text.encode("ascii").translate(_DIGIT_SHAPE) if has_digits and ascii_text else b""
    for kind, pattern, group, check in _PATTERNS:
        needle = _FAST_SKIP.get(kind)
        if (
            needle is not None
            and needle not in text
            and not (kind == "private-key" and "b3BlbnNzaC1rZXkt" in text)
        ):
            continue
        if kind in ("aws-secret-key",) and "aws" not in lower:
            continue
        if kind == "bearer-token" and "bearer" not in lower:
            continue
        if kind == "password-assignment" and not any(n in lower for n in _ASSIGN_NEEDLES):
            continue
        if kind in _NUMERIC and not has_digits:
            continue
        if kind == "us-ssn" and _SSN_GATE.search(text) is None:
            continue
        if (
            kind == "phone"
            and ascii_text
            and "+" not in text
            and not any(t in digit_shape for t in _PHONE_TAILS)
        ):
            continue
        if kind == "high-entropy-token" and not has_run(utf8(text), BASE64_SHAPE, _B64_RUN):
            continue
        for m in pattern.finditer(text):
            value = m.group(group)
            if check is not None and not check(value):
                continue
            s, e = view.to_original(m.start(group), m.end(group))
            out.append(SecretMatch(kind, s, e))


def find_secrets(text: str) -> list[SecretMatch]:
    """Find credentials and personal data in ``text``; non-overlapping, sorted by start offset.

    Credential kinds: private-key, aws-access-key, aws-secret-key, github-token, gitlab-token,
    slack-token, slack-webhook, anthropic-key, openai-key, stripe-key, google-api-key, npm-token,
    pypi-token, jwt, url-credentials, bearer-token, password-assignment, high-entropy-token.
    Personal data: email, credit-card (Luhn), iban (mod 97), us-ssn, uk-nino, es-dni, phone.
    """
    return find_secrets_normalized(normalize(text))


def find_secrets_normalized(norm: NormalizedText) -> list[SecretMatch]:
    """``find_secrets`` on an already normalised text (the engine normalises once per scan)."""
    found: list[SecretMatch] = []
    for view in norm.views:
        if view.source != "zero-width-spaced":  # same characters as the main view, only spaced
            _find_in_view(view, found)
    if not found:
        return []
    priority = {k: i for i, (k, *_) in enumerate(_PATTERNS)}
    # Specific kinds before generic ones, then longer before shorter; then drop overlaps.
    found.sort(key=lambda m: (priority[m.kind], m.start - m.end))
    kept: list[SecretMatch] = []
    for m in found:
        if all(m.end <= k.start or m.start >= k.end for k in kept):
            kept.append(m)
    kept.sort(key=lambda m: m.start)
    return kept


def redact(text: str, only: Collection[str] | None = None) -> tuple[str, int]:
    """Replace every secret and personal datum (of the kinds in ``only``, when given) by
    ``[REDACTED:<kind>]``; return (text, count)."""
    matches = [m for m in find_secrets(text) if only is None or m.kind in only]
    if not matches:
        return text, 0
    parts: list[str] = []
    pos = 0
    for m in matches:
        parts.append(text[pos : m.start])
        parts.append(f"[REDACTED:{m.kind}]")
        pos = m.end
    parts.append(text[pos:])
    return "".join(parts), len(matches)
