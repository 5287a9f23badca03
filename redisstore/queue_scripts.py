"""The Lua scripts of :class:`redisstore.queue.RedisQueue`: every move of a message is one.

Redis runs a script atomically, so a claim, an acknowledgement, a lease
expiry or a dead-lettering is never half done and never races another
client's: no read-then-write from Python.
"""

from __future__ import annotations

# The keys every script receives, in this order.
KEY_NAMES = ("ready", "leased", "dead", "body", "deliveries", "key", "bykey", "owner")

PRELUDE = """
local READY, LEASED, DEAD, BODY, DELIVERIES, KEY, BYKEY, OWNER =
    KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6], KEYS[7], KEYS[8]

local function forget(id)
    local key = redis.call('HGET', KEY, id)
    if key then
        redis.call('ZREM', BYKEY, key .. '/' .. id)
    end
    redis.call('ZREM', READY, id)
    redis.call('ZREM', LEASED, id)
    redis.call('ZREM', DEAD, id)
    redis.call('HDEL', BODY, id)
    redis.call('HDEL', DELIVERIES, id)
    redis.call('HDEL', KEY, id)
    redis.call('HDEL', OWNER, id)
end

-- A lease ran out or its owner died: back to ready (due now), or to dead
-- after max_deliveries. Returns 'dead' or 'ready'.
local function end_lease(id, now, max_deliveries)
    redis.call('ZREM', LEASED, id)
    redis.call('HDEL', OWNER, id)
    local deliveries = tonumber(redis.call('HGET', DELIVERIES, id) or '0')
    if deliveries >= max_deliveries then
        redis.call('ZADD', DEAD, now, id)
        return 'dead'
    end
    redis.call('ZADD', READY, now, id)
    return 'ready'
end

-- Whether id is leased under the ack id's delivery count.
local function holds_lease(id, deliveries)
    return redis.call('ZSCORE', LEASED, id)
        and redis.call('HGET', DELIVERIES, id) == deliveries
end
"""

# ARGV: for each message, its id, due ms, payload and key ('' for none).
_ENQUEUE = """
for i = 1, #ARGV, 4 do
    local id, due, payload, key = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
    redis.call('HSET', BODY, id, payload)
    redis.call('HSET', DELIVERIES, id, 0)
    if key ~= '' then
        redis.call('HSET', KEY, id, key)
        redis.call('ZADD', BYKEY, 0, key .. '/' .. id)
    end
    redis.call('ZADD', READY, due, id)
end
return #ARGV / 4
"""

# ARGV: now ms, limit, lease ms, max deliveries, expire batch, owner ('' for none)
# Returns {claimed {id, deliveries, payload}..., buried {id, deliveries, key,
# payload}..., requeued {id, deliveries, key}..., next due ms or ''}.
_DEQUEUE = """
local now = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local lease_ms = tonumber(ARGV[3])
local max_deliveries = tonumber(ARGV[4])

local buried, requeued = {}, {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', LEASED, '-inf', now, 'LIMIT', 0, ARGV[5])) do
    local key = redis.call('HGET', KEY, id) or ''
    local deliveries = tonumber(redis.call('HGET', DELIVERIES, id) or '0')
    if end_lease(id, now, max_deliveries) == 'dead' then
        buried[#buried + 1] = {id, deliveries, key, redis.call('HGET', BODY, id) or ''}
    else
        requeued[#requeued + 1] = {id, deliveries, key}
    end
end

local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', READY, '-inf', now, 'LIMIT', 0, limit)) do
    redis.call('ZREM', READY, id)
    local deliveries = redis.call('HINCRBY', DELIVERIES, id, 1)
    redis.call('ZADD', LEASED, now + lease_ms, id)
    if ARGV[6] ~= '' then
        redis.call('HSET', OWNER, id, ARGV[6])
    end
    claimed[#claimed + 1] = {id, deliveries, redis.call('HGET', BODY, id) or ''}
end

local next_due = ''
if #claimed < limit then
    local first = redis.call('ZRANGE', READY, 0, 0, 'WITHSCORES')
    if first[2] then
        next_due = first[2]
    end
end
return {claimed, buried, requeued, next_due}
"""

# ARGV: message id, deliveries
_ACKNOWLEDGE = """
if holds_lease(ARGV[1], ARGV[2]) then
    forget(ARGV[1])
    return 1
end
return 0
"""

