"""The benchmark's upstream: one trivial tool, so the numbers measure the path, not the work."""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("trivial")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
