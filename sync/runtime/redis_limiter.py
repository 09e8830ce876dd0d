"""The per-system token bucket shared by every worker, kept in Redis (DESIGN §2.10).

Implements :class:`sync.connectors.ratelimit.RateLimiter` (``acquire`` / ``penalize``) with the
same reservation semantics as the in-process :class:`~sync.connectors.ratelimit.TokenBucket`:
a caller always takes a token (the bucket may go negative) and sleeps until that token would
have arrived, so callers across all processes are served at exactly the configured rate.

One Lua script does the read-modify-write atomically on Redis's own clock (``TIME``), so workers
with skewed clocks still share one bucket (https://redis.io/docs/latest/develop/interact/programmability/eval-intro/).

Adapting down on 429: ``penalize`` blocks the system for the vendor's wait *and* halves the
bucket's rate factor (never below 1/16th); each later token earns 2 % of it back. A vendor that
keeps refusing us is thus approached more slowly than config says, until it stops refusing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import redis

#: KEYS[1] bucket hash; ARGV: rate, burst, penalty seconds (0 = take a token), and whether a
#: penalty slows the rate (1: a 429; 0: a hold, the vendor saying its window is almost spent).
#: Returns the wait in seconds as a string (Lua numbers become integers in replies).
_SCRIPT = """
local key = KEYS[1]
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local penalty = tonumber(ARGV[3])
local slows = tonumber(ARGV[4]) or 1
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local h = redis.call('HMGET', key, 'tokens', 'stamp', 'blocked', 'factor')
local tokens = tonumber(h[1]) or burst
local stamp = tonumber(h[2]) or now
local blocked = tonumber(h[3]) or 0
local factor = tonumber(h[4]) or 1
local wait = 0
if penalty > 0 then
  local till = now + penalty
  if till > blocked then
    blocked = till
    if tokens > 0 then tokens = 0 end
    stamp = till
  end
  if slows == 1 then factor = math.max(factor / 2, 0.0625) end
else
  local start = math.max(now, blocked)
  local effective = rate * factor
  if start > stamp then
    tokens = math.min(burst, tokens + (start - stamp) * effective)
    stamp = start
  end
  tokens = tokens - 1
  wait = start - now
  if tokens < 0 then wait = wait - tokens / effective end
  factor = math.min(1, factor + 0.02)
end
redis.call('HSET', key, 'tokens', tokens, 'stamp', stamp, 'blocked', blocked, 'factor', factor)
redis.call('PEXPIRE', key, math.ceil((wait + burst / rate + penalty) * 1000) + 60000)
return tostring(wait)
"""


@dataclass(frozen=True, slots=True)
class Limit:
    rate: float  # tokens per second
    burst: float  # capacity


class RedisTokenBucket:
    """A token bucket per system in Redis, shared by every process that uses the same prefix.

    Systems without a configured limit are not limited (as in the in-process bucket).
    """

    def __init__(
        self,
        client: redis.Redis[Any],
        limits: Mapping[str, Limit] | None = None,
        *,
        prefix: str = "crmsync",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._limits: dict[str, Limit] = dict(limits or {})
        self._prefix = prefix
        self._sleep = sleep
        self._script: Any = client.register_script(_SCRIPT)

    def configure(self, system: str, rate: float, burst: float | None = None) -> None:
        """Limit ``system`` to ``rate`` requests/s with ``burst`` capacity (default: ``rate``)."""
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._limits[system] = Limit(rate, max(1.0, burst if burst is not None else rate))

    def key(self, system: str) -> str:
        return f"{self._prefix}:ratelimit:{system}"

    def reserve(self, system: str) -> float:
        """Take one token now; return how long the caller must wait before using it."""
        limit = self._limits.get(system)
        if limit is None:
            return 0.0
        return self._run(system, limit, 0.0)

    def acquire(self, system: str) -> None:
        wait = self.reserve(system)
        if wait > 0:
            self._sleep(wait)

    def penalize(self, system: str, seconds: float) -> None:
        limit = self._limits.get(system)
        if limit is None or seconds <= 0:
            return
        self._run(system, limit, seconds)

    def resize(self, system: str, rate: float, burst: float) -> None:
        """The bucket's state is in Redis: a new size applies from the next token on (the
        tokens are capped at ``burst`` there); every worker resizes from its own answers."""
        self.configure(system, rate, burst)

    def hold(self, system: str, seconds: float) -> None:
        limit = self._limits.get(system)
        if limit is None or seconds <= 0:
            return
        self._run(system, limit, seconds, slows=False)

    def factor(self, system: str) -> float:
        """The current adaptive rate factor of ``system`` (1.0 = the configured rate)."""
        raw = self._client.hget(self.key(system), "factor")
        return float(raw) if raw is not None else 1.0

    def _run(self, system: str, limit: Limit, penalty: float, *, slows: bool = True) -> float:
        args = [limit.rate, limit.burst, penalty, 1 if slows else 0]
        answer = self._script(keys=[self.key(system)], args=args)
        return max(0.0, float(answer.decode() if isinstance(answer, bytes) else answer))


def from_config(
    client: redis.Redis[Any], systems: Mapping[str, Any], *, prefix: str = "crmsync"
) -> RedisTokenBucket:
    """A shared bucket sized from each system's ``rate_limit`` in config."""
    bucket = RedisTokenBucket(client, prefix=prefix)
    for name, cfg in systems.items():
        if cfg.rate_limit is not None:
            bucket.configure(name, cfg.rate_limit.rate, cfg.rate_limit.burst)
    return bucket
