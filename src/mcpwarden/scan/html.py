"""A self-contained HTML report: one file, no external assets, no scripts.

The report displays strings that servers wrote (tool names, descriptions, evidence), so every text
is escaped with `html.escape` after hidden characters are made visible, and the page carries a
Content-Security-Policy that forbids scripts, frames, forms and every fetch: even a mistake in
escaping could not run code or call home. Styles are inline in one <style> element.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime

from mcpwarden import __version__
from mcpwarden.scan.engine import visible
from mcpwarden.scan.model import SEVERITY_ORDER, ScanReport, ServerResult
from mcpwarden.scan.report import display_target, report_to_dict

__all__ = ["render_html"]

CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"

_STYLE = """
:root { color-scheme: light; --critical: #8b0000; --high: #c62828; --medium: #b26a00;
        --low: #1565c0; --info: #607d8b; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0; color: #1d232a;
       background: #f5f7fa; }
header { background: #1d232a; color: #fff; padding: 18px 28px; }
header h1 { margin: 0 0 4px; font-size: 20px; }
header p { margin: 0; color: #c7d0db; font-size: 12px; }
main { padding: 20px 28px 40px; max-width: 1280px; }
.summary { display: flex; gap: 10px; flex-wrap: wrap; margin-bottom: 18px; }
.count { background: #fff; border-radius: 6px; padding: 10px 16px; border-top: 4px solid var(--info);
         min-width: 110px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
.count b { display: block; font-size: 22px; }
.count.critical { border-color: var(--critical); } .count.high { border-color: var(--high); }
.count.medium { border-color: var(--medium); } .count.low { border-color: var(--low); }
section.server { background: #fff; border-radius: 6px; margin: 0 0 16px; padding: 14px 18px;
                 box-shadow: 0 1px 2px rgba(0,0,0,.08); }
section.server h2 { margin: 0; font-size: 16px; word-break: break-all; }
.meta { color: #5b6673; font-size: 12px; margin: 2px 0 10px; word-break: break-all; }
table { border-collapse: collapse; width: 100%; table-layout: fixed; }
th, td { text-align: left; vertical-align: top; padding: 6px 8px; border-top: 1px solid #e3e8ee; }
th { font-size: 12px; color: #5b6673; font-weight: 600; }
td { overflow-wrap: anywhere; }
th.sev, td.sev { width: 92px; } th.tool, td.tool { width: 16%; } th.title { width: 30%; }
.badge { display: inline-block; border-radius: 10px; padding: 1px 9px; color: #fff; font-size: 12px;
         font-weight: 600; background: var(--info); }
.badge.critical { background: var(--critical); } .badge.high { background: var(--high); }
.badge.medium { background: var(--medium); } .badge.low { background: var(--low); }
code, pre { font: 12px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { white-space: pre-wrap; margin: 4px 0 0; background: #f1f3f6; padding: 6px 8px; border-radius: 4px;
      max-height: 14em; overflow: auto; }
.id { color: #5b6673; font-size: 12px; }
.ok { color: #2e7d32; font-weight: 600; }
ul.files { margin: 4px 0 16px; padding-left: 20px; color: #5b6673; font-size: 12px; }
"""


def _e(text: str | None) -> str:
    return html.escape(visible(text or ""), quote=True)


def _server_section(server: ServerResult) -> str:
    entry = server.entry
    meta = [entry.transport, _e(display_target(entry)), f"live checks: {_e(server.live)}"]
    if server.server_name:
        meta.append(f"reports itself as {_e(server.server_name)}")
    if server.tools:
        meta.append(f"{len(server.tools)} tool(s)")
    parts = [
        '<section class="server">',
        f"<h2>{_e(entry.name)}</h2>",
        f'<div class="meta">{" · ".join(meta)}<br>source: <code>{_e(entry.source)}</code></div>',
    ]
    if not server.findings:
        parts.append('<p class="ok">No findings.</p>')
    else:
        parts.append(
            '<table><thead><tr><th class="sev">Severity</th><th class="title">Finding</th>'
            '<th class="tool">Tool</th><th>Detail and evidence</th></tr></thead><tbody>'
        )
        for finding in server.findings:
            evidence = f"<pre>{_e(finding.evidence)}</pre>" if finding.evidence else ""
            parts.append(
                "<tr>"
                f'<td class="sev"><span class="badge {finding.severity}">{finding.severity}</span></td>'
                f'<td>{_e(finding.title)}<br><span class="id">{_e(finding.id)}</span></td>'
                f'<td class="tool"><code>{_e(finding.tool)}</code></td>'
                f"<td>{_e(finding.detail)}{evidence}</td>"
                "</tr>"
            )
        parts.append("</tbody></table>")
    parts.append("</section>")
    return "\n".join(parts)


def render_html(report: ScanReport) -> str:
    summary = report_to_dict(report)["summary"]
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    counts = "".join(
        f'<div class="count {severity}"><b>{summary["by_severity"][severity]}</b>{severity}</div>'
        for severity in reversed(SEVERITY_ORDER)
    )
    files = ""
    if report.files_read:
        files = (
            '<h3>Files read</h3><ul class="files">'
            + "".join(f"<li><code>{_e(path)}</code></li>" for path in report.files_read)
            + "</ul>"
        )
    warnings = ""
    if report.warnings:
        warnings = (
            '<h3>Warnings</h3><ul class="files">'
            + "".join(f"<li>{_e(warning)}</li>" for warning in report.warnings)
            + "</ul>"
        )
    body = "\n".join(_server_section(server) for server in report.servers)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcpwarden scan report</title>
<style>{_STYLE}</style>
</head>
<body>
<header><h1>mcpwarden scan report</h1>
<p>{summary["servers"]} server(s), {summary["findings"]} finding(s) · generated {generated}
 · mcpwarden {__version__}</p>
</header>
<main>
<div class="summary">{counts}</div>
{files}
{warnings}
{body}
</main>
</body>
</html>
"""
