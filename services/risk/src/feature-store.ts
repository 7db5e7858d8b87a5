import type Redis from 'ioredis';
import { taggedKey } from '../../../platform/redis';
import type { DecisionName } from './domain/decision';
import type { History, HistoryExtra, MerchantBaseline, ScoreInput, WindowStats } from './domain/features';
import { MERCHANT_BASELINE_TAU_MS, SMALL_MINOR, WINDOWS_MS, YOUNG_BAND_MS } from './domain/features';
import { utcDay, type BandLimits } from './domain/band-limits';

/*
 * Feature keys. Every key of one band carries the band's hash tag and every key of one account
 * the account's, so each script below touches one Redis Cluster slot. A payment is recorded by
 * two scripts (band, then account); each is atomic and idempotent on its own through a `seen`
 * marker holding the snapshot it returned, so a retry after a partial failure converges and a
 * rescored payment gets back exactly the history it was first scored with.
 *
 *   <p>:risk-device:{device}:payments         ZSET  "<payment>|<amount>|<currency>" scored by ms, 24 h
 *   <p>:risk-device:{device}:seen:<payment>   STRING snapshot JSON (dedupe marker)
 *   <p>:risk-device:{device}:status           HASH  status, at: the band's lifecycle from device.* events
 *   <p>:risk-device:{device}:token:<token>    HASH  status, at: the token's lifecycle from token.* events
 *   <p>:risk-device:{device}:refusals         ZSET  event id → ms of token.payment.refused, 24 h
 *   <p>:risk-device:{device}:limits           HASH  version, event, pp, ppc, pd, pdc, frozen, at, applied_at:
 *                                                   the band's limits from payment.limits.changed (signals.ts)
 *   <p>:risk-device:{device}:spend:<YYYY-MM-DD> HASH payment id → "<amount>|<currency>" of payment.authorized, that UTC day
 *   <p>:risk-account:{account}:payments       ZSET  as above, per account
 *   <p>:risk-account:{account}:merchants      ZSET  merchant → last payment ms (distinct merchants, first-at-merchant)
 *   <p>:risk-account:{account}:profile        HASH  n:<cur> mean:<cur> m2:<cur> (Welford per currency)
 *   <p>:risk-account:{account}:places         ZSET  "<payment>|<lat>|<lon>" scored by ms: located payments, 24 h, latest 20
 *   <p>:risk-account:{account}:seen:<payment> STRING snapshot JSON (dedupe marker)
 *   <p>:risk-account:{account}:declines       ZSET  payment id → ms of payment.declined, 24 h
 *   <p>:risk-device:{device}:small            ZSET  payment id → ms of small payments (≤ SMALL_MINOR), 7 d
 *   <p>:risk-device:{device}:tok:<token>      ZSET  payment id → ms, per token, 24 h
 *   <p>:risk-account:{account}:small          ZSET  as for the band
 *   <p>:risk-account:{account}:bands          ZSET  band → last payment ms, 7 d
 *   <p>:risk-account:{account}:pairings       ZSET  band → paired ms (from device_age_seconds and device.paired), 30 d
 *   <p>:risk-account:{account}:area           HASH  t, w, sla, slo, sr2: decayed sums of approved located payments
 *   <p>:risk-account:{account}:learned        HASH  payment → "amount|cur|hasloc|lat|lon|at|d2" (or "x" once unlearned)
 *   <p>:risk-account:{account}:learned-at     ZSET  payment → ms: trims `learned` after RISK_DECISION_TTL_DAYS
 *   <p>:risk-learned:{payment}                STRING account id: where a FRAUD label finds what the payment taught
 *   <p>:risk-merchant:{merchant}:seen:<payment> STRING snapshot JSON (dedupe marker)
 *   <p>:risk-merchant:{merchant}:payments     ZSET  payment id → ms, 24 h, ≤ RISK_WINDOW_MAX_EVENTS
 *   <p>:risk-merchant:{merchant}:accounts     ZSET  account → last payment ms, RISK_MERCHANT_MEMORY_DAYS
 *   <p>:risk-merchant:{merchant}:new          ZSET  payment id → ms of payments by an account new to the merchant, 24 h
 *   <p>:risk-merchant:{merchant}:stopped      ZSET  payment id → ms of its payments risk challenged or declined, 24 h
 *   <p>:risk-merchant:{merchant}:base         HASH  t, f, np, nn, sl: the merchant's own decayed baseline (RECORD_MERCHANT)
 *   <p>:risk-account:{account}:small-new      ZSET  payment id → ms of small payments at merchants new to the account, 7 d
 *   <p>:risk-account:{account}:at:<merchant>  ZSET  "<payment>|<amount>|<currency>" by ms: this account's payments at one merchant, 1 h
 *   <p>:risk-account:{account}:profile `born`  the earliest of the account's first payment and any of its bands' pairing seen (ms)
 *   <p>:risk-merchant:{merchant}:base `lt, lw, la, lo, lr2`  the merchant's usual place: decayed sums of its located payments
 *   <p>:risk-merchant:{merchant}:young        ZSET  account → last ms it paid here with a band younger than YOUNG_BAND_MS, 7 d
 *
 * Baselines (amount statistics, usual area) learn only from APPROVED payments, after the
 * decision ({@link FeatureStore.settle}), and a FRAUD label takes the payment's contribution back
 * out ({@link FeatureStore.unlearn}): Welford's step is reversible exactly, and the area's decayed
 * sums lose the contribution's weight as decayed to now.
 *
 * Every window is keyed on the payment's event time (occurred_at, clamped by the scorer), not on
 * the arrival time, so a late or offline tap lands where it happened.
 *
 * Windows are half-open, (now - W, now]: a payment exactly one minute old is out of the 1-minute
 * window. Counts include the payment being scored; sums add only payments in its currency.
 */

