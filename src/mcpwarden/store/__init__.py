"""Embedded and shared state: SQLite by default (keys, pins, approvals, usage, audit)."""
