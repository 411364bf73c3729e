"""The scaled-out presence store: every process's connections in Redis, renewed by heartbeat,
and how others see each connected user (see ``realtime.presence_store`` for the status epoch)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

import redis

from core.errors import ServiceUnavailable
from realtime.presence_types import Opened, online_order

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 45.0

# Shared by the scripts below: Redis's own clock (every process agrees on it)
# and dropping a user's expired connections from both sorted sets.
_LUA_COMMON = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(x)
  return string.format('%.0f', x)
end
local function prune(ukey, conns, uid, now)
  local old = redis.call('ZRANGEBYSCORE', ukey, '-inf', int(now))
  for _, conn in ipairs(old) do
    redis.call('ZREM', conns, uid .. ':' .. conn)
  end
  if #old > 0 then
    redis.call('ZREMRANGEBYSCORE', ukey, '-inf', int(now))
  end
end
-- Register (or renew) one connection of a user, after dropping the expired ones.
-- Returns the user's count including it, or -1 past the limit; and whether the
-- user had no live connection before it.
local function open_connection(ukey, conns, uid, conn, limit, ttl)
  local now = now_ms()
  prune(ukey, conns, uid, now)
  local count = redis.call('ZCARD', ukey)
  local first = false
  if not redis.call('ZSCORE', ukey, conn) then
    if count >= tonumber(limit) then
      return -1, false
    end
    first = count == 0
    count = count + 1
  end
  redis.call('ZADD', ukey, int(now + ttl), conn)
  redis.call('ZADD', conns, int(now + ttl), uid .. ':' .. conn)
  redis.call('PEXPIRE', ukey, int(2 * ttl))
  return count, first
end
"""

# KEYS: user key, conns. ARGV: user hex, connection id, limit, ttl ms.
# Returns the user's count including this connection, or -1 past the limit.
_LUA_OPEN = (
    _LUA_COMMON
    + """
local count = open_connection(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
return count
"""
)

# Shared by the visibility scripts: the status epoch is unchanged, and record how
# others see a user (ARGV-style visible flag '1' with a name, or hidden; a user
# with no live connection is always hidden).
_LUA_SHOWN = """
local function epoch_is(key, epoch)
  return tonumber(redis.call('GET', key) or '0') == tonumber(epoch)
end
local function set_shown(shown, uid, visible, name)
  if visible == '1' then
    redis.call('HSET', shown, uid, name)
  else
    redis.call('HDEL', shown, uid)
  end
end
local function set_shown_if_connected(user_key, shown, uid, visible, name)
  if redis.call('ZCARD', user_key) > 0 then
    set_shown(shown, uid, visible, name)
  else
    redis.call('HDEL', shown, uid)
  end
end
"""

# KEYS: user key, conns, shown, epoch. ARGV: user hex, connection id, limit,
# ttl ms, epoch, visible ('1' or '0'), name. Opens as _LUA_OPEN does, and
# records the visibility if the epoch is still the given one. A user with no
# live connection before this one starts hidden (an entry a dead process left
# may be stale). Returns {count or -1 past the limit, 1 if recorded else 0}.
_LUA_OPEN_AS = (
    _LUA_COMMON
    + _LUA_SHOWN
    + """
local count, first = open_connection(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]))
if count < 0 then
  return {-1, 0}
end
if first then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
if epoch_is(KEYS[4], ARGV[5]) then
  set_shown(KEYS[3], ARGV[1], ARGV[6], ARGV[7])
  return {count, 1}
end
return {count, 0}
"""
)

# KEYS: user key, shown, epoch. ARGV: user hex, epoch, visible, name. Records the
# visibility of a connected user (a user with no connection is hidden) if the
# epoch is still the given one; returns 1 if it was, else 0.
_LUA_SHOW = (
    _LUA_SHOWN
    + """
if not epoch_is(KEYS[3], ARGV[2]) then
  return 0
end
set_shown_if_connected(KEYS[1], KEYS[2], ARGV[1], ARGV[3], ARGV[4])
return 1
"""
)

# KEYS: user key, shown, epoch. ARGV: user hex, visible, name. A status changed:
# bump the epoch, record the visibility if the user is connected.
_LUA_CHANGED = (
    _LUA_SHOWN
    + """
redis.call('INCR', KEYS[3])
set_shown_if_connected(KEYS[1], KEYS[2], ARGV[1], ARGV[2], ARGV[3])
return 1
"""
)

# KEYS: shown. ARGV: user key prefix. The names of shown users with a live connection.
_LUA_ONLINE = (
    _LUA_COMMON
    + """
local live = '(' .. int(now_ms())
local shown = redis.call('HGETALL', KEYS[1])
local names = {}
for i = 1, #shown, 2 do
  if redis.call('ZCOUNT', ARGV[1] .. shown[i], live, '+inf') > 0 then
    names[#names + 1] = shown[i + 1]
  end
end
return names
"""
)

