"""Quotas: what each principal may spend, and what it did spend (issue 6; THREATS LLM10, E4, E21).

- `plan`: `limits` rules → the counters one call must pass (matching, keys, cost, UTC periods);
- `backend`: the counter interface and its embedded SQLite form (`state_dir/quota.db`);
- `redis`: the same counters in Redis, for several gateway replicas (atomic Lua scripts);
- `truncate`: capping a result over `max_result_kb` with a marker;
- `usage`, `cli`: `mcpwarden usage`, read from the audit trail's `extra.cost`.

The guard that enforces all this is `mcpwarden.guards.quota.QuotaGuard`.
"""
