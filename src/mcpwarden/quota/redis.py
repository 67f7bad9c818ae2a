"""The Redis counter backend: limits shared by several gateway replicas behind a load balancer.

Each admission and each settlement is one Lua script, so Redis runs it atomically: no other
client's command runs between the checks and the updates, and there is no read-modify-write race
between replicas (a budget with N units admits exactly N one-unit calls, however many replicas ask
at once). The scripts implement the same semantics as `SqliteCounters` (see `quota.backend`);
the same tests run against both.

Time comes from the Redis server (`TIME`), so replicas with slightly different clocks still share
one view of buckets, leases and loop windows (Redis 7 replicates scripts by their effects, so
reading the time inside a script is allowed). Budget periods are computed by the gateway (UTC
calendar), and every key expires by itself once it carries no information (a full bucket, an
expired lease or loop entry, a finished period), so Redis memory stays bounded without a janitor.

Keys are `<key_prefix><kind>:<rule matcher>:<params>:<principal as JSON>[:...]`. All the keys of
one call are passed in KEYS, as scripts must; they do not share a hash slot, so Redis Cluster is
not supported (use one primary, with replicas or Sentinel for failover).

Errors (unreachable server, timeout) propagate, and the guard turns them into a refusal: limits
fail closed.
"""

from __future__ import annotations

import json
import math
from typing import Any, Final

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from mcpwarden.quota.backend import BudgetAlert, Outcome, Refusal, RefusalKind, Settlement
from mcpwarden.quota.plan import ALERT_FRACTION, Admission, BudgetCheck

BUDGET_RETENTION_SECONDS: Final = 86400
# Connections per gateway process; more concurrent calls wait for one (bounded by `timeout`)
# instead of failing, as redis-py's default pool does past its size.
MAX_CONNECTIONS: Final = 32

# ARGV[1]: {"cost", "lease", "lease_ms", "alert",
#           "budgets": [[key#, units, expire_at]], "loops": [[key#, repeats, window]],
#           "conc": [[key#, limit]], "rates": [[key#, capacity, refill_per_second]]}
# Returns JSON: ["refused", kind, index, retry_after or -1] or ["ok", [[budget index, used], ...]].
_ADMIT: Final = """
local plan = cjson.decode(ARGV[1])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local cost = plan.cost
local function num(x) return string.format('%.17g', x) end

for i, b in ipairs(plan.budgets) do
  local used = tonumber(redis.call('HGET', KEYS[b[1]], 'used') or '0')
  if used >= b[2] or used + cost > b[2] then
    return cjson.encode({'refused', 'budget', i - 1, -1})
  end
end
for i, l in ipairs(plan.loops) do
  local key = KEYS[l[1]]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now - l[3]))
  if redis.call('ZCARD', key) >= l[2] then
    local oldest = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return cjson.encode({'refused', 'loop', i - 1, math.max(0, tonumber(oldest[2]) + l[3] - now)})
  end
end
for i, c in ipairs(plan.conc) do
  local key = KEYS[c[1]]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', num(now))
  if redis.call('ZCARD', key) >= c[2] then
    return cjson.encode({'refused', 'concurrency', i - 1, -1})
  end
end
local levels = {}
for i, r in ipairs(plan.rates) do
  local state = redis.call('HMGET', KEYS[r[1]], 'tokens', 'ts')
  local level = r[2]
  if state[1] then
    level = math.min(r[2], tonumber(state[1]) + math.max(0, now - tonumber(state[2])) * r[3])
  end
  if level < 1 then
    return cjson.encode({'refused', 'rate', i - 1, (1 - level) / r[3]})
  end
  levels[i] = level - 1
end

for i, r in ipairs(plan.rates) do
  local key = KEYS[r[1]]
  redis.call('HSET', key, 'tokens', num(levels[i]), 'ts', num(now))
  redis.call('PEXPIRE', key, math.ceil((r[2] - levels[i]) / r[3] * 1000) + 1000)
end
for i, c in ipairs(plan.conc) do
  redis.call('ZADD', KEYS[c[1]], num(now + plan.lease_ms / 1000), plan.lease)
  redis.call('PEXPIRE', KEYS[c[1]], plan.lease_ms + 1000)
end
for i, l in ipairs(plan.loops) do
  redis.call('ZADD', KEYS[l[1]], num(now), plan.lease)
  redis.call('PEXPIRE', KEYS[l[1]], math.ceil(l[3] * 1000) + 1000)
end
local alerts = {}
for i, b in ipairs(plan.budgets) do
  local key = KEYS[b[1]]
  local used = tonumber(redis.call('HINCRBYFLOAT', key, 'used', num(cost)))
  redis.call('EXPIREAT', key, b[3])
  if used >= plan.alert * b[2] and redis.call('HSETNX', key, 'alerted', '1') == 1 then
    table.insert(alerts, {i - 1, used})
  end
end
return cjson.encode({'ok', alerts})
"""

