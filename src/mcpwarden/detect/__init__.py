"""Detection engine: prompt injection, tool poisoning and data leaks, scored locally.

The flow is normalise -> rules + secrets/PII -> hashed n-gram classifier -> `Finding`. The gateway
guards and the scanner import only this module's public names; everything runs offline with the
weights shipped in ``mcpwarden/detect/data``. See docs/detection.md for the measured rates.
"""

from mcpwarden.detect.engine import KINDS, Finding, Kind, Span, render_tool, scan, scan_tool
from mcpwarden.detect.normalize import make_visible, sanitize
from mcpwarden.detect.secrets import CREDENTIAL_KINDS, PII_KINDS, SecretMatch, find_secrets, redact

__all__ = [
    "CREDENTIAL_KINDS",
    "KINDS",
    "PII_KINDS",
    "Finding",
    "Kind",
    "SecretMatch",
    "Span",
    "find_secrets",
    "make_visible",
    "redact",
    "render_tool",
    "sanitize",
    "scan",
    "scan_tool",
]
