import type Redis from 'ioredis';
import { taggedKey } from '../../../platform/redis';
import { utcDay, type BandLimits } from './domain/band-limits';

// KEYS: status hash. ARGV: status, at ms, ttl ms. An event older than the one applied is ignored,
// so a redelivered or reordered suspend cannot undo a later resume.
const SET_STATUS = `
local prev = redis.call('HGET', KEYS[1], 'at')
if prev and tonumber(prev) > tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], 'status', ARGV[1], 'at', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// KEYS: zset. ARGV: member, at ms, window ms. Idempotent: the member is the event or payment id.
const ADD_EVENT = `
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[2]) - tonumber(ARGV[3]))
if redis.call('ZCARD', KEYS[1]) > 1000 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, -1001) end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
`;

// KEYS: limits hash. ARGV: event id, version, pp, ppc, pd, pdc, frozen, event at ms, applied at ms, ttl ms.
// Versions are non-negative decimal strings (int64 from settlement), compared by length then
// digits so no precision is lost above 2^53. Only a strictly newer version replaces what is
// stored: a redelivered event, an older one arriving late, or a second event with the same
// version all leave the stored limits (and their applied_at) as they are.
const SET_LIMITS = `
local function newer(a, b)
  if #a ~= #b then return #a > #b end
  return a > b
end
if redis.call('HGET', KEYS[1], 'event') == ARGV[1] then return 'duplicate' end
local prev = redis.call('HGET', KEYS[1], 'version')
if prev and not newer(ARGV[2], prev) then return 'stale' end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'event', ARGV[1], 'version', ARGV[2], 'pp', ARGV[3], 'ppc', ARGV[4], 'pd', ARGV[5], 'pdc', ARGV[6], 'frozen', ARGV[7], 'at', ARGV[8], 'applied_at', ARGV[9])
redis.call('PEXPIRE', KEYS[1], ARGV[10])
return 'applied'
`;

// KEYS: the band's spend hash of one UTC day. ARGV: payment id, "<amount>|<currency>", ttl ms.
// Idempotent per payment id: a redelivered payment.authorized is counted once.
const ADD_SPEND = `
local added = redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return added
`;

const STATUS_TTL_MS = 400 * 86_400_000;
const EVENT_WINDOW_MS = 86_400_000;
/** A day's spend is read only during that UTC day; two days covers clock skew between services. */
const SPEND_TTL_MS = 2 * 86_400_000;

interface SignalRedis extends Redis {
  riskSetStatus(key: string, status: string, at: number, ttlMs: number): Promise<number>;
  riskAddEvent(key: string, member: string, at: number, windowMs: number): Promise<number>;
  riskSetLimits(key: string, ...argv: Array<string | number>): Promise<LimitsApplied>;
  riskAddSpend(key: string, paymentId: string, amount: string, ttlMs: number): Promise<number>;
}

/** What a payment.limits.changed did: stored, or ignored as a copy or an older version. */
export type LimitsApplied = 'applied' | 'duplicate' | 'stale';

/** One limits change as the signal store keeps it. */
export interface LimitsChange extends BandLimits {
  eventId: string;
  /** Settlement's version of the band's limits; only a higher one replaces what is stored. */
  version: bigint;
  /** When settlement made the change (ms). */
  at: number;
}

/**
 * What risk learns from other services' events, written where the feature scripts read it (the
 * band's and account's hash tags; see feature-store.ts for the key layout).
 */
export class SignalStore {
  private readonly redis: SignalRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
  ) {
    if (!('riskSetStatus' in redis)) {
      redis.defineCommand('riskSetStatus', { numberOfKeys: 1, lua: SET_STATUS });
      redis.defineCommand('riskAddEvent', { numberOfKeys: 1, lua: ADD_EVENT });
      redis.defineCommand('riskSetLimits', { numberOfKeys: 1, lua: SET_LIMITS });
      redis.defineCommand('riskAddSpend', { numberOfKeys: 1, lua: ADD_SPEND });
    }
    this.redis = redis as SignalRedis;
  }

  /** The band's lifecycle status (ACTIVE, SUSPENDED, LOST, DEREGISTERED); false when an newer one is already applied. */
  async deviceStatus(deviceId: string, status: string, at: number): Promise<boolean> {
    return (await this.redis.riskSetStatus(taggedKey(this.prefix, 'risk-device', deviceId, 'status'), status, at, STATUS_TTL_MS)) === 1;
  }

  /** The token's lifecycle status (ACTIVE, SUSPENDED, DELETED), kept under its band's tag. */
  async tokenStatus(deviceId: string, tokenId: string, status: string, at: number): Promise<boolean> {
    return (await this.redis.riskSetStatus(taggedKey(this.prefix, 'risk-device', deviceId, 'token', tokenId), status, at, STATUS_TTL_MS)) === 1;
  }

  /** A payment tokenization refused for this band (bad cryptogram, replayed ATC, blocked token). */
  async refusal(deviceId: string, eventId: string, at: number): Promise<void> {
    await this.redis.riskAddEvent(taggedKey(this.prefix, 'risk-device', deviceId, 'refusals'), eventId, at, EVENT_WINDOW_MS);
  }

  /** A band paired to this account (device.paired): the earliest pairing time of a band is kept, 30 days. */
  async pairing(accountId: string, deviceId: string, at: number): Promise<void> {
    const key = taggedKey(this.prefix, 'risk-account', accountId, 'pairings');
    await this.redis.multi().zadd(key, 'LT', at, deviceId).pexpire(key, 31 * 86_400_000).exec();
  }

  /** A payment the gateway declined for this account. */
  async decline(accountId: string, paymentId: string, at: number): Promise<void> {
    await this.redis.riskAddEvent(taggedKey(this.prefix, 'risk-account', accountId, 'declines'), paymentId, at, EVENT_WINDOW_MS);
  }

  /** The band's limits after a change; ignored unless its version is newer than the stored one. */
  async bandLimits(deviceId: string, change: LimitsChange, appliedAt: number): Promise<LimitsApplied> {
    if (change.version < 0n) throw new RangeError('limits version must not be negative');
    const { perPayment: pp, perDay: pd } = change;
    return this.redis.riskSetLimits(
      taggedKey(this.prefix, 'risk-device', deviceId, 'limits'),
      change.eventId,
      change.version.toString(),
      pp ? String(pp.minor) : '',
      pp?.currency ?? '',
      pd ? String(pd.minor) : '',
      pd?.currency ?? '',
      change.frozen ? '1' : '0',
      change.at,
      appliedAt,
      STATUS_TTL_MS,
    );
  }

  /** An approved payment of this band, counted into the spend of the UTC day it was approved on (once per payment id). */
  async spend(deviceId: string, paymentId: string, amountMinor: number, currency: string, at: number): Promise<boolean> {
    return (await this.redis.riskAddSpend(taggedKey(this.prefix, 'risk-device', deviceId, 'spend', utcDay(at)), paymentId, `${amountMinor}|${currency}`, SPEND_TTL_MS)) === 1;
  }
}
