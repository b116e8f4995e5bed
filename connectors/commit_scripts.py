"""The commit sink's two Lua scripts (`connectors.redis_sink`): one call writes a batch's
outputs, one writes a checkpoint chunk. Each call is atomic for other clients, but Redis does not
undo a script that fails half-way: the order of the writes inside each is what keeps a failure
safe, and the comments say why.
"""

from typing import Final

# KEYS: the decision stream, then per command its marker and its channel's stream.
# ARGV: the marker TTL, the number of commands, the commands, then the decisions.
# The marker is set after its XADD: Redis does not undo a script that fails half-way, and a
# marker left by a failed XADD would drop the command for good when its input comes back.
WRITE_OUTPUTS: Final = """
local ttl, n = ARGV[1], tonumber(ARGV[2])
for i = 1, n do
  if redis.call('EXISTS', KEYS[2 * i]) == 0 then
    redis.call('XADD', KEYS[2 * i + 1], '*', 'command', ARGV[2 + i])
    redis.call('SET', KEYS[2 * i], '1', 'EX', ttl)
  end
end
for i = 3 + n, #ARGV do
  redis.call('XADD', KEYS[1], '*', 'decision', ARGV[i])
end
return n
"""
# KEYS: the state keys, then the scorecard hash, the chunk's counted marker and the previous
# chunk's (acknowledged by then: deleted) (with the scorecard on).
# ARGV: the states' TTL, the number of states n, the states (each with its facts, with the
# scorecard on: `connectors.state_value`); then the number of count fields (-1: no scorecard),
# the chunk's stream time and the fields and increments;
# then commands to run after, each as its argument count and its arguments (ZREM/ZADD of
# timers, then XACK). The counts go first: Redis does not undo a script that fails half-way,
# and a hash that refuses them (a wrong type) must stop the call before any state is written,
# or those states would be written without their counts, which their redelivered inputs,
# known to the states by then, would never add again. Adding is not idempotent as the rest is:
# a call re-sent after a lost reply (redis-py's retry, `retrying`) carries the same chunk id, and
# the counts are added only if that chunk's marker was not set yet. `as_of` only moves forward:
# workers checkpoint at their own pace.
CHECKPOINT: Final = """
local ttl, n = ARGV[1], tonumber(ARGV[2])
local i = n + 3
local fields = tonumber(ARGV[i])
if fields >= 0 then
  local hash = KEYS[n + 1]
  local kind = redis.call('TYPE', hash)['ok']
  if kind ~= 'hash' and kind ~= 'none' then
    return redis.error_reply('WRONGTYPE ' .. hash .. ' is not a hash')
  end
  if redis.call('SET', KEYS[n + 2], '1', 'NX', 'EX', 86400) then
    local at = tonumber(redis.call('HGET', hash, 'as_of') or '0')
    if tonumber(ARGV[i + 1]) > at then
      redis.call('HSET', hash, 'as_of', ARGV[i + 1])
    end
    for j = 1, fields do
      redis.call('HINCRBY', hash, ARGV[i + 2 * j], ARGV[i + 2 * j + 1])
    end
  end
  redis.call('DEL', KEYS[n + 3])
  i = i + 2 + 2 * fields
else
  i = i + 1
end
for k = 1, n do
  redis.call('SET', KEYS[k], ARGV[k + 2], 'EX', ttl)
end
while i <= #ARGV do
  local count = tonumber(ARGV[i])
  redis.call(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return n
"""
