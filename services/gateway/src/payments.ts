import { createHash } from 'node:crypto';
import type Redis from 'ioredis';
import { AuthorizeRequest, AuthorizeResponse, Payment } from '../../../gen/wristpay/gateway/v1/gateway';
import { IdempotencyKeyReused, InvalidArgument, Unavailable } from '../../../platform/errors';
import { taggedKey } from '../../../platform/redis';

/** A retry arrived while the first attempt with the same key is still running. */
export class AttemptInProgress extends Unavailable {
  constructor() {
    super('a payment with this idempotency key is still being processed; retry shortly');
  }
}

type Claim = { kind: 'new'; paymentId: string } | { kind: 'done'; response: AuthorizeResponse };

/*
 * <p>:authorize:{merchant}:<key>  JSON {hash, paymentId, leaseUntil (ms)}: an attempt running or failed
 *                                 JSON {hash, paymentId, response (base64)}: the first answer
 * Kept PAYMENT_RECORD_TTL_SECONDS either way, so a retry of a failed attempt keeps its payment id.
 */

// KEYS: the idempotency record. ARGV: request hash, payment id if new, now (ms), lease (ms), ttl (s).
// Returns {'new', paymentId} (this attempt runs), {'done', response}, {'busy'} or {'reused'}.
// A failed attempt's record stays with leaseUntil 0, so the next attempt takes it over with the
// same payment id; an attempt whose process died is taken over once its lease has run out.
const CLAIM = `
local stored = redis.call('GET', KEYS[1])
local record
if stored then
  record = cjson.decode(stored)
  if record.hash ~= ARGV[1] then return {'reused'} end
  if record.response then return {'done', record.response} end
  if tonumber(record.leaseUntil) > tonumber(ARGV[3]) then return {'busy'} end
else
  record = {hash = ARGV[1], paymentId = ARGV[2]}
end
record.leaseUntil = tonumber(ARGV[3]) + tonumber(ARGV[4])
redis.call('SET', KEYS[1], cjson.encode(record), 'EX', ARGV[5])
return {'new', record.paymentId}
`;

// KEYS: the idempotency record. ARGV: request hash, payment id, ttl (s). Ends the lease of an
// unanswered attempt; never touches an answer: an attempt taken over after its lease may fail
// late, after the take-over has completed, and must not erase the answer the client was given.
const RELEASE = `
local stored = redis.call('GET', KEYS[1])
if not stored then return 0 end
local record = cjson.decode(stored)
if record.response or record.hash ~= ARGV[1] or record.paymentId ~= ARGV[2] then return 0 end
record.leaseUntil = 0
redis.call('SET', KEYS[1], cjson.encode(record), 'EX', ARGV[3])
return 1
`;

interface ClaimRedis extends Redis {
  gatewayClaim(key: string, ...argv: Array<string | number>): Promise<[string, string?]>;
  gatewayRelease(key: string, ...argv: Array<string | number>): Promise<number>;
}

function requestHash(request: AuthorizeRequest): string {
  return createHash('sha256').update(AuthorizeRequest.encode(request).finish()).digest('base64');
}

/**
 * The gateway keeps nothing durable of its own: payment records and idempotent answers live in
 * Redis with a TTL. Money safety does not depend on them — downstream calls carry keys derived
 * from the payment id (VerifyPayment's payment id, PlaceHold's idempotency key) — they make a
 * retried Authorize return the first answer, and a retry after a failure reuse the payment id,
 * so its verification and hold are the first attempt's, not a replay or a second hold.
 */
export class PaymentRecords {
  private readonly redis: ClaimRedis;

  constructor(
    redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly leaseMs = 30_000,
    private readonly clock: () => number = Date.now,
  ) {
    this.redis = redis as ClaimRedis;
    if (!('gatewayClaim' in redis)) redis.defineCommand('gatewayClaim', { numberOfKeys: 1, lua: CLAIM });
    if (!('gatewayRelease' in redis)) redis.defineCommand('gatewayRelease', { numberOfKeys: 1, lua: RELEASE });
  }

  private idemKey = (merchantId: string, key: string) => taggedKey(this.prefix, 'authorize', merchantId, key);
  private paymentKey = (paymentId: string) => taggedKey(this.prefix, 'payment', paymentId);

  /**
   * Claims (merchant, idempotency key) for an attempt: with `newPaymentId` the first time, with
   * the first attempt's payment id after a failed one; or returns the first answer. The same key
   * with a different request is refused; a key whose attempt is still running is UNAVAILABLE.
   */
  async claim(request: AuthorizeRequest, newPaymentId: string): Promise<Claim> {
    if (!request.idempotencyKey || request.idempotencyKey.length > 200) throw new InvalidArgument('idempotency_key is required (1-200 characters)');
    const key = this.idemKey(request.merchantId, request.idempotencyKey);
    const [kind, value] = await this.redis.gatewayClaim(key, requestHash(request), newPaymentId, this.clock(), this.leaseMs, this.ttlSeconds);
    if (kind === 'reused') throw new IdempotencyKeyReused();
    if (kind === 'busy') throw new AttemptInProgress();
    if (kind === 'done') return { kind: 'done', response: AuthorizeResponse.decode(Buffer.from(value!, 'base64')) };
    return { kind: 'new', paymentId: value! };
  }

  /** Stores the payment and the answer for its idempotency key, in one round trip. */
  async complete(request: AuthorizeRequest, payment: Payment, response: AuthorizeResponse): Promise<void> {
    const answer = JSON.stringify({ hash: requestHash(request), paymentId: payment.paymentId, response: Buffer.from(AuthorizeResponse.encode(response).finish()).toString('base64') });
    await this.redis
      .multi()
      .set(this.idemKey(request.merchantId, request.idempotencyKey), answer, 'EX', this.ttlSeconds)
      .set(this.paymentKey(payment.paymentId), Buffer.from(Payment.encode(payment).finish()).toString('base64'), 'EX', this.ttlSeconds)
      .exec();
  }

  /**
   * Ends a failed attempt's lease: a retry under the same key runs again at once, with the same
   * payment id. A record that already holds an answer is left as it is.
   */
  async release(request: AuthorizeRequest, paymentId: string): Promise<void> {
    await this.redis.gatewayRelease(this.idemKey(request.merchantId, request.idempotencyKey), requestHash(request), paymentId, this.ttlSeconds);
  }

  async get(paymentId: string): Promise<Payment | undefined> {
    const stored = await this.redis.get(this.paymentKey(paymentId));
    return stored ? Payment.decode(Buffer.from(stored, 'base64')) : undefined;
  }

  async save(payment: Payment): Promise<void> {
    await this.redis.set(this.paymentKey(payment.paymentId), Buffer.from(Payment.encode(payment).finish()).toString('base64'), 'EX', this.ttlSeconds);
  }
}
