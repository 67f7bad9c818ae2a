"""Human approval of held calls: the SQLite store shared by the gateway and `mcpwarden approvals`."""
