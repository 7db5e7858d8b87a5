import { randomBytes, randomUUID } from 'node:crypto';
import type Redis from 'ioredis';
import { FailedPrecondition, Unavailable } from '../../../platform/errors';
import { taggedKey } from '../../../platform/redis';

export type ChallengePurpose = 'PAIRING' | 'SESSION';

export interface LiveSession {
  sessionId: string;
  unlockMethod: number;
  startedAt: Date;
  lastHeartbeatAt: Date;
  expiresAt: Date;
}

export class ChallengeUnusable extends FailedPrecondition {
  constructor() {
    super('challenge expired, already used, or issued for another purpose; ask for a new one');
  }
}

export class SessionNotLive extends FailedPrecondition {
  constructor() {
    super('no live session with that id for this band; start a new session');
  }
}

// Sliding TTL capped by the session's maximum age, in one atomic step so a heartbeat racing an
// EndSession can never resurrect the session. KEYS[1] session hash; ARGV: session id, now ms, ttl ms.
const HEARTBEAT = `
local id = redis.call('HGET', KEYS[1], 'session_id')
if id ~= ARGV[1] then return nil end
local maxAt = tonumber(redis.call('HGET', KEYS[1], 'max_expires_at'))
local expiresAt = math.min(tonumber(ARGV[2]) + tonumber(ARGV[3]), maxAt)
if expiresAt <= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) return nil end
redis.call('HSET', KEYS[1], 'last_heartbeat_at', ARGV[2], 'expires_at', expiresAt)
redis.call('PEXPIREAT', KEYS[1], expiresAt)
return expiresAt
`;

/**
 * Challenges and live band sessions in Redis. Everything fails closed: a missing key, a Redis
 * that lost its data, or a Redis that is down all mean "not live", never "live".
 */
export class SessionStore {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttl: { challengeMs: number; sessionMs: number; maxAgeMs: number },
  ) {}

  private challengeKey = (deviceId: string, challengeId: string) => taggedKey(this.prefix, 'challenge', deviceId, challengeId);
  private sessionKey = (deviceId: string) => taggedKey(this.prefix, 'session', deviceId);

  async createChallenge(deviceId: string, purpose: ChallengePurpose): Promise<{ challengeId: string; nonce: Buffer; expiresAt: Date }> {
    const challengeId = randomUUID();
    const nonce = randomBytes(32);
    await this.guard(() => this.redis.set(this.challengeKey(deviceId, challengeId), `${purpose}:${nonce.toString('base64')}`, 'PX', this.ttl.challengeMs));
    return { challengeId, nonce, expiresAt: new Date(Date.now() + this.ttl.challengeMs) };
  }

  /** Takes the challenge out of Redis (GETDEL: a nonce can be presented once, right or wrong). */
  async consumeChallenge(deviceId: string, challengeId: string, purpose: ChallengePurpose): Promise<Buffer> {
    const stored = await this.guard(() => this.redis.getdel(this.challengeKey(deviceId, challengeId)));
    if (!stored) throw new ChallengeUnusable();
    const [storedPurpose, nonce] = stored.split(':');
    if (storedPurpose !== purpose || !nonce) throw new ChallengeUnusable();
    return Buffer.from(nonce, 'base64');
  }

  /**
   * Replaces any session of this band with a new one, atomically; returns the new session and the
   * one it replaced, if any (so its end can be announced).
   */
  async start(deviceId: string, unlockMethod: number, now = Date.now()): Promise<{ session: LiveSession; replaced?: LiveSession }> {
    const sessionId = randomUUID();
    const maxAt = now + this.ttl.maxAgeMs;
    const expiresAt = Math.min(now + this.ttl.sessionMs, maxAt);
    const key = this.sessionKey(deviceId);
    const results = await this.guard(() =>
      this.redis
        .multi()
        .hgetall(key)
        .del(key)
        .hset(key, { session_id: sessionId, unlock_method: unlockMethod, started_at: now, last_heartbeat_at: now, expires_at: expiresAt, max_expires_at: maxAt })
        .pexpireat(key, expiresAt)
        .exec(),
    );
    const previous = (results?.[0]?.[1] ?? {}) as Record<string, string>;
    const session = { sessionId, unlockMethod, startedAt: new Date(now), lastHeartbeatAt: new Date(now), expiresAt: new Date(expiresAt) };
    return previous.session_id ? { session, replaced: fromHash(previous) } : { session };
  }

  async heartbeat(deviceId: string, sessionId: string, now = Date.now()): Promise<LiveSession> {
    const expiresAt = await this.guard(() => this.redis.eval(HEARTBEAT, 1, this.sessionKey(deviceId), sessionId, now, this.ttl.sessionMs));
    if (expiresAt === null) throw new SessionNotLive();
    const live = await this.get(deviceId);
    if (!live) throw new SessionNotLive();
    return live;
  }

  /**
   * Ends the band's session now and returns the session it ended (undefined when there was none).
   * Read and delete are one MULTI, so of two racing calls exactly one gets the session back and
   * publishes its device.session.ended.
   */
  async end(deviceId: string): Promise<LiveSession | undefined> {
    const key = this.sessionKey(deviceId);
    const replies = await this.guard(() => this.redis.multi().hgetall(key).del(key).exec());
    const [err, h] = replies?.[0] ?? [null, {}];
    if (err) throw new Unavailable('session store (Redis) is unavailable; the band is treated as not live');
    return toLive(h as Record<string, string>);
  }

  async get(deviceId: string): Promise<LiveSession | undefined> {
    const h = await this.guard(() => this.redis.hgetall(this.sessionKey(deviceId)));
    return h.session_id ? fromHash(h) : undefined;
  }


  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch {
      throw new Unavailable('session store (Redis) is unavailable; the band is treated as not live');
    }
  }
}

function toLive(h: Record<string, string>): LiveSession | undefined {
  if (!h.session_id) return undefined;
  return {
    sessionId: h.session_id,
    unlockMethod: Number(h.unlock_method),
    startedAt: new Date(Number(h.started_at)),
    lastHeartbeatAt: new Date(Number(h.last_heartbeat_at)),
    expiresAt: new Date(Number(h.expires_at)),
  };
}

function fromHash(h: Record<string, string>): LiveSession {
  return {
    sessionId: h.session_id!,
    unlockMethod: Number(h.unlock_method),
    startedAt: new Date(Number(h.started_at)),
    lastHeartbeatAt: new Date(Number(h.last_heartbeat_at)),
    expiresAt: new Date(Number(h.expires_at)),
  };
}
