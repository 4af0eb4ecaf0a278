"""The Lua scripts the Redis backplane runs, each one atomic inside Redis.

``PUBLISH_SCRIPT`` publishes a whole batch of messages of one bucket in one
call (see :mod:`rtnb.backplane._redis_keys`): for each topic it reads or
creates the epoch (from Redis' own clock), assigns the next offsets in the
order the messages were given, builds each JSON envelope, appends it to the
topic's stream with the offset as entry id (trimmed by count and age), and
finally publishes every envelope of the batch as one pub/sub payload on the
bucket's channel. Because one script runs at a time, pub/sub order equals
offset order for every subscriber, on every hub.

The envelope is built by concatenation from pieces the caller already encoded
(topic and ts as JSON, the payload as JSON), so Redis never parses JSON and
the bytes match :attr:`rtnb.core.message.Message.json` exactly.

Each bucket also has a *clock*, moved forward by every batch and remembered by
the hubs. A clock lower than one a hub has seen means Redis went back in time
(restored from an older RDB or AOF file): offsets that clients already hold
would be handed out again. The script then starts a new epoch for every topic
of the bucket before assigning anything, so subscribers get an
``epoch_changed`` gap instead of silently deduplicated messages.
``CHECK_CLOCK_SCRIPT`` does the same check for a hub that reconnects without
publishing.
"""

from __future__ import annotations

__all__ = ["CHECK_CLOCK_SCRIPT", "PUBLISH_SCRIPT", "RESET_SCRIPT"]

# Shared by the scripts: the bucket's keys are named from its topic index key
# (KEYS[2], "...topics"), all in the same hash slot.
_RENEW_BUCKET_IF_RESTORED = """
local function new_epoch(old)
  local now = redis.call('TIME')
  local epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  if epoch <= old then epoch = old + 1 end
  return epoch
end

local function check_clock(clock_key, index_key, seen)
  local clock = tonumber(redis.call('GET', clock_key) or '0')
  if clock < seen then
    local base = string.sub(index_key, 1, -7)
    for _, name in ipairs(redis.call('ZRANGE', index_key, 0, -1)) do
      local old = tonumber(redis.call('GET', base .. 'e:' .. name) or '0')
      redis.call('SET', base .. 'e:' .. name, string.format('%.0f', new_epoch(old)))
      redis.call('DEL', base .. 'o:' .. name, base .. 's:' .. name)
    end
    clock = seen
  end
  return clock
end
"""

# KEYS: clock, topic index, then per topic: epoch, offset, stream
# ARGV: channel, maxlen, max_age_ms ("0": none), seen clock, publish command, topic count,
#       then per topic: topic, topic_json; then per message: topic number, ts_json, data_json, ts_ms
# Returns: {clock, {epoch per topic}, {offset per message}}
PUBLISH_SCRIPT = (
    _RENEW_BUCKET_IF_RESTORED
    + """
local clock = check_clock(KEYS[1], KEYS[2], tonumber(ARGV[4])) + 1
redis.call('SET', KEYS[1], string.format('%.0f', clock))
local maxlen, max_age, topic_count = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[6])
local epochs, offsets, epoch_text, last_ts = {}, {}, {}, {}
for i = 1, topic_count do
  local epoch = redis.call('GET', KEYS[3 * i])
  if not epoch then
    epoch = string.format('%.0f', new_epoch(0))
    redis.call('SET', KEYS[3 * i], epoch, 'NX')
    redis.call('ZADD', KEYS[2], 0, ARGV[5 + 2 * i])
  end
  epoch_text[i] = epoch
  epochs[i] = tonumber(epoch)
  offsets[i] = tonumber(redis.call('GET', KEYS[3 * i + 1]) or '0')
end
local first = 7 + 2 * topic_count
local envelopes, assigned = {tostring(clock)}, {}
for m = first, #ARGV, 4 do
  local i = tonumber(ARGV[m])
  offsets[i] = offsets[i] + 1
  local offset = string.format('%.0f', offsets[i])
  local envelope = '{"op":"message","topic":' .. ARGV[6 + 2 * i] .. ',"offset":' .. offset ..
    ',"epoch":' .. epoch_text[i] .. ',"ts":' .. ARGV[m + 1] .. ',"data":' .. ARGV[m + 2] .. '}'
  redis.call('XADD', KEYS[3 * i + 2], 'MAXLEN', '~', maxlen, offset .. '-0', 'm', envelope, 't', ARGV[m + 3])
  envelopes[#envelopes + 1] = envelope
  assigned[#assigned + 1] = offsets[i]
  last_ts[i] = tonumber(ARGV[m + 3])
end
for i = 1, topic_count do
  redis.call('SET', KEYS[3 * i + 1], string.format('%.0f', offsets[i]))
  if max_age > 0 and last_ts[i] then
    -- Drop entries older than the age limit, a few per batch so it keeps up
    -- without one batch ever paying for a long backlog.
    local stream, cutoff = KEYS[3 * i + 2], last_ts[i] - max_age
    local keep = nil
    for _, entry in ipairs(redis.call('XRANGE', stream, '-', '+', 'COUNT', 16)) do
      local fields, stamp = entry[2], 0
      for f = 1, #fields, 2 do
        if fields[f] == 't' then stamp = tonumber(fields[f + 1]) end
      end
      if stamp >= cutoff then keep = entry[1] break end
    end
    if keep == nil then keep = string.format('%.0f', offsets[i]) .. '-0' end
    redis.call('XTRIM', stream, 'MINID', keep)
    -- A topic nobody publishes to any more loses its whole history at the age limit.
    redis.call('PEXPIRE', stream, max_age)
  end
end
redis.call(ARGV[5], ARGV[1], table.concat(envelopes, '\\n'))
return {clock, epochs, assigned}
"""
)