# KEYS: user key, conns, shown. ARGV: user hex, connection id. Returns {the live
# count left, 1 if the user was shown (others saw them) before this close else 0}.
_LUA_CLOSE = (
    _LUA_COMMON
    + """
redis.call('ZREM', KEYS[1], ARGV[2])
redis.call('ZREM', KEYS[2], ARGV[1] .. ':' .. ARGV[2])
prune(KEYS[1], KEYS[2], ARGV[1], now_ms())
local count = redis.call('ZCARD', KEYS[1])
local shown = redis.call('HEXISTS', KEYS[3], ARGV[1])
if count == 0 then
  redis.call('HDEL', KEYS[3], ARGV[1])
end
return {count, shown}
"""
)

# KEYS: user keys. Returns each one's count of unexpired connections.
_LUA_CONNECTED = (
    _LUA_COMMON
    + """
local live = '(' .. int(now_ms())
local counts = {}
for i, key in ipairs(KEYS) do
  counts[i] = redis.call('ZCOUNT', key, live, '+inf')
end
return counts
"""
)

# KEYS: conns. Returns every unexpired ``<user hex>:<connection id>``.
_LUA_ALL = (
    _LUA_COMMON
    + """
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. int(now_ms()), '+inf')
"""
)

# KEYS: conns, then one user key per connection. ARGV: ttl ms, then user hex
# and connection id per connection. Renews only connections the store still
# has (a closed or swept one is never brought back); returns the indexes
# (1-based) of the missing ones.
_LUA_HEARTBEAT = (
    _LUA_COMMON
    + """
local ttl = tonumber(ARGV[1])
local expires = int(now_ms() + ttl)
local missing = {}
for i = 2, #KEYS do
  local uid = ARGV[2 * i - 2]
  local conn = ARGV[2 * i - 1]
  if redis.call('ZSCORE', KEYS[i], conn) then
    redis.call('ZADD', KEYS[i], 'XX', expires, conn)
    redis.call('ZADD', KEYS[1], expires, uid .. ':' .. conn)
    redis.call('PEXPIRE', KEYS[i], int(2 * ttl))
  else
    missing[#missing + 1] = i - 1
  end
end
return missing
"""
)

# KEYS: conns, shown. ARGV: user key prefix, batch size. Removes up to a batch of
# expired connections; returns how many it looked at, then the users whose
# last connection it removed (no longer shown). Each removal happens once, in
# one script, so exactly one caller reports each user.
_LUA_SWEEP = (
    _LUA_COMMON
    + """
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', int(now), 'LIMIT', 0, tonumber(ARGV[2]))
local result = {#expired}
for _, member in ipairs(expired) do
  if redis.call('ZREM', KEYS[1], member) == 1 then
    local uid = string.sub(member, 1, 32)
    local ukey = ARGV[1] .. uid
    redis.call('ZREM', ukey, string.sub(member, 34))
    prune(ukey, KEYS[1], uid, now)
    if redis.call('ZCARD', ukey) == 0 then
      redis.call('HDEL', KEYS[2], uid)
      result[#result + 1] = uid
    end
  end
end
return result
"""
)

_HEARTBEAT_CHUNK = 500


def _redis_unavailable(method: Callable) -> Callable:
    """Turn Redis being away into ``ServiceUnavailable``: a 503 or an ``unavailable`` error frame."""

    @functools.wraps(method)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except redis.RedisError as exc:
            logger.warning("presence: Redis unavailable (%s)", exc)
            raise ServiceUnavailable("Presence is unavailable (Redis); try again shortly.") from exc

    return wrapper


