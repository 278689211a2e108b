"""The Lua scripts that change a Redis ticket lock, each in one atomic step.

Redis runs a script with nothing else interleaved, so issuing a ticket, taking a
turn, finishing and compare-and-set cannot lose or duplicate a ticket however many
replicas call them at once (Rasa's `RedisLockStore` does GET, modify in Python, SET).
Each script keeps both of a conversation's keys expiring, judged by Redis' clock.
`LockScripts` registers them on one client; `AtomicRedisLockStore` calls them.
"""

from typing import Any

# Seconds a ticket counter is kept after the last ticket of its conversation expired.
# Numbers stay unique after that too (a new counter starts at Redis' clock in
# microseconds); the counter covers Redis' clock stepping back. One small key per
# conversation active in the last ten minutes.
COUNTER_RETENTION_SECONDS = 600

# Helpers shared by the scripts below. Every script gets KEYS[1] = the lock,
# KEYS[2] = the conversation's ticket counter. A ticket is kept as the JSON string
# Rasa's `Ticket.dumps()` writes; numbers are written with %d, never by cjson, which
# rounds to 14 digits. "Live" follows `Ticket.has_expired`: dead once now > expires.
_LUA_HELPERS = f"""
-- Replicate the writes, not the TIME call (the default from Redis 5 on).
if redis.replicate_commands then redis.replicate_commands() end

local COUNTER_RETENTION_MS = {COUNTER_RETENTION_SECONDS * 1000}

local function now_us()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000000 + tonumber(time[2])
end

local function ticket_json(number, expires_us)
  return string.format('{{"number": %d, "expires": %d.%06d}}',
    number, math.floor(expires_us / 1000000), expires_us % 1000000)
end

local function decode_lock(raw, now)
  local data = cjson.decode(raw)
  local live, total = {{}}, 0
  local last_issued = tonumber(data['last_issued']) or -1
  for _, serialised in ipairs(data['tickets'] or {{}}) do
    total = total + 1
    local ticket = cjson.decode(serialised)
    local number, expires = tonumber(ticket['number']), tonumber(ticket['expires'])
    if number > last_issued then last_issued = number end
    if now <= expires then
      table.insert(live, {{number = number, expires = expires, serialised = serialised}})
    end
  end
  return data['conversation_id'], live, last_issued, total
end

local function encode_lock(conversation_id, live, last_issued)
  local tickets = {{}}
  for i, ticket in ipairs(live) do tickets[i] = cjson.encode(ticket.serialised) end
  return '{{"conversation_id": ' .. cjson.encode(conversation_id)
    .. ', "tickets": [' .. table.concat(tickets, ', ')
    .. '], "last_issued": ' .. string.format('%d', last_issued) .. '}}'
end

local function latest_expiry(live, now)
  local latest = now
  for _, ticket in ipairs(live) do
    if ticket.expires > latest then latest = ticket.expires end
  end
  return latest
end

-- Raise the counter to last_issued; it expires COUNTER_RETENTION_MS after `latest`.
local function keep_counter(last_issued, latest)
  local counter = tonumber(redis.call('GET', KEYS[2])) or -1
  if last_issued > counter then counter = last_issued end
  redis.call('SET', KEYS[2], string.format('%d', counter))
  redis.call('PEXPIREAT', KEYS[2], string.format('%d', math.floor(latest * 1000) + 1 + COUNTER_RETENTION_MS))
  return counter
end

-- Store the live tickets, expiring with the last of them; with none left, no lock.
local function store_lock(conversation_id, live, last_issued, now)
  local latest = latest_expiry(live, now)
  last_issued = keep_counter(last_issued, latest)
  if #live == 0 then
    redis.call('DEL', KEYS[1])
    return false
  end
  local value = encode_lock(conversation_id, live, last_issued)
  redis.call('SET', KEYS[1], value)
  redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.floor(latest * 1000) + 1))
  return value
end

-- The stored value if nothing expired and it has a TTL; else store what is live.
local function settle(raw, conversation_id, live, last_issued, total, now)
  if #live == total and total > 0 and redis.call('PTTL', KEYS[1]) > 0 then return raw end
  return store_lock(conversation_id, live, last_issued, now)
end
"""

