"""An example MCP server: the time, and a search tool whose name collides with notes' on purpose."""

import datetime

from mcp.server.mcpserver import MCPServer

server = MCPServer("clock")


@server.tool()
def now(timezone_offset_hours: float = 0.0) -> str:
    """The current time in ISO 8601 at the given offset from UTC."""
    zone = datetime.timezone(datetime.timedelta(hours=timezone_offset_hours))
    return datetime.datetime.now(zone).isoformat(timespec="seconds")


@server.tool()
def search(query: str) -> list[str]:
    """Time zones whose name contains the query; the gateway keeps it apart from notes__search."""
    zones = ["UTC", "Europe/Paris", "America/New_York", "Asia/Tokyo"]
    return [zone for zone in zones if query.lower() in zone.lower()]


if __name__ == "__main__":
    server.run()