/** Located payments an account keeps for geo-velocity (the most recent, within 24 h). */
const MAX_PLACES = 20;

const WINDOW_FN = `
local function windows(key, now, currency)
  local rows = redis.call('ZRANGEBYSCORE', key, '(' .. (now - ${WINDOWS_MS['24h']}), '+inf', 'WITHSCORES')
  local c1m, c1h, c24, s1m, s1h, s24 = 0, 0, 0, 0, 0, 0
  for i = 1, #rows, 2 do
    local ts = tonumber(rows[i + 1])
    local _, _, amount, cur = string.find(rows[i], '|([^|]*)|([^|]*)$')
    local a = 0
    if cur == currency then a = tonumber(amount) or 0 end
    c24 = c24 + 1
    s24 = s24 + a
    if ts > now - ${WINDOWS_MS['1h']} then c1h = c1h + 1; s1h = s1h + a end
    if ts > now - ${WINDOWS_MS['1m']} then c1m = c1m + 1; s1m = s1m + a end
  end
  return {c1m, c1h, c24, s1m, s1h, s24}
end

-- Adds member at now to a ZSET trimmed to \`keep\` ms (at most maxEvents), and counts members in (now - w, +inf) for each w.
local function mark(key, now, member, keep, maxEvents, windows)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)
  if member then
    redis.call('ZADD', key, now, member)
    local card = redis.call('ZCARD', key)
    if card > maxEvents then redis.call('ZREMRANGEBYRANK', key, 0, card - maxEvents - 1) end
    redis.call('PEXPIRE', key, keep + ${WINDOWS_MS['1h']})
  end
  local out = {}
  for i = 1, #windows do out[i] = redis.call('ZCOUNT', key, '(' .. (now - windows[i]), '+inf') end
  return out
end

local function record(key, now, member, maxEvents)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ${WINDOWS_MS['24h']})
  redis.call('ZADD', key, now, member)
  local card = redis.call('ZCARD', key)
  if card > maxEvents then redis.call('ZREMRANGEBYRANK', key, 0, card - maxEvents - 1) end
  redis.call('PEXPIRE', key, ${WINDOWS_MS['24h'] + WINDOWS_MS['1h']})
end
`;

// KEYS: seen marker, payments, band status, token status, refusals, limits, today's spend, small
//       payments, token payments.
// ARGV: now, payment id, amount, currency, marker ttl ms, max events, token id ('' = none), small ('1'/'0').
// The snapshot carries `lm` only when the band has limits, so a band without them (and every
// snapshot written before limits existed) derives exactly the features it did before.
const RECORD_DEVICE = `${WINDOW_FN}
local prior = redis.call('GET', KEYS[1])
if prior then return {prior, 1} end
local now = tonumber(ARGV[1])
record(KEYS[2], now, ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4], tonumber(ARGV[6]))
local blocked = 0
local status = redis.call('HGET', KEYS[3], 'status')
if status and status ~= 'ACTIVE' then blocked = 1 end
local tokenBlocked = 0
if ARGV[7] ~= '' then
  local tokenStatus = redis.call('HGET', KEYS[4], 'status')
  if tokenStatus and tokenStatus ~= 'ACTIVE' then tokenBlocked = 1 end
end
local refusals = redis.call('ZCOUNT', KEYS[5], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf')
local snapshot = {at = now, w = windows(KEYS[2], now, ARGV[4]), b = blocked, tb = tokenBlocked, rf = refusals}
local lim = redis.call('HMGET', KEYS[6], 'version', 'pp', 'ppc', 'pd', 'pdc', 'frozen')
if lim[1] then snapshot.lm = {pp = lim[2] or '', ppc = lim[3] or '', pd = lim[4] or '', pdc = lim[5] or '', fz = lim[6] or '0'} end
local spent = 0
local spend = redis.call('HVALS', KEYS[7])
for i = 1, #spend do
  local _, _, amount, cur = string.find(spend[i], '^([^|]*)|([^|]*)$')
  if cur == ARGV[4] then spent = spent + (tonumber(amount) or 0) end
end
snapshot.st = spent
local small = nil
if ARGV[8] == '1' then small = ARGV[2] end
snapshot.sm = mark(KEYS[8], now, small, ${WINDOWS_MS['7d']}, tonumber(ARGV[6]), {${WINDOWS_MS['24h']}, ${WINDOWS_MS['7d']}})
if ARGV[7] ~= '' then
  snapshot.tk = mark(KEYS[9], now, ARGV[2], ${WINDOWS_MS['24h']}, tonumber(ARGV[6]), {${WINDOWS_MS['1h']}, ${WINDOWS_MS['24h']}})
end
local snap = cjson.encode(snapshot)
redis.call('SET', KEYS[1], snap, 'PX', ARGV[5])
return {snap, 0}
`;

