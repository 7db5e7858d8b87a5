import type Redis from 'ioredis';
import { taggedKey } from '../../../platform/redis';
import type { History, ScoreInput, WindowStats } from './domain/features';
import { WINDOWS_MS } from './domain/features';
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

local function record(key, now, member, maxEvents)
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - ${WINDOWS_MS['24h']})
  redis.call('ZADD', key, now, member)
  local card = redis.call('ZCARD', key)
  if card > maxEvents then redis.call('ZREMRANGEBYRANK', key, 0, card - maxEvents - 1) end
  redis.call('PEXPIRE', key, ${WINDOWS_MS['24h'] + WINDOWS_MS['1h']})
end
`;

// KEYS: seen marker, payments, band status, token status, refusals, limits, today's spend.
// ARGV: now, payment id, amount, currency, marker ttl ms, max events, token id ('' = none).
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
local snap = cjson.encode(snapshot)
redis.call('SET', KEYS[1], snap, 'PX', ARGV[5])
return {snap, 0}
`;

// KEYS: seen marker, payments, merchants, profile, places, declines.
// ARGV: now, payment id, amount, currency, marker ttl ms, max events, merchant ('' = none),
//       has location ('1'/'0'), lat, lon, merchant memory ms, profile ttl ms.
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

local p = redis.call('HMGET', KEYS[4], 'n:' .. currency, 'mean:' .. currency, 'm2:' .. currency)
local n = p[1] and tonumber(p[1]) or 0
local mean = p[2] and tonumber(p[2]) or 0
local m2 = p[3] and tonumber(p[3]) or 0
local x = tonumber(ARGV[3])
local n1 = n + 1
local delta = x - mean
local mean1 = mean + delta / n1
local m21 = m2 + delta * (x - mean1)
redis.call('HSET', KEYS[4], 'n:' .. currency, n1, 'mean:' .. currency, string.format('%.17g', mean1), 'm2:' .. currency, string.format('%.17g', m21))
redis.call('PEXPIRE', KEYS[4], ARGV[12])

redis.call('ZREMRANGEBYSCORE', KEYS[5], '-inf', now - ${WINDOWS_MS['24h']})
local places = redis.call('ZRANGEBYSCORE', KEYS[5], '(' .. (now - ${WINDOWS_MS['24h']}), '+inf', 'WITHSCORES')
if ARGV[8] == '1' then
  redis.call('ZADD', KEYS[5], now, ARGV[2] .. '|' .. ARGV[9] .. '|' .. ARGV[10])
  local card = redis.call('ZCARD', KEYS[5])
  if card > ${MAX_PLACES} then redis.call('ZREMRANGEBYRANK', KEYS[5], 0, card - ${MAX_PLACES} - 1) end
  redis.call('PEXPIRE', KEYS[5], ${WINDOWS_MS['24h'] + WINDOWS_MS['1h']})
end

local declines = redis.call('ZCOUNT', KEYS[6], '(' .. (now - ${WINDOWS_MS['1h']}), '+inf')
local encoded = cjson.encode({at = now, w = windows(KEYS[2], now, currency), m1h = merchants1h, first = first, n = n, mean = mean, m2 = m2, pl = places, dc = declines})
redis.call('SET', KEYS[1], encoded, 'PX', ARGV[5])
return {encoded, 0}
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

const stats = (w: Triple): WindowStats => ({ count1m: w[0], count1h: w[1], count24h: w[2], sum1m: w[3], sum1h: w[4], sum24h: w[5] });

export interface FeatureStoreLimits {
  dedupeMs: number;
  maxEvents: number;
  merchantMemoryMs: number;
  profileMs: number;
}

type ScriptResult = [string, number];

interface RiskRedis extends Redis {
  riskRecordDevice(k1: string, k2: string, k3: string, k4: string, k5: string, k6: string, k7: string, ...argv: Array<string | number>): Promise<ScriptResult>;
  riskRecordAccount(k1: string, k2: string, k3: string, k4: string, k5: string, k6: string, ...argv: Array<string | number>): Promise<ScriptResult>;
}

/** Records each scored payment once and returns the history it was scored against. */
export class FeatureStore {
  private readonly redis: RiskRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly limits: FeatureStoreLimits,
  ) {
    // defineCommand sends EVALSHA and falls back to EVAL once per connection.
    if (!('riskRecordDevice' in redis)) {
      redis.defineCommand('riskRecordDevice', { numberOfKeys: 7, lua: RECORD_DEVICE });
      redis.defineCommand('riskRecordAccount', { numberOfKeys: 6, lua: RECORD_ACCOUNT });
    }
    this.redis = redis as RiskRedis;
  }

  deviceKey = (deviceId: string, ...rest: string[]) => taggedKey(this.prefix, 'risk-device', deviceId, ...rest);
  accountKey = (accountId: string, ...rest: string[]) => taggedKey(this.prefix, 'risk-account', accountId, ...rest);

  /**
   * Counts the payment into its band's and account's features (once per payment id) and returns
   * what was known when it was first recorded. `replayed` is true when both markers existed.
   */
  async record(input: ScoreInput, now: number): Promise<{ history: History; replayed: boolean }> {
    const { limits } = this;
    const amount = String(input.amountMinor);
    const [device, account] = await Promise.all([
      this.redis.riskRecordDevice(
        this.deviceKey(input.deviceId, 'seen', input.paymentId),
        this.deviceKey(input.deviceId, 'payments'),
        this.deviceKey(input.deviceId, 'status'),
        this.deviceKey(input.deviceId, 'token', input.tokenId),
        this.deviceKey(input.deviceId, 'refusals'),
        this.deviceKey(input.deviceId, 'limits'),
        this.deviceKey(input.deviceId, 'spend', utcDay(now)),
        now,
        input.paymentId,
        amount,
        input.currency,
        limits.dedupeMs,
        limits.maxEvents,
        input.tokenId,
      ),
      this.redis.riskRecordAccount(
        this.accountKey(input.accountId, 'seen', input.paymentId),
        this.accountKey(input.accountId, 'payments'),
        this.accountKey(input.accountId, 'merchants'),
        this.accountKey(input.accountId, 'profile'),
        this.accountKey(input.accountId, 'places'),
        this.accountKey(input.accountId, 'declines'),
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
      ),
    ]);
    const d = JSON.parse(device[0]) as DeviceSnap;
    const a = JSON.parse(account[0]) as AccountSnap;
    return {
      replayed: device[1] === 1 && account[1] === 1,
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
      },
    };
  }
}
