"""Authentication of HTTP callers: who is calling, established before the pipeline runs.

- `keys`: API keys, stored as keyed hashes in `state_dir/keys.db` (`mcpwarden keys ...`, `cli`);
- `jwt` and `jwks`: OAuth 2.1 resource-server validation of JWT access tokens;
- `scopes`: per-tool OAuth scopes, shared by the HTTP front and `guards/scopes.py`;
- `http`: the ASGI layer the HTTP transport installs in front of `/mcp` (401/403 challenges,
  RFC 9728 Protected Resource Metadata, session binding).

See docs/auth.md for the decisions and their THREATS.md rows.
"""