// KEYS: seen marker, payments, merchants, profile, places, declines, small payments, bands,
//       pairings, area, small payments at new merchants, payments at this merchant.
// ARGV: now, payment id, amount, currency, marker ttl ms, max events, merchant ('' = none),
//       has location ('1'/'0'), lat, lon, merchant memory ms, profile ttl ms, small ('1'/'0'),
//       band id, band paired at ms.
// The amount profile and the area are only read here: they learn after the decision, from
// approved payments alone (SETTLE_ACCOUNT).
const RECORD_ACCOUNT = `${WINDOW_FN}
local prior = redis.call('GET', KEYS[1])
if prior then return {prior, 1} end
local now = tonumber(ARGV[1])
local currency = ARGV[4]
local maxEvents = tonumber(ARGV[6])
record(KEYS[2], now, ARGV[2] .. '|' .. ARGV[3] .. '|' .. currency, maxEvents)

local memory = tonumber(ARGV[11])
local first = 0
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - memory)
if ARGV[7] ~= '' then
  if not redis.call('ZSCORE', KEYS[3], ARGV[7]) then first = 1 end
  redis.call('ZADD', KEYS[3], 'GT', now, ARGV[7])
  local card = redis.call('ZCARD', KEYS[3])
  if card > maxEvents then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, card - maxEvents - 1) end
  redis.call('PEXPIRE', KEYS[3], memory)
end
local merchants1h = redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf')
local merchants24h = redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['24h']}), '+inf')
local merchants7d = redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['7d']}), '+inf')

local p = redis.call('HMGET', KEYS[4], 'n:' .. currency, 'mean:' .. currency, 'm2:' .. currency)
local n = p[1] and tonumber(p[1]) or 0
local mean = p[2] and tonumber(p[2]) or 0
local m2 = p[3] and tonumber(p[3]) or 0

redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - ${WINDOWS_MS['24h']})
local places = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. (now - ${WINDOWS_MS['24h']}), '+inf', 'WITHSCORES')
if ARGV[8] == '1' then
  redis.call('ZADD', KEYS[5], now, ARGV[2] .. '|' .. ARGV[9] .. '|' .. ARGV[10])
  local card = redis.call('ZCARD', KEYS[5])
  if card > ${MAX_PLACES} then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, card - ${MAX_PLACES} - 1) end
  redis.call('PEXPIRE', KEYS[5], ${WINDOWS_MS['24h'] + WINDOWS_MS['1h']})
end

local declines = redis.call('ZCOUNT', KEYS[6], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf')
local small = nil
if ARGV[13] == '1' then small = ARGV[2] end
local sm = mark(KEYS[7], now, small, ${WINDOWS_MS['7d']}, maxEvents, {${WINDOWS_MS['24h']}, ${WINDOWS_MS['7d']}})
-- Small payments at merchants this account never paid before (probes spread over days).
local smallNew = nil
if ARGV[13] == '1' and first == 1 then smallNew = ARGV[2] end
local sn = mark(KEYS[11], now, smallNew, ${WINDOWS_MS['7d']}, maxEvents, {${WINDOWS_MS['24h']}, ${WINDOWS_MS['7d']}})

-- Bands: another band of the account that paid after this band was paired.
local band = ARGV[14]
local pairedAt = tonumber(ARGV[15])
redis.call('ZADD', KEYS[9], 'LT', pairedAt, band)
redis.call('ZREMRANGEBYSCORE', KEYS[9], '-inf', now - ${30 * WINDOWS_MS['24h']})
redis.call('PEXPIRE', KEYS[9], ${31 * WINDOWS_MS['24h']})
local pairedThis = tonumber(redis.call('ZSCORE', KEYS[9], band)) or pairedAt
local bandsPaired7d = redis.call('ZCOUNT', KEYS[9], '(' .. (now - ${WINDOWS_MS['7d']}), '+inf')
redis.call('ZREMRANGEBYSCORE', KEYS[8], '-inf', now - ${WINDOWS_MS['7d']})
local others = redis.call('ZRANGEBYSCORE', KEYS[8], '(' .. pairedThis, '+inf')
local otherAfter = 0
for i = 1, #others do if others[i] ~= band then otherAfter = 1 end end
redis.call('ZADD', KEYS[8], 'GT', now, band)
redis.call('PEXPIRE', KEYS[8], ${WINDOWS_MS['7d'] + WINDOWS_MS['1h']})
local bands7d = redis.call('ZCOUNT', KEYS[8], '(' .. (now - ${WINDOWS_MS['7d']}), '+inf')

local ar = redis.call('HMGET', KEYS[10], 't', 'w', 'sla', 'slo', 'sr2')
local area = {}
if ar[1] then area = {tonumber(ar[1]), tonumber(ar[2]), tonumber(ar[3]), tonumber(ar[4]), tonumber(ar[5])} end

-- The account's age: the earliest of its first payment and any band pairing it has shown
-- (now - device_age_seconds), so an old account is old from its first payment risk sees.
local born = tonumber(redis.call('HGET', KEYS[4], 'born')) or now
born = math.min(born, now, pairedAt)
redis.call('HSET', KEYS[4], 'born', born)
redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[12]))

-- Repeated payments by this account at this merchant (a sale split in parts, a charge repeated).
local am = {0, 0, 0, 0}
if ARGV[7] ~= '' then
  record(KEYS[12], now, ARGV[2] .. '|' .. ARGV[3] .. '|' .. currency, maxEvents)
  redis.call('ZREMRANGEBYSCORE', KEYS[12], '-inf', now - ${WINDOWS_MS['1h']})
  redis.call('PEXPIRE', KEYS[12], ${2 * WINDOWS_MS['1h']})
  local rows = redis.call('ZRANGEBYSCORE', KEYS[12], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf', 'WITHSCORES')
  for i = 1, #rows, 2 do
    local ts = tonumber(rows[i + 1])
    local _, _, amount, cur = string.find(rows[i], '|([^|]*)|([^|]*)$')
    local a = 0
    if cur == currency then a = tonumber(amount) or 0 end
    am[2] = am[2] + 1
    am[4] = am[4] + a
    if ts > now - ${10 * WINDOWS_MS['1m']} then am[1] = am[1] + 1; am[3] = am[3] + a end
  end
end

local encoded = cjson.encode({at = now, w = windows(KEYS[2], now, currency), m1h = merchants1h, m24 = merchants24h, m7 = merchants7d, first = first, n = n, mean = mean, m2 = m2, pl = places, dc = declines, sm = sm, sn = sn, b7 = bands7d, bp7 = bandsPaired7d, oba = otherAfter, ar = area, bn = born, am = am})
redis.call('SET', KEYS[1], encoded, 'PX', ARGV[5])
return {encoded, 0}
`;

