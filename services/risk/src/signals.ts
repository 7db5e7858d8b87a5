import type Redis from 'ioredis';
import { taggedKey } from '../../../platform/redis';

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

const STATUS_TTL_MS = 400 * 86_400_000;
const EVENT_WINDOW_MS = 86_400_000;

interface SignalRedis extends Redis {
  riskSetStatus(key: string, status: string, at: number, ttlMs: number): Promise<number>;
  riskAddEvent(key: string, member: string, at: number, windowMs: number): Promise<number>;
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

  /** A payment the gateway declined for this account. */
  async decline(accountId: string, paymentId: string, at: number): Promise<void> {
    await this.redis.riskAddEvent(taggedKey(this.prefix, 'risk-account', accountId, 'declines'), paymentId, at, EVENT_WINDOW_MS);
  }
}