class RedisPresenceStore:
    """Every process's connections in Redis, each with an expiry its process renews.

    Keys under ``prefix``: ``u:<user hex>``, a sorted set of the user's
    connection ids scored by expiry (milliseconds on Redis's clock),
    ``conns``, every connection as ``<user hex>:<connection id>`` with the
    same score, which ``sweep`` walks, ``shown``, a hash of the connected
    users others see (user hex -> name), and ``epoch``, the status epoch.
    Each call is one Lua script, so it is atomic and one round trip.
    ``sweep`` and ``online_names`` build user keys inside their scripts, so
    this store needs a single Redis server, not Redis Cluster. Calls raise
    ``ServiceUnavailable`` (503, error code ``unavailable``) while Redis is
    unreachable. A Redis restart empties the store: each process's next
    heartbeat reports its connections missing and the process re-opens them.
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "chat:presence:",
        ttl: float = DEFAULT_TTL_SECONDS,
        sweep_batch: int = 500,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.ttl_ms = max(1, round(ttl * 1000))
        self.sweep_batch = sweep_batch
        self._conns = f"{prefix}conns"
        self._shown = f"{prefix}shown"
        self.in_process = False  # every call is a round trip to Redis: call it off the event loop
        self._epoch = f"{prefix}epoch"
        self._open = client.register_script(_LUA_OPEN)
        self._open_as = client.register_script(_LUA_OPEN_AS)
        self._show = client.register_script(_LUA_SHOW)
        self._changed = client.register_script(_LUA_CHANGED)
        self._online = client.register_script(_LUA_ONLINE)
        self._close = client.register_script(_LUA_CLOSE)
        self._connected = client.register_script(_LUA_CONNECTED)
        self._all = client.register_script(_LUA_ALL)
        self._heartbeat = client.register_script(_LUA_HEARTBEAT)
        self._sweep = client.register_script(_LUA_SWEEP)

    def _user_key(self, user_id: UUID) -> str:
        return f"{self.prefix}u:{user_id.hex}"

    @_redis_unavailable
    def open(self, user_id: UUID, connection_id: str, *, limit: int) -> int | None:
        count = int(
            self._open(
                keys=[self._user_key(user_id), self._conns],
                args=[user_id.hex, connection_id, limit, self.ttl_ms],
            )
        )
        return None if count < 0 else count

    @_redis_unavailable
    def open_as(
        self, user_id: UUID, connection_id: str, *, limit: int, name: str | None, epoch: int
    ) -> Opened | None:
        count, shown = self._open_as(
            keys=[self._user_key(user_id), self._conns, self._shown, self._epoch],
            args=[user_id.hex, connection_id, limit, self.ttl_ms, epoch, *_visibility(name)],
        )
        return None if int(count) < 0 else Opened(count=int(count), shown=bool(int(shown)))

    @_redis_unavailable
    def show(self, user_id: UUID, name: str | None, *, epoch: int) -> bool:
        keys = [self._user_key(user_id), self._shown, self._epoch]
        return bool(int(self._show(keys=keys, args=[user_id.hex, epoch, *_visibility(name)])))

    @_redis_unavailable
    def status_epoch(self) -> int:
        return int(self.client.get(self._epoch) or 0)

    @_redis_unavailable
    def status_changing(self) -> None:
        self.client.incr(self._epoch)

    @_redis_unavailable
    def status_changed(self, user_id: UUID, name: str | None) -> None:
        keys = [self._user_key(user_id), self._shown, self._epoch]
        self._changed(keys=keys, args=[user_id.hex, *_visibility(name)])

    @_redis_unavailable
    def online_names(self) -> list[str]:
        names = [name.decode() for name in self._online(keys=[self._shown], args=[f"{self.prefix}u:"])]
        return online_order(names)

    @_redis_unavailable
    def close(self, user_id: UUID, connection_id: str) -> int:
        return self.close_shown(user_id, connection_id)[0]

    @_redis_unavailable
    def close_shown(self, user_id: UUID, connection_id: str) -> tuple[int, bool]:
        count, shown = self._close(
            keys=[self._user_key(user_id), self._conns, self._shown], args=[user_id.hex, connection_id]
        )
        return int(count), bool(int(shown))

    @_redis_unavailable
    def connected(self, user_ids: Iterable[UUID]) -> set[UUID]:
        ids = list(dict.fromkeys(user_ids))
        if not ids:
            return set()
        counts = self._connected(keys=[self._user_key(user_id) for user_id in ids])
        return {user_id for user_id, count in zip(ids, counts, strict=True) if int(count) > 0}

    @_redis_unavailable
    def all_connected(self) -> set[UUID]:
        return {UUID(member[:32].decode()) for member in self._all(keys=[self._conns])}

    @_redis_unavailable
    def heartbeat(self, connections: Iterable[tuple[UUID, str]]) -> list[tuple[UUID, str]]:
        """Renew this process's connections in one round trip.

        Returns the connections the store no longer had, which are not
        renewed: closed meanwhile, or swept because this process stalled past
        the TTL (their users were announced offline; re-``open`` them to count
        them again).
        """
        pairs = list(connections)
        if not pairs:
            return []
        chunks = [pairs[i : i + _HEARTBEAT_CHUNK] for i in range(0, len(pairs), _HEARTBEAT_CHUNK)]
        pipe = self.client.pipeline(transaction=False)
        for chunk in chunks:
            args: list[Any] = [self.ttl_ms]
            for user_id, connection_id in chunk:
                args += [user_id.hex, connection_id]
            keys = [self._conns, *(self._user_key(user_id) for user_id, _ in chunk)]
            self._heartbeat(keys=keys, args=args, client=pipe)
        missing: list[tuple[UUID, str]] = []
        for chunk, indexes in zip(chunks, pipe.execute(), strict=True):
            missing += [chunk[int(index) - 1] for index in indexes]
        if missing:
            logger.info("presence: %d connections were gone before their heartbeat", len(missing))
        return missing

    @_redis_unavailable
    def sweep(self) -> list[UUID]:
        offline: list[UUID] = []
        while True:
            looked_at, *users = self._sweep(
                keys=[self._conns, self._shown], args=[f"{self.prefix}u:", self.sweep_batch]
            )
            offline += [UUID(user.decode()) for user in users]
            if int(looked_at) < self.sweep_batch:
                return offline


def _visibility(name: str | None) -> list[str]:
    """The scripts' ARGV for a visibility: '1' and the name, or '0' (hidden)."""
    return ["0", ""] if name is None else ["1", name]
