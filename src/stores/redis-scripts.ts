// The Lua scripts of the Redis store. Each runs atomically: an append assigns
// seq, stores the notification and its indexes, applies retention and adds it
// to the fan-out stream in one step, so the stream is in seq order by
// construction. Every key is built from ARGV[1], the deployment's hash-tagged
// prefix; KEYS[1] (the meta hash, in the same slot) routes the call on a Cluster.
//
// Layout, under the prefix K:
//   meta             hash: seq (the counter), epoch, pruned (prunedThrough)
//   n / m            hash seq -> stored notification JSON / its index entry (id, category, audience…)
//   log              zset seq (score seq): retention by count, ranges for gap fills
//   created / exp    zset seq by createdAt / expiresAt (ms): retention by age, expiry
//   ids / ck         hash id -> seq / collapseKey -> seq
//   idem / idemt     hash key -> first stored JSON / zset key by createdAt (kept as long as history)
//   bc:<cat>         zset: broadcasts of a category
//   u:<len>:<cat>:<user>, r:<len>:<cat>:<role>   zset: targeted notifications of a category
//   ru / rm:<user>   hash user -> "read all up to seq" / zset of read seqs above it
//   muted            hash user -> JSON list of muted categories
//   revoked / revuntil   hash user -> "cut:until" / zset user by until (ms): token revocations
//   stream           the fan-out stream (fields s seq, e epoch, n JSON)

const COMMON = `
local K = ARGV[1]
local function tkey (kind, cat, who) return K .. kind .. string.len(cat) .. ':' .. cat .. ':' .. who end
local function forget (seq)
  local mj = redis.call('HGET', K .. 'm', seq)
  if not mj then return end
  local m = cjson.decode(mj)
  redis.call('HDEL', K .. 'm', seq)
  redis.call('HDEL', K .. 'n', seq)
  redis.call('HDEL', K .. 'ids', m.id)
  redis.call('ZREM', K .. 'log', seq)
  redis.call('ZREM', K .. 'created', seq)
  redis.call('ZREM', K .. 'exp', seq)
  if m.k and redis.call('HGET', K .. 'ck', m.k) == tostring(seq) then redis.call('HDEL', K .. 'ck', m.k) end
  if #m.u == 0 and #m.r == 0 then
    redis.call('ZREM', K .. 'bc:' .. m.c, seq)
  else
    for _, u in ipairs(m.u) do redis.call('ZREM', tkey('u:', m.c, u), seq) end
    for _, r in ipairs(m.r) do redis.call('ZREM', tkey('r:', m.c, r), seq) end
  end
end
-- Retention, at most 'batch' rows of each kind per call (a long backlog is worked off by the timer).
local function prune (now, maxCount, cutoff, batch)
  local through, removed = 0, 0
  local count = redis.call('ZCARD', K .. 'log')
  if count > maxCount then
    for _, s in ipairs(redis.call('ZRANGE', K .. 'log', 0, math.min(count - maxCount, batch) - 1)) do
      forget(s); removed = removed + 1; through = math.max(through, tonumber(s))
    end
  end
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', K .. 'created', '-inf', '(' .. cutoff, 'LIMIT', 0, batch)) do
    forget(s); removed = removed + 1; through = math.max(through, tonumber(s))
  end
  -- Expired rows are never delivered nor listed: removing them loses nothing a cursor could want.
  for _, s in ipairs(redis.call('ZRANGEBYSCORE', K .. 'exp', '-inf', now, 'LIMIT', 0, batch)) do
    forget(s); removed = removed + 1
  end
  for _, key in ipairs(redis.call('ZRANGEBYSCORE', K .. 'idemt', '-inf', '(' .. cutoff, 'LIMIT', 0, batch)) do
    redis.call('HDEL', K .. 'idem', key); redis.call('ZREM', K .. 'idemt', key); removed = removed + 1
  end
  -- Revocations past their 'until' cover no token that could still be valid.
  for _, u in ipairs(redis.call('ZRANGEBYSCORE', K .. 'revuntil', '-inf', now, 'LIMIT', 0, batch)) do
    redis.call('HDEL', K .. 'revoked', u); redis.call('ZREM', K .. 'revuntil', u); removed = removed + 1
  end
  if through > 0 and through > tonumber(redis.call('HGET', K .. 'meta', 'pruned') or '0') then
    redis.call('HSET', K .. 'meta', 'pruned', through)
  end
  return removed
end
`