// KEYS: seen marker, payments, accounts, new-account payments, stopped, baseline.
// ARGV: now, payment id, account id, marker ttl ms, max events, merchant memory ms, amount,
//       baseline tau ms, has location ('1'/'0'), lat, lon, young ('1' when the paying band is
//       younger than YOUNG_BAND_MS).
// KEYS[7]: young accounts (account → last ms of a payment with a young band), 7 d.
// The merchant's usual place (lt, lw, la, lo, lr2 in the baseline hash) is a decayed centre and
// mean squared distance of its located payments, same time constant, also snapshotted before the
// payment: where its terminals usually are, whatever one payment's terminal reports.
// The baseline (HASH t, f, np, nn, sl) is the merchant's own normal: decayed counts of its
// payments and of payments by accounts new to it, and the decayed sum of ln(amount), time
// constant tau; f is when it was first seen. The snapshot carries it as it was BEFORE this
// payment (decayed to now), so a burst is measured against what came before it.
const RECORD_MERCHANT = `${WINDOW_FN}
local prior = redis.call('GET', KEYS[1])
if prior then return {prior, 1} end
local now = tonumber(ARGV[1])
local maxEvents = tonumber(ARGV[5])
local memory = tonumber(ARGV[6])
local c = mark(KEYS[2], now, ARGV[2], ${WINDOWS_MS['24h']}, maxEvents, {${WINDOWS_MS['1h']}, ${WINDOWS_MS['24h']}})
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now - memory)
local isNew = nil
if not redis.call('ZSCORE', KEYS[3], ARGV[3]) then isNew = ARGV[2] end
redis.call('ZADD', KEYS[3], 'GT', now, ARGV[3])
local card = redis.call('ZCARD', KEYS[3])
if card > 50000 then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, card - 50000 - 1) end
redis.call('PEXPIRE', KEYS[3], memory)
local accounts1h = redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf')
local nw = mark(KEYS[4], now, isNew, ${WINDOWS_MS['24h']}, maxEvents, {${WINDOWS_MS['1h']}, ${WINDOWS_MS['24h']}})
local stopped = mark(KEYS[5], now, nil, ${WINDOWS_MS['24h']}, maxEvents, {${WINDOWS_MS['24h']}})
local tau = tonumber(ARGV[8])
local b = redis.call('HMGET', KEYS[6], 't', 'f', 'np', 'nn', 'sl')
local t0 = tonumber(b[1]) or now
local firstSeen = tonumber(b[2]) or now
local np, nn, sl = tonumber(b[3]) or 0, tonumber(b[4]) or 0, tonumber(b[5]) or 0
-- Decay to now; a late payment (before the last update) joins with its weight decayed instead.
local wi = 1
if now > t0 then
  local f = math.exp(-(now - t0) / tau)
  np, nn, sl, t0 = np * f, nn * f, sl * f, now
else
  wi = math.exp(-(t0 - now) / tau)
end
local base = {np, nn, sl, math.min(firstSeen, now)}
np = np + wi
if isNew then nn = nn + wi end
sl = sl + wi * math.log(math.max(1, tonumber(ARGV[7])))
redis.call('HSET', KEYS[6], 't', t0, 'f', math.min(firstSeen, now), 'np', string.format('%.17g', np), 'nn', string.format('%.17g', nn), 'sl', string.format('%.17g', sl))
local loc = {}
if ARGV[9] == '1' then
  local g = redis.call('HMGET', KEYS[6], 'lt', 'lw', 'la', 'lo', 'lr2')
  local lt = tonumber(g[1]) or now
  local lw, la, lo, lr2 = tonumber(g[2]) or 0, tonumber(g[3]) or 0, tonumber(g[4]) or 0, tonumber(g[5]) or 0
  local gi = 1
  if now > lt then
    local f = math.exp(-(now - lt) / tau)
    lw, la, lo, lr2, lt = lw * f, la * f, lo * f, lr2 * f, now
  else
    gi = math.exp(-(lt - now) / tau)
  end
  local lat, lon = tonumber(ARGV[10]), tonumber(ARGV[11])
  local d2 = 0
  if lw > 0 then
    loc = {lw, la / lw, lo / lw, lr2 / lw}
    local x = math.rad(lon - lo / lw) * math.cos(math.rad((lat + la / lw) / 2))
    local y = math.rad(lat - la / lw)
    d2 = (6371.0088 * 6371.0088) * (x * x + y * y)
  end
  -- Far outliers (another city) count for little in the radius: capped at 50 km.
  d2 = math.min(d2, 2500)
  redis.call('HSET', KEYS[6], 'lt', lt, 'lw', string.format('%.17g', lw + gi), 'la', string.format('%.17g', la + gi * lat), 'lo', string.format('%.17g', lo + gi * lon), 'lr2', string.format('%.17g', lr2 + gi * d2))
end
redis.call('PEXPIRE', KEYS[6], memory)
-- Distinct accounts paying with a young band (a wallet or band set up days ago), against distinct accounts.
redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', now - ${WINDOWS_MS['7d']})
if ARGV[12] == '1' then
  redis.call('ZADD', KEYS[7], 'GT', now, ARGV[3])
  redis.call('PEXPIRE', KEYS[7], ${WINDOWS_MS['7d'] + WINDOWS_MS['1h']})
end
local young = {redis.call('ZCOUNT', KEYS[7], '(' .. (now - ${WINDOWS_MS['24h']}), '+inf'), redis.call('ZCOUNT', KEYS[7], '(' .. (now - ${WINDOWS_MS['7d']}), '+inf'), redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['24h']}), '+inf'), redis.call('ZCOUNT', KEYS[3], '(' .. (now - ${WINDOWS_MS['7d']}), '+inf')}
local encoded = cjson.encode({c = c, a1 = accounts1h, nw = nw, st = stopped[1], bs = base, gl = loc, yg = young})
redis.call('SET', KEYS[1], encoded, 'PX', ARGV[4])
return {encoded, 0}
`;

