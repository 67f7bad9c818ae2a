"""mcpwarden: a security gateway and scanner for the Model Context Protocol."""

__version__ = "0.1.0"
