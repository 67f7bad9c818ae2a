"""An example MCP server: a tiny in-memory notebook (tools, a resource template and a prompt)."""

from mcp.server.mcpserver import MCPServer

server = MCPServer("notes")
_notes: dict[str, str] = {"welcome": "mcpwarden is watching this notebook."}


@server.tool()
def add_note(title: str, text: str) -> str:
    """Store a note under a title, replacing any note with the same title."""
    _notes[title] = text
    return f"saved {title!r}"


@server.tool()
def search(query: str) -> list[str]:
    """Titles of the notes whose title or text contains the query (case-insensitive)."""
    q = query.lower()
    return [title for title, text in _notes.items() if q in title.lower() or q in text.lower()]


@server.resource("notes://{title}")
def read_note(title: str) -> str:
    """The text of one note."""
    return _notes.get(title, "")


@server.prompt()
def summarize(title: str) -> str:
    """Ask the model to summarise one note."""
    return f"Summarise this note in one sentence:\n\n{_notes.get(title, '')}"


if __name__ == "__main__":
    server.run()
