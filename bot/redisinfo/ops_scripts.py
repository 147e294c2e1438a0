"""The Lua scripts of the Redis changes: one short call per batch, exact counts back.

Plain scripts (no shebang) so they run on Redis 5-7. Writes go through
``redis.pcall`` so a refused write (READONLY replica...) ends the script with the
counts so far instead of aborting it: Lua scripts do not roll back, and the caller
must know exactly which keys were changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from hashlib import sha1


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1 (for EVALSHA)."""

    text: str

    @cached_property  # a full scan sends it thousands of times a second
    def sha(self) -> str:
        """The SHA1 Redis knows the script by."""
        return sha1(self.text.encode()).hexdigest()


# ARGV: cursor, pattern, count, seconds, limit (keys to change at most), nx ('1'/'0').
# Reply: {cursor, looked, changed, keys in the SCAN batch[, error]}.
# nx='1' (Redis >= 7.0): EXPIRE NX. nx='0': TTL == -1 then EXPIRE, atomic because a
# script runs alone. Effects replication (Redis < 5 needs asking) lets a write follow
# the non-deterministic SCAN.
EXPIRE_SCRIPT = Script("""
if redis.replicate_commands then pcall(redis.replicate_commands) end
local scan = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = scan[2]
local limit = tonumber(ARGV[5])
local looked, changed = 0, 0
for _, key in ipairs(keys) do
  if changed >= limit then break end
  local done = 0
  if ARGV[6] == '1' then
    done = redis.pcall('EXPIRE', key, ARGV[4], 'NX')
  elseif redis.call('TTL', key) == -1 then
    done = redis.pcall('EXPIRE', key, ARGV[4])
  end
  if type(done) == 'table' then
    return {scan[1], looked, changed, #keys, done['err']}
  end
  looked = looked + 1
  changed = changed + done
end
return {scan[1], looked, changed, #keys}
""")

# KEYS: the batch. ARGV: min idle seconds, max LFU counter. Reply: {looked, changed[, error]}.
# OBJECT IDLETIME errors under an LFU policy: then the LFU counter decides. Neither
# OBJECT subcommand touches the key, so measuring does not make a key look used.
UNLINK_SCRIPT = Script("""
local min_idle = tonumber(ARGV[1])
local max_freq = tonumber(ARGV[2])
local changed = 0
for i, key in ipairs(KEYS) do
  local idle = false
  local age = redis.pcall('OBJECT', 'IDLETIME', key)
  if type(age) == 'number' then
    idle = age >= min_idle
  elseif type(age) == 'table' then
    local freq = redis.pcall('OBJECT', 'FREQ', key)
    idle = type(freq) == 'number' and freq <= max_freq
  end
  if idle then
    local gone = redis.pcall('UNLINK', key)
    if type(gone) == 'table' then return {i - 1, changed, gone['err']} end
    changed = changed + gone
  end
end
return {#KEYS, changed}
""")