# ARGV[1]: {"lease", "delta", "alert", "leases": [key#], "budgets": [[key#, units, expire_at]]}
# Returns JSON: [[budget index, used], ...] for budgets that crossed the alert line now.
_SETTLE: Final = """
local plan = cjson.decode(ARGV[1])
for i, k in ipairs(plan.leases) do
  redis.call('ZREM', KEYS[k], plan.lease)
end
local alerts = {}
if plan.delta ~= 0 then
  for i, b in ipairs(plan.budgets) do
    local key = KEYS[b[1]]
    local used = tonumber(redis.call('HINCRBYFLOAT', key, 'used', string.format('%.17g', plan.delta)))
    if used < 0 then
      redis.call('HSET', key, 'used', '0')
      used = 0
    end
    redis.call('EXPIREAT', key, b[3])
    if used >= plan.alert * b[2] and redis.call('HSETNX', key, 'alerted', '1') == 1 then
      table.insert(alerts, {i - 1, used})
    end
  end
end
return cjson.encode(alerts)
"""


class RedisCounters:
    """Counters in one Redis database, updated only by the two Lua scripts above."""

    name = "redis"

    def __init__(self, url: str, *, key_prefix: str = "mcpwarden:quota:", timeout: float = 2.0) -> None:
        self._prefix = key_prefix
        self._timeout = timeout
        # Scripts are not idempotent: never resend one after a timeout (it may have run). One retry
        # on a connection error covers a pooled connection the server had closed.
        retry = Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=MAX_CONNECTIONS,
            timeout=timeout,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=retry,
        )
        self._client: Redis = Redis.from_pool(pool)  # owns the pool: aclose() closes it
        self._admit = self._client.register_script(_ADMIT)
        self._settle = self._client.register_script(_SETTLE)

    async def admit(self, admission: Admission) -> Outcome:
        keys = _Keys(self._prefix)
        plan = {
            "cost": admission.cost,
            "lease": admission.lease_id,
            "lease_ms": math.ceil(admission.lease_seconds * 1000),
            "alert": ALERT_FRACTION,
            "budgets": [_budget_arg(keys, b) for b in admission.budgets],
            "loops": [[keys.index(loop.key), loop.repeats, loop.window] for loop in admission.loops],
            "conc": [[keys.index(slot.key), slot.limit] for slot in admission.concurrency],
            "rates": [[keys.index(r.key), r.capacity, r.refill_per_second] for r in admission.rates],
        }
        reply = json.loads(await self._call(self._admit, keys.names, plan))
        if reply[0] == "refused":
            kind: RefusalKind = reply[1]
            index = int(reply[2])
            retry_after = float(reply[3])  # -1: none (budgets: the guard knows when the period ends)
            return Outcome(Refusal(kind, index, None if retry_after < 0 else retry_after))
        return Outcome(alerts=_alerts(reply[1], admission.budgets))

    async def settle(self, settlement: Settlement) -> tuple[BudgetAlert, ...]:
        if settlement.empty:
            return ()
        keys = _Keys(self._prefix)
        plan = {
            "lease": settlement.lease_id,
            "delta": settlement.delta,
            "alert": ALERT_FRACTION,
            "leases": [keys.index(key) for key in settlement.leases],
            "budgets": [_budget_arg(keys, b) for b in settlement.budgets],
        }
        reply = json.loads(await self._call(self._settle, keys.names, plan))
        return _alerts(reply, settlement.budgets)

    async def budget_used(self, key: str) -> float:
        with anyio.fail_after(self._timeout):
            value = await self._client.hget(self._prefix + key, "used")
        return float(value) if value is not None else 0.0

    async def aclose(self) -> None:
        await self._client.aclose()

    async def _call(self, script: Any, keys: list[str], plan: dict[str, Any]) -> str:
        # socket_timeout bounds each read; fail_after bounds the whole exchange (reconnects too).
        with anyio.fail_after(self._timeout):
            reply = await script(keys=keys, args=[json.dumps(plan, separators=(",", ":"))])
        return reply.decode() if isinstance(reply, bytes) else str(reply)


class _Keys:
    """KEYS for one script call; plans refer to them by 1-based position (Lua arrays)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.names: list[str] = []

    def index(self, key: str) -> int:
        self.names.append(self._prefix + key)
        return len(self.names)


def _budget_arg(keys: _Keys, check: BudgetCheck) -> list[Any]:
    return [keys.index(check.key), check.units, math.ceil(check.period_end) + BUDGET_RETENTION_SECONDS]


def _alerts(reply: Any, budgets: tuple[BudgetCheck, ...]) -> tuple[BudgetAlert, ...]:
    # cjson encodes an empty Lua table as {}, not [].
    if not isinstance(reply, list):
        return ()
    return tuple(BudgetAlert(budgets[int(index)], float(used)) for index, used in reply)