// Equirectangular distance in km: the area is one city wide, where it is as good as haversine.
const KM_FN = `
local function km(lat1, lon1, lat2, lon2)
  local x = math.rad(lon2 - lon1) * math.cos(math.rad((lat1 + lat2) / 2))
  local y = math.rad(lat2 - lat1)
  return 6371.0088 * math.sqrt(x * x + y * y)
end
local function decayTo(ar, t, tau)
  if not ar[1] then return {t, 0, 0, 0, 0} end
  local t0, w, sla, slo, sr2 = tonumber(ar[1]), tonumber(ar[2]), tonumber(ar[3]), tonumber(ar[4]), tonumber(ar[5])
  if t <= t0 then return {t0, w, sla, slo, sr2} end
  local f = math.exp(-(t - t0) / tau)
  return {t, w * f, sla * f, slo * f, sr2 * f}
end
local function saveArea(key, a, ttl)
  redis.call('HSET', key, 't', a[1], 'w', string.format('%.17g', a[2]), 'sla', string.format('%.17g', a[3]), 'slo', string.format('%.17g', a[4]), 'sr2', string.format('%.17g', a[5]))
  redis.call('PEXPIRE', key, ttl)
end
`;

// KEYS: learned, learned-at, profile, area (all on the account's tag).
// ARGV: payment id, amount, currency, has location, lat, lon, at ms, area tau ms, profile ttl ms, keep ms.
// Once per payment: an approved payment joins the amount statistics (Welford) and the usual area
// (decayed sums; a payment older than the area's last update joins with its weight decayed to that
// time, so late taps weigh what they would have). Returns 1 when learned, 0 when it already was.
const SETTLE_ACCOUNT = `${KM_FN}
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return 0 end
local at = tonumber(ARGV[7])
local tau = tonumber(ARGV[8])
local ttl = tonumber(ARGV[9])
local currency = ARGV[3]
local x = tonumber(ARGV[2])
local p = redis.call('HMGET', KEYS[3], 'n:' .. currency, 'mean:' .. currency, 'm2:' .. currency)
local n = p[1] and tonumber(p[1]) or 0
local mean = p[2] and tonumber(p[2]) or 0
local m2 = p[3] and tonumber(p[3]) or 0
local n1 = n + 1
local delta = x - mean
local mean1 = mean + delta / n1
local m21 = m2 + delta * (x - mean1)
redis.call('HSET', KEYS[3], 'n:' .. currency, n1, 'mean:' .. currency, string.format('%.17g', mean1), 'm2:' .. currency, string.format('%.17g', m21))
redis.call('PEXPIRE', KEYS[3], ttl)
local d2 = 0
if ARGV[4] == '1' then
  local lat, lon = tonumber(ARGV[5]), tonumber(ARGV[6])
  local a = decayTo(redis.call('HMGET', KEYS[4], 't', 'w', 'sla', 'slo', 'sr2'), at, tau)
  local wi = math.exp(-(a[1] - at) / tau)
  if a[2] > 0 then
    local d = km(a[3] / a[2], a[4] / a[2], lat, lon)
    d2 = d * d
  end
  a[2] = a[2] + wi
  a[3] = a[3] + wi * lat
  a[4] = a[4] + wi * lon
  a[5] = a[5] + wi * d2
  saveArea(KEYS[4], a, ttl)
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. '|' .. currency .. '|' .. ARGV[4] .. '|' .. ARGV[5] .. '|' .. ARGV[6] .. '|' .. at .. '|' .. string.format('%.17g', d2))
redis.call('ZADD', KEYS[2], at, ARGV[1])
local keep = tonumber(ARGV[10])
local old = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', at - keep)
for i = 1, #old do redis.call('HDEL', KEYS[1], old[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', at - keep)
redis.call('PEXPIRE', KEYS[1], keep)
redis.call('PEXPIRE', KEYS[2], keep)
return 1
`;

