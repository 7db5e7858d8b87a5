import { Channel } from '../../../gen/wristpay/common/v1/common';
import type { Event, RiskScored, ScoredPayment } from '../../../gen/wristpay/events/v1/events';
import { newEvent } from '../../../platform/events';
import type { Logger } from '../../../platform/log';
import { BackgroundPublisher } from '../../../platform/background-publisher';
import type { EventBus } from '../../../platform/nats';
import type { Verdict } from './domain/decision';
import type { ScoreInput } from './domain/features';
import { SERVICE } from './config';

/** Stable ids: a rescored payment republishes under the same id, and JetStream drops the copy. */
export const scoredEventId = (paymentId: string) => `risk.scored.${paymentId}`;
export const alertEventId = (paymentId: string) => `risk.alert.${paymentId}`;

/** What risk.scored carries of the input, so the backtest can replay the payment (no token id: see the proto). */
export function toScoredPayment(input: ScoreInput): ScoredPayment {
  return {
    merchantId: input.merchantId,
    amount: { amountMinor: BigInt(input.amountMinor), currency: input.currency },
    location: input.location ? { latitude: input.location.lat, longitude: input.location.lon } : undefined,
    channel: input.channelQr ? Channel.CHANNEL_BAND_QR : Channel.CHANNEL_BAND_TAP,
    sessionLive: input.sessionLive,
    sessionAgeSeconds: BigInt(input.sessionAgeSeconds),
    deviceAgeSeconds: BigInt(input.deviceAgeSeconds),
    recentCryptogramFailures: input.cryptogramFailures,
  };
}

/** A payment to replay, taken back out of a risk.scored event: the input and the time it was scored. */
export interface ScoredEventInput {
  input: ScoreInput;
  scoredAt: number;
}

/**
 * The inverse of what {@link RiskEvents.publish} puts in risk.scored; undefined when the event
 * cannot be replayed (published before it carried the payment, or without a time or amount).
 * The token id is empty, as in the file-mode backtest.
 */
export function fromScoredEvent(event: Event): ScoredEventInput | undefined {
  if (event.payload?.$case !== 'risk' || !event.occurredAt) return undefined;
  const v: RiskScored = event.payload.value;
  const p = v.payment;
  if (!p?.amount) return undefined;
  return {
    scoredAt: event.occurredAt.getTime(),
    input: {
      paymentId: v.paymentId,
      accountId: v.accountId,
      deviceId: v.deviceId,
      tokenId: '',
      merchantId: p.merchantId,
      amountMinor: Number(p.amount.amountMinor),
      currency: p.amount.currency,
      location: p.location ? { lat: p.location.latitude, lon: p.location.longitude } : undefined,
      channelQr: p.channel === Channel.CHANNEL_BAND_QR,
      sessionLive: p.sessionLive,
      sessionAgeSeconds: Number(p.sessionAgeSeconds),
      deviceAgeSeconds: Number(p.deviceAgeSeconds),
      cryptogramFailures: p.recentCryptogramFailures,
    },
  };
}

/**
 * Publishes risk.scored for every decision and risk.alert for every DECLINE, stamped with the time
 * the payment was scored (the feature store's clock) and carrying its input, so the backtest can
 * replay what production scored. Publishing does not hold up the answer: the gateway must not
 * wait on, or fail because of, a JetStream ack; while NATS is down the events wait in memory and
 * go out when it is back (platform/background-publisher.ts). The publish span still joins the
 * Score trace. `drain()` waits for what is queued (shutdown, tests).
 */
export class RiskEvents {
  private readonly publisher: BackgroundPublisher;

  constructor(bus: EventBus, log: Logger) {
    this.publisher = new BackgroundPublisher(bus, log);
  }

  publish(input: ScoreInput, verdict: Verdict, scoredAt: Date): void {
    const value: RiskScored = {
      paymentId: input.paymentId,
      decision: verdict.decision,
      score: verdict.score,
      reasons: verdict.reasons.map((r) => r.code),
      rulesetVersion: verdict.rulesetVersion,
      modelVersion: verdict.modelVersion,
      accountId: input.accountId,
      deviceId: input.deviceId,
      payment: toScoredPayment(input),
    };
    const event = (type: string, id: string): Event => ({ ...newEvent(type, SERVICE, { $case: 'risk', value }, id), occurredAt: scoredAt });
    this.publisher.publish(event('risk.scored', scoredEventId(input.paymentId)));
    if (verdict.decision === 'DECLINE') this.publisher.publish(event('risk.alert', alertEventId(input.paymentId)));
  }

  /** Waits up to `timeoutMs` for the queued events to be acknowledged. */
  drain(timeoutMs = 5_000): Promise<void> {
    return this.publisher.drain(timeoutMs);
  }
}
