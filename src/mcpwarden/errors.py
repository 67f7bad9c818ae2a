"""The one root exception of mcpwarden, and the few families callers catch."""


class MCPWardenError(Exception):
    """Root of every error mcpwarden raises on purpose."""


class ConfigError(MCPWardenError):
    """The configuration is invalid; the message names the file, the key and what was expected."""


class UpstreamError(MCPWardenError):
    """An upstream server could not be reached, crashed, or answered out of protocol."""
