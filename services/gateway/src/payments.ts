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

/**
 * The gateway keeps nothing durable of its own: payment records and idempotent answers live in
 * Redis with a TTL. Money safety does not depend on them — downstream calls carry idempotency
 * keys derived from the payment id — they make a retried Authorize return the first answer.
 */
export class PaymentRecords {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlSeconds: number,
    private readonly inFlightSeconds = 30,
  ) {}

  private idemKey = (merchantId: string, key: string) => taggedKey(this.prefix, 'authorize', merchantId, key);
  private paymentKey = (paymentId: string) => taggedKey(this.prefix, 'payment', paymentId);

  /**
   * Claims (merchant, idempotency key) for a new payment id, or returns the stored answer of
   * the first attempt. The same key with a different request is refused.
   */
  async claim(request: AuthorizeRequest, newPaymentId: string): Promise<Claim> {
    if (!request.idempotencyKey || request.idempotencyKey.length > 200) throw new InvalidArgument('idempotency_key is required (1-200 characters)');
    const hash = createHash('sha256').update(AuthorizeRequest.encode(request).finish()).digest('base64');
    const key = this.idemKey(request.merchantId, request.idempotencyKey);
    const claimed = await this.redis.set(key, JSON.stringify({ hash, paymentId: newPaymentId }), 'EX', this.inFlightSeconds, 'NX');
    if (claimed) return { kind: 'new', paymentId: newPaymentId };
    const stored = await this.redis.get(key);
    if (!stored) throw new AttemptInProgress();
    const first = JSON.parse(stored) as { hash: string; paymentId: string; response?: string };
    if (first.hash !== hash) throw new IdempotencyKeyReused();
    if (!first.response) throw new AttemptInProgress();
    return { kind: 'done', response: AuthorizeResponse.decode(Buffer.from(first.response, 'base64')) };
  }

  /** Stores the payment and the answer for its idempotency key, in one round trip. */
  async complete(request: AuthorizeRequest, payment: Payment, response: AuthorizeResponse): Promise<void> {
    const hash = createHash('sha256').update(AuthorizeRequest.encode(request).finish()).digest('base64');
    const answer = JSON.stringify({ hash, paymentId: payment.paymentId, response: Buffer.from(AuthorizeResponse.encode(response).finish()).toString('base64') });
    await this.redis
      .multi()
      .set(this.idemKey(request.merchantId, request.idempotencyKey), answer, 'EX', this.ttlSeconds)
      .set(this.paymentKey(payment.paymentId), Buffer.from(Payment.encode(payment).finish()).toString('base64'), 'EX', this.ttlSeconds)
      .exec();
  }

  /** Lets a failed attempt be retried under the same key. */
  async release(request: AuthorizeRequest): Promise<void> {
    await this.redis.del(this.idemKey(request.merchantId, request.idempotencyKey));
  }

  async get(paymentId: string): Promise<Payment | undefined> {
    const stored = await this.redis.get(this.paymentKey(paymentId));
    return stored ? Payment.decode(Buffer.from(stored, 'base64')) : undefined;
  }

  async save(payment: Payment): Promise<void> {
    await this.redis.set(this.paymentKey(payment.paymentId), Buffer.from(Payment.encode(payment).finish()).toString('base64'), 'EX', this.ttlSeconds);
  }
}
