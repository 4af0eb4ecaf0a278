"""The Lua scripts the Redis backplane runs, each one atomic inside Redis.

``PUBLISH_SCRIPT`` is the whole publish path in one round trip: it reads or
creates the topic's epoch (from Redis' own clock, set once with SET NX),
INCRs the offset, builds the JSON envelope, appends it to the topic's stream
with the offset as entry id (trimmed by count and age), and PUBLISHes the same
envelope. Because one script runs at a time, pub/sub order equals offset order
for every subscriber in the cluster.

The envelope is built by concatenation from pieces the caller already encoded
(topic and ts as JSON, the payload as JSON), so Redis never parses JSON and
the bytes match :attr:`rtnb.core.message.Message.json` exactly.
"""

from __future__ import annotations

__all__ = ["PUBLISH_SCRIPT", "RESET_SCRIPT"]

# KEYS: epoch, offset, stream, topics
# ARGV: channel, topic, topic_json, ts_json, data_json, maxlen, ts_ms, max_age_ms ("0": no age limit)
PUBLISH_SCRIPT = """
local epoch = redis.call('GET', KEYS[1])
if not epoch then
  local now = redis.call('TIME')
  epoch = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
  redis.call('SET', KEYS[1], epoch, 'NX')
  redis.call('ZADD', KEYS[4], 0, ARGV[2])
end
local offset = string.format('%.0f', redis.call('INCR', KEYS[2]))
local envelope = '{"op":"message","topic":' .. ARGV[3] .. ',"offset":' .. offset ..
  ',"epoch":' .. epoch .. ',"ts":' .. ARGV[4] .. ',"data":' .. ARGV[5] .. '}'
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], offset .. '-0', 'm', envelope, 't', ARGV[7])
local max_age = tonumber(ARGV[8])
if max_age > 0 then
  -- Drop entries older than the age limit, a few per publish so it keeps up
  -- without one publish ever paying for a long backlog.
  local cutoff = tonumber(ARGV[7]) - max_age
  local oldest = redis.call('XRANGE', KEYS[3], '-', '+', 'COUNT', 16)
  local keep = nil
  for _, entry in ipairs(oldest) do
    local fields = entry[2]
    local stamp = 0
    for index = 1, #fields, 2 do
      if fields[index] == 't' then stamp = tonumber(fields[index + 1]) end
    end
    if stamp >= cutoff then keep = entry[1] break end
  end
  if keep == nil then keep = offset .. '-0' end
  redis.call('XTRIM', KEYS[3], 'MINID', keep)
  -- A topic nobody publishes to any more loses its whole history at the age limit.
  redis.call('PEXPIRE', KEYS[3], max_age)
end
redis.call('PUBLISH', ARGV[1], envelope)
return {offset, epoch}
"""

# KEYS: epoch, offset, stream, topics, lost; ARGV: topic
# Starts a new epoch strictly greater than the old one, offsets from 1 again. The topic is
# listed in the topics set too: a topic reset before its first publish must still be found
# by pattern lookups (the publish script only lists topics whose epoch it creates). The epoch
# it loses, if it had messages, is kept in the ``lost`` hash ("EPOCH:OFFSET"), so a subscriber
# that never knew the topic hears of it when it resumes.
RESET_SCRIPT = """
redis.call('ZADD', KEYS[4], 0, ARGV[1])
local lost_epoch = redis.call('GET', KEYS[1])
local lost_offset = redis.call('GET', KEYS[2])
if lost_epoch and lost_offset and tonumber(lost_offset) > 0 then
  redis.call('HSET', KEYS[5], ARGV[1], lost_epoch .. ':' .. lost_offset)
end
local now = redis.call('TIME')
local epoch = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local old = tonumber(redis.call('GET', KEYS[1]) or '0')
if epoch <= old then epoch = old + 1 end
redis.call('SET', KEYS[1], string.format('%.0f', epoch))
redis.call('DEL', KEYS[2], KEYS[3])
return string.format('%.0f', epoch)
"""
