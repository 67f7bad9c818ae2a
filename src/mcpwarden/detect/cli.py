"""`mcpwarden detect`: score JSON Lines from stdin with the detection engine (CONTRACT.md).

Input, one object per line: ``{"id": ..., "text": "...", "kind": "..."?}``. Output, one line per
input line, in order: ``{"id", "score", "flagged", "reasons"}``. Choices made here:

* the kind comes from the line, else ``--kind``, else it is inferred: a text that is a tool
  definition — rendered (``name: …`` then ``description: …``) or a JSON object with ``name`` and
  ``inputSchema``/``description`` — is a ``tool_description`` (a JSON tool object is scored with
  ``scan_tool``, so every schema string and key counts); anything else is a ``tool_result``, the
  most common text the gateway scores;
* a line that is not a JSON object, lacks a string ``text`` or names an unknown kind gets an output
  line with an ``"error"`` field (and its ``id`` when one could be read) and the run continues;
  blank lines are skipped (they carry no id to answer);
* exit code 0 when stdin was read to the end, even if some lines were malformed; 2 when stdin
  could not be read (e.g. invalid UTF-8) or ``--kind`` is unknown.

Output is buffered and flushed every 256 lines, so large batches are not bound by write calls.
"""

from __future__ import annotations

import contextlib
import json
import re
import sys
from typing import Any, cast

import typer

from mcpwarden.detect.engine import KINDS, Finding, Kind, scan, scan_tool

DEFAULT_KIND: Kind = "tool_result"
_RENDERED_TOOL_RE = re.compile(r"\s*name:[^\n]*\n\s*description:")


def _score_inferred(text: str) -> Finding:
    """Score a text whose kind was not given (see the module docstring)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            obj = json.loads(stripped)
        except (json.JSONDecodeError, RecursionError):
            obj = None
        is_tool = isinstance(obj, dict) and isinstance(obj.get("name"), str)
        if is_tool and ("inputSchema" in obj or "description" in obj):
            return scan_tool(obj)
    if _RENDERED_TOOL_RE.match(text):
        return scan(text, "tool_description")
    return scan(text, DEFAULT_KIND)


_FLUSH_EVERY = 256


def _answer(obj: Any, default_kind: str | None) -> dict[str, Any]:
    if not isinstance(obj, dict):
        return {"id": None, "error": "line is not a JSON object"}
    ident = obj.get("id")
    text = obj.get("text")
    kind = obj.get("kind")
    if kind is None:
        kind = default_kind
    if not isinstance(text, str):
        return {"id": ident, "error": "missing or non-string 'text'"}
    if kind is not None and kind not in KINDS:
        return {"id": ident, "error": f"unknown kind {kind!r}; expected one of {', '.join(KINDS)}"}
    finding = _score_inferred(text) if kind is None else scan(text, cast(Kind, kind))
    return {"id": ident, "score": finding.score, "flagged": finding.flagged, "reasons": list(finding.reasons)}


def run(lines: Any, out: Any, default_kind: str | None) -> int:
    """Score every line of ``lines`` (an iterable of str) and write answers to ``out``."""
    count = 0
    for raw in lines:
        line = raw.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except (json.JSONDecodeError, RecursionError) as exc:
            answer: dict[str, Any] = {"id": None, "error": f"invalid JSON: {exc}"[:200]}
        else:
            answer = _answer(obj, default_kind)
        out.write(json.dumps(answer, ensure_ascii=False) + "\n")
        count += 1
        if count % _FLUSH_EVERY == 0:
            out.flush()
    out.flush()
    return count


def detect_command(
    kind: str | None = typer.Option(
        None,
        "--kind",
        help=(
            'Kind of text when a line has no "kind": tool_description, tool_result, argument, '
            "server_instructions, elicitation or sampling (default: inferred per line: a tool "
            f"definition is a tool_description, anything else a {DEFAULT_KIND})."
        ),
    ),
) -> None:
    """Score JSON Lines {"id", "text", "kind"?} from stdin; write {"id", "score", "flagged", "reasons"}."""
    default_kind = kind
    if default_kind is not None and default_kind not in KINDS:
        typer.echo(f"error: unknown --kind {default_kind!r}; expected one of {', '.join(KINDS)}", err=True)
        raise typer.Exit(2)
    stdin = sys.stdin
    # A test runner's stdin may not be a real text stream; then it is used as given.
    with contextlib.suppress(AttributeError, ValueError):
        stdin.reconfigure(encoding="utf-8", errors="strict")  # type: ignore[union-attr]
    try:
        run(stdin, sys.stdout, default_kind)
    except (UnicodeDecodeError, OSError) as exc:
        sys.stdout.flush()
        typer.echo(f"error: could not read stdin: {exc}", err=True)
        raise typer.Exit(2) from exc


def main() -> None:
    """Run the command standalone: ``python -m mcpwarden.detect.cli``."""
    app = typer.Typer(add_completion=False)
    app.command("detect")(detect_command)
    typer.main.get_command(app)(standalone_mode=True)


if __name__ == "__main__":
    main()