# KEYS: clock, topic index.  ARGV: seen clock.  Returns the bucket's clock.
CHECK_CLOCK_SCRIPT = (
    _RENEW_BUCKET_IF_RESTORED
    + """
local clock = check_clock(KEYS[1], KEYS[2], tonumber(ARGV[1]))
redis.call('SET', KEYS[1], string.format('%.0f', clock))
return clock
"""
)

# KEYS: epoch, offset, stream, the bucket's topic index, the bucket's lost hash, the bucket's
# lost-at sorted set (one hash slot); ARGV: topic, retention ms ("0": none), most entries ("0": no cap)
# Starts a new epoch strictly greater than the old one, offsets from 1 again. The topic is
# listed in the topics set too: a topic reset before its first publish must still be found
# by pattern lookups (the publish script only lists topics whose epoch it creates). The epoch
# it loses, if it had messages, is kept in the ``lost`` hash ("EPOCH:OFFSET"), so a subscriber
# that never knew the topic hears of it when it resumes; when, in the lost-at set. Entries
# older than the retention, and the oldest past the cap, are dropped here: the hash stays bounded.
RESET_SCRIPT = """
redis.call('ZADD', KEYS[4], 0, ARGV[1])
local now = redis.call('TIME')
local epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local lost_epoch = redis.call('GET', KEYS[1])
local lost_offset = redis.call('GET', KEYS[2])
if lost_epoch and lost_offset and tonumber(lost_offset) > 0 then
  redis.call('HSET', KEYS[5], ARGV[1], lost_epoch .. ':' .. lost_offset)
  redis.call('ZADD', KEYS[6], epoch, ARGV[1])
end
local function drop(topics)
  for _, topic in ipairs(topics) do
    redis.call('HDEL', KEYS[5], topic)
    redis.call('ZREM', KEYS[6], topic)
  end
end
local retention, cap = tonumber(ARGV[2]), tonumber(ARGV[3])
if retention > 0 then
  drop(redis.call('ZRANGEBYSCORE', KEYS[6], '-inf', '(' .. string.format('%.0f', epoch - retention)))
end
if cap > 0 then
  local over = redis.call('ZCARD', KEYS[6]) - cap
  if over > 0 then drop(redis.call('ZRANGE', KEYS[6], 0, over - 1)) end
end
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch <= old then epoch = old + 1 end
redis.call('SET', KEYS[1], string.format('%.0f', epoch))
redis.call('DEL', KEYS[2], KEYS[3])
return string.format('%.0f', epoch)
"""