/**
 * ARGV: K, now, maxCount, age cutoff (ms), stream MAXLEN, a new epoch (used only when the
 * log has none), prune batch, then per item its index entry (JSON) and its body (JSON, no seq).
 * Returns { epoch, per item: its new seq (integer) or the first stored JSON (duplicate) }.
 */
export const APPEND = COMMON + `
local meta = KEYS[1]
local epoch = redis.call('HGET', meta, 'epoch')
if not epoch then
  -- No counter, no epoch: a new log (first start, or Redis lost its data).
  epoch = ARGV[6]
  redis.call('HSET', meta, 'epoch', epoch)
end
-- Everything is decoded before anything is written: a bad item fails the call untouched.
local items = {}
for i = 8, #ARGV, 2 do items[#items + 1] = { cjson.decode(ARGV[i]), ARGV[i], ARGV[i + 1] } end
local out = { epoch }
for _, it in ipairs(items) do
  local m, mj, body = it[1], it[2], it[3]
  local seen = m.i and redis.call('HGET', K .. 'idem', m.i)
  if seen then
    out[#out + 1] = seen
  else
    local seq = redis.call('HINCRBY', meta, 'seq', 1)
    if m.k then
      local older = redis.call('HGET', K .. 'ck', m.k)
      if older then forget(older) end
      redis.call('HSET', K .. 'ck', m.k, seq)
    end
    local stored = '{"seq":' .. seq .. ',' .. string.sub(body, 2)
    redis.call('HSET', K .. 'n', seq, stored)
    redis.call('HSET', K .. 'm', seq, mj)
    redis.call('HSET', K .. 'ids', m.id, seq)
    redis.call('ZADD', K .. 'log', seq, seq)
    redis.call('ZADD', K .. 'created', m.t, seq)
    if m.x then redis.call('ZADD', K .. 'exp', m.x, seq) end
    if #m.u == 0 and #m.r == 0 then
      redis.call('ZADD', K .. 'bc:' .. m.c, seq, seq)
    else
      for _, u in ipairs(m.u) do redis.call('ZADD', tkey('u:', m.c, u), seq, seq) end
      for _, r in ipairs(m.r) do redis.call('ZADD', tkey('r:', m.c, r), seq, seq) end
    end
    if m.i then
      redis.call('HSET', K .. 'idem', m.i, stored)
      redis.call('ZADD', K .. 'idemt', m.t, m.i)
    end
    redis.call('XADD', K .. 'stream', 'MAXLEN', '~', ARGV[5], '*', 's', seq, 'e', epoch, 'n', stored)
    out[#out + 1] = seq
  end
end
prune(ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[7]))
return out
`

/** ARGV: K, now, maxCount, age cutoff, batch. Returns how many rows and keys went. */
export const PRUNE = COMMON + `
return prune(ARGV[2], tonumber(ARGV[3]), ARGV[4], tonumber(ARGV[5]))
`

/**
 * Walks the entitled notifications of a user in seq order between two exclusive
 * bounds: the union of its categories' broadcast, user and role sets, merged
 * page by page (a set's page bounds how far the merge is known to be complete).
 * ARGV: K, mode ('page' | 'count'), user, role, categories (JSON), after, before ('' for none),
 * asc ('1' | '0'), limit, unreadOnly ('1' | '0'), now.
 * Returns, for 'page', JSON and read flag pairs; for 'count', the count.
 */
