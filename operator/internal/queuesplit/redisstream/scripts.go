package redisstream

import "github.com/redis/go-redis/v9"

// deliverScript stores a batch of the original stream's entries in their
// temporary streams and acknowledges them, in one atomic step: Redis runs
// a script to its end with no other command in between, and its effects
// reach the AOF and the replicas as one transaction. So after any crash of
// the router, an entry is either in all its streams and acknowledged, or
// still pending for the router, which delivers it then.
//
// KEYS[1] is the original stream, KEYS[2..] the temporary streams; ARGV[1]
// is the group, then for each entry: its ID, the count n of its
// destinations and n indexes into KEYS. An entry that is no longer pending
// (a script whose reply was lost ran already) is skipped; one deleted from
// the original meanwhile is acknowledged and counted as gone. The entry's
// fields are read here, not sent by the router, so they are copied
// exactly. Returns {delivered, gone}.
var deliverScript = redis.NewScript(`
local src, group = KEYS[1], ARGV[1]
local i, delivered, gone = 2, 0, 0
while i <= #ARGV do
  local id, n = ARGV[i], tonumber(ARGV[i+1])
  if #redis.call('XPENDING', src, group, id, id, 1) == 1 then
    local e = redis.call('XRANGE', src, id, id)
    if #e == 1 then
      for j = 1, n do
        local args = {KEYS[tonumber(ARGV[i+1+j])], '*'}
        for _, v in ipairs(e[1][2]) do args[#args+1] = v end
        redis.call('XADD', unpack(args))
      end
      delivered = delivered + 1
    else
      gone = gone + 1
    end
    redis.call('XACK', src, group, id)
  end
  i = i + 2 + n
end
return {delivered, gone}
`)

// drainScript moves up to ARGV[2] entries of temporary stream KEYS[1]
// that group ARGV[1] has not acknowledged (pending first, then never
// delivered, in ID order) to the end of stream KEYS[2], deleting each
// from KEYS[1] in the same atomic step; when none is left it deletes
// KEYS[1]. Called until it returns 0, each entry moves exactly once even
// if a call is interrupted. Returns the number moved, or -1 when KEYS[1]
// does not exist.
var drainScript = redis.NewScript(`
local from, into, group, n = KEYS[1], KEYS[2], ARGV[1], tonumber(ARGV[2])
if redis.call('EXISTS', from) == 0 then return -1 end
local last = '0-0'
for _, g in ipairs(redis.call('XINFO', 'GROUPS', from)) do
  local name, ld
  for k = 1, #g, 2 do
    if g[k] == 'name' then name = g[k+1] end
    if g[k] == 'last-delivered-id' then ld = g[k+1] end
  end
  if name == group then last = ld end
end
local moved = 0
local function move(id, fields)
  local args = {into, '*'}
  for _, v in ipairs(fields) do args[#args+1] = v end
  redis.call('XADD', unpack(args))
  moved = moved + 1
end
for _, p in ipairs(redis.call('XPENDING', from, group, '-', '+', n)) do
  local e = redis.call('XRANGE', from, p[1], p[1])
  if #e == 1 then move(p[1], e[1][2]) end
  redis.call('XACK', from, group, p[1])
  redis.call('XDEL', from, p[1])
end
if moved < n then
  for _, e in ipairs(redis.call('XRANGE', from, '(' .. last, '+', 'COUNT', n - moved)) do
    move(e[1], e[2])
    redis.call('XDEL', from, e[1])
  end
end
if moved == 0 then redis.call('DEL', from) end
return moved
`)