# ARGV: lifetime in microseconds, conversation id, most live tickets allowed. Returns
# the new ticket's number: above every number this conversation's counter or lock
# holds, and at least Redis' clock in microseconds, so a new counter never repeats an
# old number. Returns -1 (and issues nothing) when the conversation's queue is full.
ISSUE_TICKET_LUA = (
    _LUA_HELPERS
    + """
local now = now_us()
local conversation_id, live, last_issued = ARGV[2], {}, -1
local raw = redis.call('GET', KEYS[1])
if raw then conversation_id, live, last_issued = decode_lock(raw, now / 1000000) end
if #live >= tonumber(ARGV[3]) then return -1 end
local counter = tonumber(redis.call('GET', KEYS[2])) or -1
local number = math.max(last_issued + 1, counter + 1, now)
local expires = now + tonumber(ARGV[1])
table.insert(live, {number = number, expires = expires / 1000000, serialised = ticket_json(number, expires)})
store_lock(conversation_id, live, number, now / 1000000)
return number
"""
)

# ARGV: ticket number, lifetime in microseconds. If the ticket is first in line it
# now expires one lifetime from now: {1, lock}. {0, lock} while others are ahead;
# {-1, lock or ''} once it expired or was removed.
TAKE_TURN_LUA = (
    _LUA_HELPERS
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return {-1, ''} end
local now = now_us()
local conversation_id, live, last_issued, total = decode_lock(raw, now / 1000000)
local ticket = tonumber(ARGV[1])
local position = nil
for index, candidate in ipairs(live) do
  if candidate.number == ticket then
    position = index
    break
  end
end
if position ~= 1 then
  local stored = settle(raw, conversation_id, live, last_issued, total, now / 1000000)
  return {position and 0 or -1, stored or ''}
end
local expires = now + tonumber(ARGV[2])
live[1] = {number = ticket, expires = expires / 1000000, serialised = ticket_json(ticket, expires)}
return {1, store_lock(conversation_id, live, last_issued, now / 1000000)}
"""
)

# ARGV: number of a ticket to remove ('' for none). Drops expired tickets and deletes
# the lock once none is left. Returns the stored lock afterwards, or nil if none.
FINISH_LUA = (
    _LUA_HELPERS
    + """
local raw = redis.call('GET', KEYS[1])
if not raw then return false end
local now = now_us() / 1000000
local conversation_id, live, last_issued, total = decode_lock(raw, now)
local finished = tonumber(ARGV[1])
local kept = {}
for _, ticket in ipairs(live) do
  if ticket.number ~= finished then table.insert(kept, ticket) end
end
return settle(raw, conversation_id, kept, last_issued, total, now)
"""
)

# ARGV: the value the caller read ('' if none), the new value. Returns 0 if the
# stored value changed since it was read, 1 if written (expiring with its last live
# ticket), 2 if the new value holds no live ticket, so the lock was deleted.
COMPARE_AND_SET_LUA = (
    _LUA_HELPERS
    + """
if (redis.call('GET', KEYS[1]) or '') ~= ARGV[1] then return 0 end
local now = now_us() / 1000000
local _, live, last_issued = decode_lock(ARGV[2], now)
local latest = latest_expiry(live, now)
keep_counter(last_issued, latest)
if #live == 0 then
  redis.call('DEL', KEYS[1])
  return 2
end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('PEXPIREAT', KEYS[1], string.format('%d', math.floor(latest * 1000) + 1))
return 1
"""
)

# What the scripts return: TAKE_TURN_LUA's status, ISSUE_TICKET_LUA's refusal and
# COMPARE_AND_SET_LUA's "deleted, nothing live".
TURN_TAKEN, TICKET_GONE = 1, -1
QUEUE_FULL = -1
SAVED_EMPTY = 2


class LockScripts:
    """The scripts registered on one client: the synchronous one, or an asynchronous
    one bound to one event loop."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.issue_ticket = client.register_script(ISSUE_TICKET_LUA)
        self.take_turn = client.register_script(TAKE_TURN_LUA)
        self.finish = client.register_script(FINISH_LUA)
        self.compare_and_set = client.register_script(COMPARE_AND_SET_LUA)
