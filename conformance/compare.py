"""Compare two conformance-suite result folders: the fixture direct vs. through the gateway.

Each folder holds one `server-<scenario>-<timestamp>/checks.json` per scenario, as written by
`conformance server -o DIR`. Prints a per-scenario table and exits 1 when the gateway

* fails (FAILURE or WARNING) a check that passed directly, unless the check is listed in the
  naming-gaps file (checks that depend on names the gateway cannot expose unchanged), or
* does not pass every check of the scenarios it must pass outright (`MUST_PASS`).

WARNING (a SHOULD violated) counts as a failure here: the gateway must not make a compliant
upstream less compliant, even on SHOULDs.

Usage: python compare.py DIRECT_DIR GATEWAY_DIR [--naming-gaps FILE]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

MUST_PASS = ("dns-rebinding-protection", "http-header-validation", "server-stateless")
_RUN_DIR = re.compile(r"^server-(?P<scenario>.+)-\d{4}-\d{2}-\d{2}T[\d-]+Z$")
PASS, FAIL, WARN = "SUCCESS", "FAILURE", "WARNING"


@dataclass
class Scenario:
    checks: dict[str, str] = field(default_factory=dict)  # check id -> status
    messages: dict[str, str] = field(default_factory=dict)  # check id -> the suite's errorMessage
    statuses: list[str] = field(default_factory=list)  # every check as run, for the suite's own counts

    def count(self, status: str) -> int:
        return self.statuses.count(status)


def load(folder: Path) -> dict[str, Scenario]:
    """Scenario name -> its checks; the newest run wins if a folder holds several."""
    found: dict[str, Scenario] = {}
    for path in sorted(folder.glob("server-*/checks.json")):
        match = _RUN_DIR.match(path.parent.name)
        if match is None:
            continue
        scenario = Scenario()
        for check in json.loads(path.read_text(encoding="utf-8")):
            scenario.statuses.append(check["status"])
            # A check id may repeat within a scenario; keep the worst outcome.
            previous = scenario.checks.get(check["id"])
            if previous in (FAIL, WARN) and check["status"] not in (FAIL, WARN):
                continue
            scenario.checks[check["id"]] = check["status"]
            if check.get("errorMessage"):
                # The suite can quote a whole tools/list; a few hundred characters identify it.
                scenario.messages[check["id"]] = str(check["errorMessage"])[:300]
        found[match["scenario"]] = scenario
    return found


def load_gaps(path: Path | None) -> set[str]:
    """Entries `scenario` or `scenario:check-id`, in the suite's expected-failures grammar."""
    if path is None:
        return set()
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return {str(entry) for entry in data.get("server") or ()}


def is_gap(gaps: set[str], scenario: str, check: str) -> bool:
    return scenario in gaps or f"{scenario}:{check}" in gaps


def compare(direct: dict[str, Scenario], gateway: dict[str, Scenario], gaps: set[str]) -> list[str]:
    """Print the table; return one line per problem (empty: the gateway added no failure)."""
    problems: list[str] = []
    gap_lines: list[str] = []
    rows: list[tuple[str, str, str, str]] = []
    for name in sorted(set(direct) | set(gateway)):
        d, g = direct.get(name, Scenario()), gateway.get(name, Scenario())
        regressions: dict[str, list[str]] = defaultdict(list)
        for check, status in d.checks.items():
            if status != PASS or g.checks.get(check) == PASS:
                continue
            got = g.checks.get(check, "missing")
            line = f"{name}:{check}: direct {status}, gateway {got}: {g.messages.get(check, '')}".rstrip(": ")
            if is_gap(gaps, name, check):
                gap_lines.append(line)
                regressions["gap"].append(check)
            else:
                problems.append(line)
                regressions["new"].append(check)
        if name in MUST_PASS:
            if not g.checks:
                problems.append(f"{name}: did not run through the gateway")
            for check, status in g.checks.items():
                if status in (FAIL, WARN) and check not in regressions["new"]:
                    regressions["new"].append(check)
                    message = g.messages.get(check, "")
                    problems.append(f"{name}:{check}: gateway {status} (must pass): {message}")
        verdict = "new failure" if regressions["new"] else ("naming gap" if regressions["gap"] else "same")
        if name in MUST_PASS and regressions["new"]:
            verdict = "MUST-PASS failed"
        rows.append((name, _counts(d), _counts(g), verdict))

    width = max(len(r[0]) for r in rows) if rows else 10
    print(f"{'scenario':<{width}}  {'direct p/f/w':>13}  {'gateway p/f/w':>13}  verdict")
    for name, dc, gc, verdict in rows:
        print(f"{name:<{width}}  {dc:>13}  {gc:>13}  {verdict}")
    print(f"{'total':<{width}}  {_total(direct):>13}  {_total(gateway):>13}")
    if gap_lines:
        print("\nNot compared (need names the gateway cannot expose unchanged, see naming-gaps):")
        for line in gap_lines:
            print(f"  {line}")
    return problems


def _counts(s: Scenario) -> str:
    return f"{s.count(PASS)}/{s.count(FAIL)}/{s.count(WARN)}"


def _total(results: dict[str, Scenario]) -> str:
    p = sum(s.count(PASS) for s in results.values())
    f = sum(s.count(FAIL) for s in results.values())
    w = sum(s.count(WARN) for s in results.values())
    return f"{p}/{f}/{w}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("direct", type=Path)
    parser.add_argument("gateway", type=Path)
    parser.add_argument("--naming-gaps", type=Path, default=None)
    args = parser.parse_args(argv)
    direct, gateway = load(args.direct), load(args.gateway)
    if not direct or not gateway:
        print(f"no results in {args.direct if not direct else args.gateway}", file=sys.stderr)
        return 2
    problems = compare(direct, gateway, load_gaps(args.naming_gaps))
    if problems:
        print(f"\nFAIL: the gateway adds {len(problems)} failure(s):")
        for line in problems:
            print(f"  {line}")
        return 1
    print("\nOK: the gateway adds no failure and passes " + ", ".join(MUST_PASS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