// KEYS: learned, profile, area. ARGV: payment id, now ms, area tau ms, profile ttl ms.
// Takes a learned payment back out of the baselines (a FRAUD label): Welford's step reversed,
// and its area weight as decayed to now subtracted. Leaves "x" so it is never learned or
// unlearned again. Returns 1 when removed, 0 when there was nothing (not learned, or already out).
const UNLEARN_ACCOUNT = `${KM_FN}
local rec = redis.call('HGET', KEYS[1], ARGV[1])
if not rec then
  redis.call('HSET', KEYS[1], ARGV[1], 'x')
  return 0
end
if rec == 'x' then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], 'x')
local _, _, sx, currency, hasLoc, slat, slon, sat, sd2 = string.find(rec, '^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$')
local x, lat, lon, at, d2 = tonumber(sx), tonumber(slat), tonumber(slon), tonumber(sat), tonumber(sd2)
local p = redis.call('HMGET', KEYS[2], 'n:' .. currency, 'mean:' .. currency, 'm2:' .. currency)
local n = p[1] and tonumber(p[1]) or 0
local mean = p[2] and tonumber(p[2]) or 0
local m2 = p[3] and tonumber(p[3]) or 0
if n <= 1 then
  redis.call('HDEL', KEYS[2], 'n:' .. currency, 'mean:' .. currency, 'm2:' .. currency)
else
  local n0 = n - 1
  local mean0 = (n * mean - x) / n0
  local m20 = math.max(0, m2 - (x - mean0) * (x - mean))
  redis.call('HSET', KEYS[2], 'n:' .. currency, n0, 'mean:' .. currency, string.format('%.17g', mean0), 'm2:' .. currency, string.format('%.17g', m20))
end
if hasLoc == '1' then
  local tau = tonumber(ARGV[3])
  local a = decayTo(redis.call('HMGET', KEYS[3], 't', 'w', 'sla', 'slo', 'sr2'), tonumber(ARGV[2]), tau)
  local wi = math.exp(-(a[1] - at) / tau)
  a[2] = math.max(0, a[2] - wi)
  a[3] = a[3] - wi * lat
  a[4] = a[4] - wi * lon
  a[5] = math.max(0, a[5] - wi * d2)
  if a[2] < 1e-9 then redis.call('DEL', KEYS[3]) else saveArea(KEYS[3], a, tonumber(ARGV[4])) end
end
return 1
`;

