"""`mcpwarden tools`: every exposed tool with tier and why, from the real servers; flagged start
commands are not run to list them (A8)."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

from tests.support import MCPWARDEN, stdio_upstream, write_config


def test_tools_lists_tiers_and_reasons(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    shelly = {"command": "sh", "args": ["-c", f"touch {shlex.quote(str(marker))} && exec python x.py"]}
    config = write_config(
        tmp_path,
        {"alpha": stdio_upstream("alpha"), "shelly": shelly},
        risk={"overrides": {"alpha__echo": "critical"}},
        flow={"labels": {"alpha__add": ["private-data"]}},
    )
    done = subprocess.run(
        [*MCPWARDEN, "tools", "-c", str(config), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    rows = {row["tool"]: row for row in json.loads(done.stdout)}
    assert rows["alpha__echo"]["tier"] == "critical" and rows["alpha__echo"]["approval"] is True
    assert any("risk.overrides" in reason for reason in rows["alpha__echo"]["reasons"])
    assert rows["alpha__push_elicit"]["tier"] == "medium" and rows["alpha__push_elicit"]["categories"] == [
        "write"
    ]
    assert rows["alpha__add"]["flow_labels"] == ["private-data"]
    assert not any(tool.startswith("shelly__") for tool in rows)
    assert "shelly" in done.stderr and "not started" in done.stderr
    assert not marker.exists()

    table = subprocess.run(
        [*MCPWARDEN, "tools", "-c", str(config)], capture_output=True, text=True, timeout=120
    )
    assert table.returncode == 0 and "alpha__echo" in table.stdout and "critical" in table.stdout
