"""Front ends: how clients reach the gateway (stdio for desktop clients, Streamable HTTP)."""
