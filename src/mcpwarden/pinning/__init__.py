"""Pinning: trust on first use of tool definitions and server instructions (THREATS C3, C4)."""