// KEYS: the merchant's stopped ZSET. ARGV: payment id, at ms. Idempotent per payment.
const MARK_STOPPED = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - ${WINDOWS_MS['24h']})
redis.call('PEXPIRE', KEYS[1], ${WINDOWS_MS['24h'] + WINDOWS_MS['1h']})
return 1
`;

type Triple = [number, number, number, number, number, number];

interface DeviceSnap {
  at: number;
  w: Triple;
  b: 0 | 1;
  tb: 0 | 1;
  rf: number;
  /** The band's limits ('' = none of that kind); absent without limits and in older snapshots. */
  lm?: { pp: string; ppc: string; pd: string; pdc: string; fz: string };
  /** Approved spend today in the payment's currency; absent in older snapshots. */
  st?: number;
  /** Small payments in 24 h and 7 d; token payments in 1 h and 24 h (absent without a token id). */
  sm?: [number, number];
  tk?: [number, number];
}

interface MerchantSnap {
  /** Payments in 1 h and 24 h, distinct accounts in 1 h, new accounts' payments in 1 h and 24 h, stopped in 24 h. */
  c: [number, number];
  a1: number;
  nw: [number, number];
  st: number;
  /** Baseline before this payment: decayed payments, new-account payments, sum of ln(amount); first seen ms. */
  bs?: [number, number, number, number];
  /** The merchant's usual place before this payment: decayed weight, centre lat/lon, mean squared distance km² (cjson: {} when none). */
  gl?: number[] | Record<string, never>;
  /** Distinct accounts paying with a young band in 24 h and 7 d, and distinct accounts in 24 h and 7 d. */
  yg?: [number, number, number, number];
}

function bandLimits(lm: DeviceSnap['lm']): BandLimits | undefined {
  if (!lm) return undefined;
  const limit = (minor: string, currency: string) => (minor !== '' && currency !== '' ? { minor: Number(minor), currency } : undefined);
  return { perPayment: limit(lm.pp, lm.ppc), perDay: limit(lm.pd, lm.pdc), frozen: lm.fz === '1' };
}

interface AccountSnap {
  at: number;
  w: Triple;
  dc: number;
  m1h: number;
  first: 0 | 1;
  n: number;
  mean: number;
  m2: number;
  /** ZRANGEBYSCORE WITHSCORES rows: member, score, member, score…; cjson makes an empty one {}. */
  pl: string[] | Record<string, never>;
  m24?: number;
  m7?: number;
  sm?: [number, number];
  /** Small payments at merchants new to the account, 24 h and 7 d. */
  sn?: [number, number];
  b7?: number;
  bp7?: number;
  oba?: 0 | 1;
  /** The area's stored sums: t, w, sla, slo, sr2 (empty: none yet; cjson makes it {}). */
  ar?: number[] | Record<string, never>;
  /** When the account was first known (ms): its first payment or a band's pairing, the earlier. */
  bn?: number;
  /** This account at this merchant: payments in 10 min and 1 h, their same-currency sums (this one included). */
  am?: [number, number, number, number];
}

/** The area's decayed weight at `now` and its centre and mean squared radius. */
function area(ar: AccountSnap['ar'], now: number, tauMs: number): HistoryExtra['area'] {
  if (!Array.isArray(ar) || ar.length < 5) return undefined;
  const [t, w, sla, slo, sr2] = ar as [number, number, number, number, number];
  if (!(w > 0)) return undefined;
  return { weight: w * Math.exp(-Math.max(0, now - t) / tauMs), lat: sla / w, lon: slo / w, r2: sr2 / w };
}

function places(rows: AccountSnap['pl']): History['places'] {
  if (!Array.isArray(rows)) return [];
  const out: History['places'] = [];
  for (let i = 0; i + 1 < rows.length; i += 2) {
    const [, lat, lon] = rows[i]!.split('|');
    out.push({ at: Number(rows[i + 1]), lat: Number(lat), lon: Number(lon) });
  }
  return out;
}

/** The merchant's baseline before this payment, with its age; undefined in snapshots from before it existed. */
function merchantBaseline(bs: MerchantSnap['bs'], now: number): MerchantBaseline | undefined {
  if (!Array.isArray(bs) || bs.length < 4) return undefined;
  const [payments, newAccounts, sumLnAmount, firstSeen] = bs;
  return { payments, newAccounts, sumLnAmount, ageMs: Math.max(0, now - firstSeen), tauMs: MERCHANT_BASELINE_TAU_MS };
}

function merchantPlace(gl: MerchantSnap['gl']): { weight: number; lat: number; lon: number; r2: number } | undefined {
  if (!Array.isArray(gl) || gl.length < 4) return undefined;
  const [weight, lat, lon, r2] = gl as [number, number, number, number];
  return weight > 0 ? { weight, lat, lon, r2 } : undefined;
}

const stats = (w: Triple): WindowStats => ({ count1m: w[0], count1h: w[1], count24h: w[2], sum1m: w[3], sum1h: w[4], sum24h: w[5] });

export interface FeatureStoreLimits {
  dedupeMs: number;
  maxEvents: number;
  merchantMemoryMs: number;
  profileMs: number;
  /** The usual area's decay: a payment's weight halves every this many ms (default 30 days). */
  areaHalfLifeMs?: number;
  /** How long a learned payment can still be taken back out by a FRAUD label (the decision TTL). */
  learnedKeepMs?: number;
}

const DEFAULT_AREA_HALF_LIFE_MS = 30 * 86_400_000;
const DEFAULT_LEARNED_KEEP_MS = 30 * 86_400_000;

type ScriptResult = [string, number];

interface RiskRedis extends Redis {
  riskRecordDevice2(...keysAndArgv: Array<string | number>): Promise<ScriptResult>;
  riskRecordAccount4(...keysAndArgv: Array<string | number>): Promise<ScriptResult>;
  riskRecordMerchant3(...keysAndArgv: Array<string | number>): Promise<ScriptResult>;
  riskSettleAccount(...keysAndArgv: Array<string | number>): Promise<number>;
  riskUnlearnAccount(...keysAndArgv: Array<string | number>): Promise<number>;
  riskMarkStopped(...keysAndArgv: Array<string | number>): Promise<number>;
}

/** Records each scored payment once and returns the history it was scored against. */
export class FeatureStore {
  private readonly redis: RiskRedis;
  private readonly tauMs: number;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly limits: FeatureStoreLimits,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL once per connection. New names for the
    // changed scripts, so a connection shared with an older definition cannot run the wrong one.
    if (!('riskRecordAccount4' in redis)) {
      redis.defineCommand('riskRecordDevice2', { numberOfKeys: 9, lua: RECORD_DEVICE });
      redis.defineCommand('riskRecordAccount4', { numberOfKeys: 12, lua: RECORD_ACCOUNT });
      redis.defineCommand('riskRecordMerchant3', { numberOfKeys: 7, lua: RECORD_MERCHANT });
      redis.defineCommand('riskSettleAccount', { numberOfKeys: 4, lua: SETTLE_ACCOUNT });
      redis.defineCommand('riskUnlearnAccount', { numberOfKeys: 3, lua: UNLEARN_ACCOUNT });
      redis.defineCommand('riskMarkStopped', { numberOfKeys: 1, lua: MARK_STOPPED });
    }
    this.redis = redis as RiskRedis;
    this.tauMs = (limits.areaHalfLifeMs ?? DEFAULT_AREA_HALF_LIFE_MS) / Math.LN2;
  }

  deviceKey = (deviceId: string, ...rest: string[]) => taggedKey(this.prefix, 'risk-device', deviceId, ...rest);
  accountKey = (accountId: string, ...rest: string[]) => taggedKey(this.prefix, 'risk-account', accountId, ...rest);
  merchantKey = (merchantId: string, ...rest: string[]) => taggedKey(this.prefix, 'risk-merchant', merchantId, ...rest);
  learnedKey = (paymentId: string) => taggedKey(this.prefix, 'risk-learned', paymentId);

  /**
   * Counts the payment into its band's, account's and merchant's features (once per payment id)
   * at event time `now` and returns what was known when it was first recorded. `replayed` is true
   * when every marker existed.
   */
  async record(input: ScoreInput, now: number): Promise<{ history: History; replayed: boolean }> {
    const { limits } = this;
    const amount = String(input.amountMinor);
    const small = input.amountMinor <= SMALL_MINOR ? '1' : '0';
    const pairedAt = now - input.deviceAgeSeconds * 1000;
    const [device, account, merchant] = await Promise.all([
      this.redis.riskRecordDevice2(
        this.deviceKey(input.deviceId, 'seen', input.paymentId),
        this.deviceKey(input.deviceId, 'payments'),
        this.deviceKey(input.deviceId, 'status'),
        this.deviceKey(input.deviceId, 'token', input.tokenId),
        this.deviceKey(input.deviceId, 'refusals'),
        this.deviceKey(input.deviceId, 'limits'),
        this.deviceKey(input.deviceId, 'spend', utcDay(now)),
        this.deviceKey(input.deviceId, 'small'),
        this.deviceKey(input.deviceId, 'tok', input.tokenId),
        now,
        input.paymentId,
        amount,
        input.currency,
        limits.dedupeMs,
        limits.maxEvents,
        input.tokenId,
        small,
      ),
      this.redis.riskRecordAccount4(
        this.accountKey(input.accountId, 'seen', input.paymentId),
        this.accountKey(input.accountId, 'payments'),
        this.accountKey(input.accountId, 'merchants'),
        this.accountKey(input.accountId, 'profile'),
        this.accountKey(input.accountId, 'places'),
        this.accountKey(input.accountId, 'declines'),
        this.accountKey(input.accountId, 'small'),
        this.accountKey(input.accountId, 'bands'),
        this.accountKey(input.accountId, 'pairings'),
        this.accountKey(input.accountId, 'area'),
        this.accountKey(input.accountId, 'small-new'),
        this.accountKey(input.accountId, 'at', input.merchantId),
        now,
        input.paymentId,
        amount,
        input.currency,
        limits.dedupeMs,
        limits.maxEvents,
        input.merchantId,
        input.location ? '1' : '0',
        input.location ? String(input.location.lat) : '',
        input.location ? String(input.location.lon) : '',
        limits.merchantMemoryMs,
        limits.profileMs,
        small,
        input.deviceId,
        pairedAt,
      ),
      input.merchantId
        ? this.redis.riskRecordMerchant3(
            this.merchantKey(input.merchantId, 'seen', input.paymentId),
            this.merchantKey(input.merchantId, 'payments'),
            this.merchantKey(input.merchantId, 'accounts'),
            this.merchantKey(input.merchantId, 'new'),
            this.merchantKey(input.merchantId, 'stopped'),
            this.merchantKey(input.merchantId, 'base'),
            this.merchantKey(input.merchantId, 'young'),
            now,
            input.paymentId,
            input.accountId,
            limits.dedupeMs,
            limits.maxEvents,
            limits.merchantMemoryMs,
            amount,
            MERCHANT_BASELINE_TAU_MS,
            input.location ? '1' : '0',
            input.location ? String(input.location.lat) : '',
            input.location ? String(input.location.lon) : '',
            input.deviceAgeSeconds * 1000 < YOUNG_BAND_MS ? '1' : '0',
          )
        : undefined,
    ]);
    const d = JSON.parse(device[0]) as DeviceSnap;
    const a = JSON.parse(account[0]) as AccountSnap;
    const m = merchant ? (JSON.parse(merchant[0]) as MerchantSnap) : undefined;
    return {
      replayed: device[1] === 1 && account[1] === 1 && (!merchant || merchant[1] === 1),
      history: {
        at: a.at,
        device: stats(d.w),
        account: stats(a.w),
        merchants1h: a.m1h,
        merchantFirst: a.first === 1,
        amountN: a.n,
        amountMean: a.mean,
        amountM2: a.m2,
        places: places(a.pl),
        deviceBlocked: d.b === 1,
        tokenBlocked: d.tb === 1,
        refusals1h: d.rf,
        declines1h: a.dc,
        limits: bandLimits(d.lm),
        spendToday: d.st ?? 0,
        extra: {
          deviceSmall24h: d.sm?.[0] ?? 0,
          deviceSmall7d: d.sm?.[1] ?? 0,
          accountSmall24h: a.sm?.[0] ?? 0,
          accountSmall7d: a.sm?.[1] ?? 0,
          accountSmallNew24h: a.sn?.[0] ?? 0,
          accountSmallNew7d: a.sn?.[1] ?? 0,
          merchants24h: a.m24 ?? 0,
          merchants7d: a.m7 ?? 0,
          token1h: d.tk?.[0] ?? 0,
          token24h: d.tk?.[1] ?? 0,
          bands7d: a.b7 ?? 0,
          bandsPaired7d: a.bp7 ?? 0,
          otherBandAfterPairing: a.oba === 1,
          area: area(a.ar, a.at, this.tauMs),
          merchant: m ? { count1h: m.c[0], count24h: m.c[1], accounts1h: m.a1, newAccounts1h: m.nw[0], newAccounts24h: m.nw[1], stopped24h: m.st, baseline: merchantBaseline(m.bs, a.at), place: merchantPlace(m.gl), young: m.yg ? { young24h: m.yg[0], young7d: m.yg[1], accounts24h: m.yg[2], accounts7d: m.yg[3] } : undefined } : undefined,
          accountBornAt: a.bn,
          atMerchant: a.am ? { count10m: a.am[0], count1h: a.am[1], sum10m: a.am[2], sum1h: a.am[3] } : undefined,
        },
      },
    };
  }

  /**
   * After the decision: an APPROVED payment teaches the account's baselines (amount statistics,
   * usual area), once per payment; a challenged or declined one counts against its merchant.
   * Challenged payments the owner then confirms are not learned: the baseline stays conservative.
   */
  async settle(input: ScoreInput, at: number, decision: DecisionName): Promise<void> {
    if (decision !== 'APPROVE') {
      if (input.merchantId) await this.redis.riskMarkStopped(this.merchantKey(input.merchantId, 'stopped'), input.paymentId, at);
      return;
    }
    const keep = this.limits.learnedKeepMs ?? DEFAULT_LEARNED_KEEP_MS;
    await Promise.all([
      this.redis.riskSettleAccount(
        this.accountKey(input.accountId, 'learned'),
        this.accountKey(input.accountId, 'learned-at'),
        this.accountKey(input.accountId, 'profile'),
        this.accountKey(input.accountId, 'area'),
        input.paymentId,
        String(input.amountMinor),
        input.currency,
        input.location ? '1' : '0',
        input.location ? String(input.location.lat) : '0',
        input.location ? String(input.location.lon) : '0',
        at,
        this.tauMs,
        this.limits.profileMs,
        keep,
      ),
      // Where a later FRAUD label finds the account this payment taught (its own slot).
      this.redis.set(this.learnedKey(input.paymentId), input.accountId, 'PX', keep),
    ]);
  }

  /** A FRAUD label: takes the payment back out of its account's baselines. True when it had been learned. */
  async unlearn(paymentId: string, now: number): Promise<boolean> {
    const accountId = await this.redis.get(this.learnedKey(paymentId));
    if (!accountId) return false;
    const removed = await this.redis.riskUnlearnAccount(
      this.accountKey(accountId, 'learned'),
      this.accountKey(accountId, 'profile'),
      this.accountKey(accountId, 'area'),
      paymentId,
      now,
      this.tauMs,
      this.limits.profileMs,
    );
    return removed === 1;
  }
}
