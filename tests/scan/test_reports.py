"""Reports: the JSON contract, SARIF 2.1.0 validated against the official schema, a safe table."""

from __future__ import annotations

import io
import json
from pathlib import Path

import jsonschema
import pytest
from rich.console import Console

from mcpwarden.scan.model import ScanFinding, ScanReport, ServerEntry, ServerResult
from mcpwarden.scan.report import render_json, render_table, report_to_dict
from mcpwarden.scan.sarif import report_to_sarif

SCHEMA = json.loads((Path(__file__).parent / "sarif-schema-2.1.0.json").read_text(encoding="utf-8"))
HOSTILE = "evil\x1b[2J\x1b]8;;https://evil.example\x07<script>alert(1)</script>\u200b\U000e0072\U000e0065"


def sample_report(config: Path) -> ScanReport:
    config.write_text(
        '{\n  "mcpServers": {\n    "notes": {"command": "node"},\n    "calc": {"command": "npx"}\n  }\n}\n'
    )
    notes = ServerEntry(
        name="notes", source=str(config), transport="stdio", command="node", group=str(config)
    )
    calc = ServerEntry(name="calc", source=str(config), transport="stdio", command="npx", group=str(config))
    url = ServerEntry(
        name="127.0.0.1:1/mcp",
        source="http://127.0.0.1:1/mcp",
        transport="http",
        url="http://127.0.0.1:1/mcp",
        direct_url=True,
    )
    return ScanReport(
        servers=(
            ServerResult(notes, (), live="ok", tools=("search",)),
            ServerResult(
                calc,
                (
                    ScanFinding(
                        "tool-poisoning", "critical", "Tool poisoning", "detail", "add", HOSTILE, "tool"
                    ),
                    ScanFinding(
                        "unpinned-package",
                        "high",
                        "Unpinned package",
                        "detail",
                        None,
                        "npx -y calc",
                        "command",
                    ),
                    ScanFinding("tool-added", "medium", "New tool", tool=HOSTILE, location="tool"),
                    ScanFinding("live-checks-skipped", "info", "Skipped"),
                ),
                live="ok",
                tools=("add",),
            ),
            ServerResult(
                url, (ScanFinding("unauthenticated-access", "high", "Open", location="http"),), live="ok"
            ),
        ),
        files_read=(str(config),),
        warnings=("a warning with \x1b[31mcolour\x1b[0m",),
    )


def test_json_follows_the_contract(tmp_path: Path) -> None:
    document = json.loads(render_json(sample_report(tmp_path / "c.json")))
    assert [s["name"] for s in document["servers"]] == ["notes", "calc", "127.0.0.1:1/mcp"]
    for server in document["servers"]:
        assert {"name", "source", "findings"} <= set(server)
        for finding in server["findings"]:
            assert {"id", "severity", "title", "tool"} <= set(finding)
            assert finding["severity"] in {"info", "low", "medium", "high", "critical"}
    calc = document["servers"][1]
    assert calc["findings"][0]["tool"] == "add" and calc["findings"][1]["tool"] is None
    assert document["summary"]["by_severity"] == {"critical": 1, "high": 2, "medium": 1, "low": 0, "info": 1}
    assert document["summary"]["worst"] == "critical"


def test_json_output_is_ascii_so_hidden_characters_cannot_act_in_a_terminal(tmp_path: Path) -> None:
    text = render_json(sample_report(tmp_path / "c.json"))
    assert text.isascii() and "\x1b" not in text
    # Nothing is lost: the JSON still carries the exact string for machines.
    assert json.loads(text)["servers"][1]["findings"][0]["evidence"] == HOSTILE


def test_sarif_validates_against_the_official_schema(tmp_path: Path) -> None:
    sarif = report_to_sarif(sample_report(tmp_path / "c.json"), base=tmp_path)
    validator = jsonschema.Draft4Validator(SCHEMA)
    errors = sorted(validator.iter_errors(sarif), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_sarif_validation_can_fail() -> None:
    # The validator is not vacuous: a result without a message is rejected.
    broken = {"version": "2.1.0", "runs": [{"tool": {"driver": {"name": "x"}}, "results": [{"ruleId": "a"}]}]}
    assert list(jsonschema.Draft4Validator(SCHEMA).iter_errors(broken))


def test_sarif_shape_for_github_code_scanning(tmp_path: Path) -> None:
    sarif = report_to_sarif(sample_report(tmp_path / "c.json"), base=tmp_path)
    run = sarif["runs"][0]
    rules = {rule["id"]: rule for rule in run["tool"]["driver"]["rules"]}
    assert rules["tool-poisoning"]["properties"]["security-severity"] == "9.5"
    assert rules["live-checks-skipped"]["defaultConfiguration"]["level"] == "note"
    results = run["results"]
    assert len(results) == 5
    for result in results:
        assert run["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == result["ruleId"]
        assert result["locations"] and result["partialFingerprints"]
        assert "\x1b" not in result["message"]["text"] and "\u200b" not in result["message"]["text"]
    poisoning = next(r for r in results if r["ruleId"] == "tool-poisoning")
    location = poisoning["locations"][0]["physicalLocation"]
    # The config file, relative to the repository root, at the line that defines the server.
    assert location["artifactLocation"]["uri"] == "c.json"
    assert location["region"]["startLine"] == 4
    url_result = next(r for r in results if r["ruleId"] == "unauthenticated-access")
    assert (
        url_result["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "http://127.0.0.1:1/mcp"
    )
    fingerprints = [r["partialFingerprints"]["mcpwardenFinding/v1"] for r in results]
    assert len(set(fingerprints)) == len(fingerprints)


def test_table_shows_hostile_text_inert(tmp_path: Path) -> None:
    stream = io.StringIO()
    console = Console(file=stream, width=200, force_terminal=True, color_system="truecolor")
    render_table(sample_report(tmp_path / "c.json"), console)
    output = stream.getvalue()
    # Colour codes from rich itself are fine; the server's own escape sequences must not pass.
    assert "\x1b[2J" not in output and "\x1b]8;;https://evil" not in output and "\u200b" not in output
    assert "<ESC>" in output
    assert "<ESC>[31mcolour" in output  # the warning's colour code is shown, not applied
    plain = io.StringIO()
    render_table(sample_report(tmp_path / "c.json"), Console(file=plain, width=200, color_system=None))
    text = plain.getvalue()
    assert "tool-poisoning" in text and "unpinned-package" in text and "no findings" in text


@pytest.mark.parametrize("worst", ["info", "low", "medium", "high", "critical"])
def test_threshold(worst: str) -> None:
    entry = ServerEntry(name="s", source="c", transport="stdio", command="x")
    report = ScanReport((ServerResult(entry, (ScanFinding("x", worst, "t"),)),))  # type: ignore[arg-type]
    assert report.has_findings_at_or_above(worst)  # type: ignore[arg-type]
    assert report.worst() == worst
    assert report_to_dict(report)["summary"]["findings"] == 1