export const WALK = COMMON + `
local mode, user, role = ARGV[2], ARGV[3], ARGV[4]
local cats = cjson.decode(ARGV[5])
local lo = tonumber(ARGV[6])
local hi = ARGV[7] == '' and math.huge or tonumber(ARGV[7])
local asc = ARGV[8] == '1'
local limit = tonumber(ARGV[9])
local unreadOnly = ARGV[10] == '1'
local now = tonumber(ARGV[11])
local upto = tonumber(redis.call('HGET', K .. 'ru', user) or '0')
local marks = K .. 'rm:' .. user
local hasMarks = redis.call('EXISTS', marks) == 1
-- Everything up to the user's read-all mark is read: an unread walk starts above it.
if unreadOnly and upto > lo then lo = upto end
local sets = {}
for _, c in ipairs(cats) do
  sets[#sets + 1] = K .. 'bc:' .. c
  sets[#sets + 1] = tkey('u:', c, user)
  sets[#sets + 1] = tkey('r:', c, role)
end
local function bound (v) if v == math.huge then return '+inf' end return '(' .. string.format('%d', v) end
local step = math.min(math.max(limit, 10), 200)
local out, found = {}, 0
while found < limit and lo < hi do
  local cand, edge = {}, nil
  for _, k in ipairs(sets) do
    local r
    if asc then r = redis.call('ZRANGEBYSCORE', k, bound(lo), bound(hi), 'LIMIT', 0, step)
    else r = redis.call('ZREVRANGEBYSCORE', k, bound(hi), bound(lo), 'LIMIT', 0, step) end
    for _, s in ipairs(r) do cand[#cand + 1] = tonumber(s) end
    if #r == step then
      local last = tonumber(r[#r])
      if edge == nil or (asc and last < edge) or (not asc and last > edge) then edge = last end
    end
  end
  if asc then table.sort(cand) else table.sort(cand, function (a, b) return a > b end) end
  local prev
  for _, s in ipairs(cand) do
    if edge ~= nil and ((asc and s > edge) or (not asc and s < edge)) then break end
    if s ~= prev then
      prev = s
      local x = redis.call('ZSCORE', K .. 'exp', s)
      if not (x and tonumber(x) <= now) then
        local read = s <= upto or (hasMarks and redis.call('ZSCORE', marks, s) ~= false)
        if not (unreadOnly and read) then
          found = found + 1
          if mode == 'page' then
            out[#out + 1] = redis.call('HGET', K .. 'n', s)
            out[#out + 1] = read and 1 or 0
          end
          if found >= limit then break end
        end
      end
    end
  end
  if edge == nil then break end
  if asc then lo = edge else hi = edge end
end
if mode == 'count' then return found end
return out
`

/** ARGV: K, user, ids…: marks those ids read (ids above the user's read-all mark only). */
export const MARK_READ = COMMON + `
local user = ARGV[2]
local upto = tonumber(redis.call('HGET', K .. 'ru', user) or '0')
for i = 3, #ARGV do
  local s = redis.call('HGET', K .. 'ids', ARGV[i])
  if s and tonumber(s) > upto then redis.call('ZADD', K .. 'rm:' .. user, s, s) end
end
-- Marks of notifications retention removed are of no use.
local pruned = redis.call('HGET', K .. 'meta', 'pruned')
if pruned then redis.call('ZREMRANGEBYSCORE', K .. 'rm:' .. user, '-inf', pruned) end
return 1
`

/** ARGV: K, user, upTo: raises the user's read-all mark; the marks it covers go. */
export const MARK_ALL_READ = COMMON + `
local user, upTo = ARGV[2], tonumber(ARGV[3])
if upTo > tonumber(redis.call('HGET', K .. 'ru', user) or '0') then redis.call('HSET', K .. 'ru', user, upTo) end
redis.call('ZREMRANGEBYSCORE', K .. 'rm:' .. user, '-inf', upTo)
return 1
`

/** ARGV: K, user, cut (epoch s), until (epoch ms): a higher cut or until raises the user's revocation, a lower never lowers it. */
export const REVOKE = `
local K, user = ARGV[1], ARGV[2]
local cut, untl = tonumber(ARGV[3]), tonumber(ARGV[4])
local cur = redis.call('HGET', K .. 'revoked', user)
if cur then
  local c, u = string.match(cur, '^(%d+):(%d+)$')
  cut = math.max(cut, tonumber(c))
  untl = math.max(untl, tonumber(u))
end
redis.call('HSET', K .. 'revoked', user, string.format('%d:%d', cut, untl))
redis.call('ZADD', K .. 'revuntil', untl, user)
return 1
`