# ARGV: message id, deliveries, now ms. Returns {key, payload} or nil.
_FAIL = """
if not holds_lease(ARGV[1], ARGV[2]) then
    return nil
end
redis.call('ZREM', LEASED, ARGV[1])
redis.call('HDEL', OWNER, ARGV[1])
redis.call('ZADD', DEAD, ARGV[3], ARGV[1])
return {redis.call('HGET', KEY, ARGV[1]) or '', redis.call('HGET', BODY, ARGV[1]) or ''}
"""

# ARGV: key. Returns {id, state, score, deliveries, owner or ''}... for the key's messages.
_FIND = """
local found = {}
local prefix = ARGV[1] .. '/'
for _, member in ipairs(redis.call('ZRANGEBYLEX', BYKEY, '[' .. prefix, '(' .. ARGV[1] .. '0')) do
    local id = string.sub(member, #prefix + 1)
    local deliveries = redis.call('HGET', DELIVERIES, id) or '0'
    local owner = redis.call('HGET', OWNER, id) or ''
    for _, state in ipairs({{'ready', READY}, {'leased', LEASED}, {'dead', DEAD}}) do
        local score = redis.call('ZSCORE', state[2], id)
        if score then
            found[#found + 1] = {id, state[1], score, deliveries, owner}
        end
    end
end
return found
"""

# ARGV: key. Returns how many messages were removed.
_DELETE_KEY = """
local removed = 0
local prefix = ARGV[1] .. '/'
for _, member in ipairs(redis.call('ZRANGEBYLEX', BYKEY, '[' .. prefix, '(' .. ARGV[1] .. '0')) do
    forget(string.sub(member, #prefix + 1))
    removed = removed + 1
end
return removed
"""

# ARGV: message id
_DELETE = """
if redis.call('HEXISTS', DELIVERIES, ARGV[1]) == 0 then
    return 0
end
forget(ARGV[1])
return 1
"""

# ARGV: batch size. Returns how many ready and leased messages were removed.
_PURGE = """
local removed = 0
for _, set in ipairs({READY, LEASED}) do
    for _, id in ipairs(redis.call('ZRANGE', set, 0, tonumber(ARGV[1]) - 1)) do
        forget(id)
        removed = removed + 1
    end
end
return removed
"""

# ARGV: now ms, max deliveries, owner... Leases of those owners end now
# (see end_lease). Returns {released, buried {id, deliveries, key, payload}...}.
_RELEASE_LEASES_OF = """
local now = tonumber(ARGV[1])
local max_deliveries = tonumber(ARGV[2])
local dead_owners = {}
for i = 3, #ARGV do
    dead_owners[ARGV[i]] = true
end
local released, buried = 0, {}
for _, id in ipairs(redis.call('ZRANGE', LEASED, 0, -1)) do
    local owner = redis.call('HGET', OWNER, id)
    if owner and dead_owners[owner] then
        local key = redis.call('HGET', KEY, id) or ''
        local deliveries = tonumber(redis.call('HGET', DELIVERIES, id) or '0')
        if end_lease(id, now, max_deliveries) == 'dead' then
            buried[#buried + 1] = {id, deliveries, key, redis.call('HGET', BODY, id) or ''}
        end
        released = released + 1
    end
end
return {released, buried}
"""

# Returns the keys of dead messages (with repeats, without unkeyed ones).
_DEAD_KEYS = """
local keys = {}
for _, id in ipairs(redis.call('ZRANGE', DEAD, 0, -1)) do
    local key = redis.call('HGET', KEY, id)
    if key then
        keys[#keys + 1] = key
    end
end
return keys
"""

# Returns the keys of ready and leased messages (with repeats).
_LIVE_KEYS = """
local keys = {}
for _, member in ipairs(redis.call('ZRANGE', BYKEY, 0, -1)) do
    local slash = string.find(member, '/', 1, true)
    if not redis.call('ZSCORE', DEAD, string.sub(member, slash + 1)) then
        keys[#keys + 1] = string.sub(member, 1, slash - 1)
    end
end
return keys
"""


SCRIPTS = {
    "enqueue": _ENQUEUE,
    "dequeue": _DEQUEUE,
    "acknowledge": _ACKNOWLEDGE,
    "fail": _FAIL,
    "find": _FIND,
    "delete_key": _DELETE_KEY,
    "delete": _DELETE,
    "purge": _PURGE,
    "dead_keys": _DEAD_KEYS,
    "live_keys": _LIVE_KEYS,
    "release_leases_of": _RELEASE_LEASES_OF,
}
