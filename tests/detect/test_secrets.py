"""Secrets and PII: truth tables for every kind, checksums (Luhn, IBAN mod 97) and redaction."""

from __future__ import annotations

import pytest

from mcpwarden.detect import find_secrets, redact

POSITIVES = [
    ("aws-access-key", "key=AKIAIOSFODNN7EXAMPLE"),
    ("aws-secret-key", "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    (
        "private-key",
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjE=\n-----END OPENSSH PRIVATE KEY-----",
    ),
    ("private-key", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA (truncated"),
    ("private-key", "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEE\n-----END EC PRIVATE KEY-----"),
    ("github-token", "token ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("github-token", "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJ"),
    ("gitlab-token", "glpat-xxxxXXXX1234abcdEFGH"),
    ("slack-token", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("slack-webhook", "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX"),
    ("anthropic-key", "sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789"),
    ("openai-key", "OPENAI=sk-proj-abcdefghijklmnopqrstuvwxyz012345"),
    ("stripe-key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("google-api-key", "AIzaSyDaGmWKa4JsXZ-HjGw7ISLn_3namBGewQe"),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("url-credentials", "redis://default:s3cr3tpass@cache.internal:6379"),
    ("bearer-token", "Authorization: Bearer abcdefghijklmnopqrstuvwxyz123456"),
    ("password-assignment", 'DB_PASSWORD="correct-horse-battery"'),
    ("high-entropy-token", "session Zx8kP2qLm9RtY4vN7wB3cJ6hF1dS5gA0 expires"),
    ("email", "contact alice.smith+tag@example.co.uk today"),
    ("credit-card", "card 4111 1111 1111 1111"),
    ("credit-card", "amex 378282246310005"),
    ("iban", "IBAN GB82 WEST 1234 5698 7654 32"),
    ("iban", "DE89370400440532013000"),
    ("us-ssn", "SSN 123-45-6789"),
    ("uk-nino", "NI number AB 12 34 56 C"),
    ("es-dni", "DNI 12345678Z"),
    ("phone", "call +44 20 7946 0958"),
    ("phone", "call (415) 555-2671"),
]


@pytest.mark.parametrize(("kind", "text"), POSITIVES)
def test_finds(kind: str, text: str) -> None:
    kinds = [m.kind for m in find_secrets(text)]
    assert kind in kinds, kinds


NEGATIVES = [
    "card 4111 1111 1111 1112",  # fails Luhn
    "order 1234 5678 9012 3456",  # fails Luhn and no issuer prefix
    "IBAN GB82 WEST 1234 5698 7654 33",  # fails mod 97
    "DNI 12345678A",  # wrong check letter
    "commit 3f786850e387550fdab836ed7e6dc881de23001b",  # a hash, not a secret
    "uuid 123e4567-e89b-12d3-a456-426614174000",
    "function get_user_profile_information_by_identifier",
    "AUTH_TOKEN=<an authorization token>",
    "version 1.2.3, build 20240101",
    "SSN 000-12-3456",
]


@pytest.mark.parametrize("text", NEGATIVES)
def test_does_not_find(text: str) -> None:
    assert find_secrets(text) == []


def test_offsets_and_order() -> None:
    text = "a AKIAIOSFODNN7EXAMPLE b bob@example.com c"
    matches = find_secrets(text)
    assert [(m.kind, text[m.start : m.end]) for m in matches] == [
        ("aws-access-key", "AKIAIOSFODNN7EXAMPLE"),
        ("email", "bob@example.com"),
    ]


def test_hidden_by_zero_width_characters() -> None:
    text = "AKIA\u200bIOSFODNN7\u200bEXAMPLE"
    assert [m.kind for m in find_secrets(text)] == ["aws-access-key"]
    assert redact(text) == ("[REDACTED:aws-access-key]", 1)


def test_redact() -> None:
    text = "key AKIAIOSFODNN7EXAMPLE mail bob@example.com card 4111-1111-1111-1111"
    clean, n = redact(text)
    assert n == 3
    assert clean == "key [REDACTED:aws-access-key] mail [REDACTED:email] card [REDACTED:credit-card]"
    assert redact(clean) == (clean, 0)


def test_private_key_block_redacted_whole() -> None:
    key = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----"
    assert redact(f"x {key} y") == ("x [REDACTED:private-key] y", 1)


def test_no_secrets_is_identity() -> None:
    text = "The weather in Paris is 18 degrees."
    assert redact(text) == (text, 0)
