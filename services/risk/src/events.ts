import { newEvent } from '../../../platform/events';
import type { Logger } from '../../../platform/log';
import type { EventBus } from '../../../platform/nats';
import type { Verdict } from './domain/decision';
import type { ScoreInput } from './domain/features';
import { SERVICE } from './config';

/** Stable ids: a rescored payment republishes under the same id, and JetStream drops the copy. */
export const scoredEventId = (paymentId: string) => `risk.scored.${paymentId}`;
export const alertEventId = (paymentId: string) => `risk.alert.${paymentId}`;

/**
 * Publishes risk.scored for every decision and risk.alert for every DECLINE. Publishing does not
 * hold up the answer: the gateway must not wait on, or fail because of, a JetStream ack. The
 * publish span still joins the Score trace (the context is taken when the publish starts).
 * `drain()` waits for publishes in flight (shutdown, tests).
 */
export class RiskEvents {
  private readonly pending = new Set<Promise<unknown>>();

  constructor(
    private readonly bus: EventBus,
    private readonly log: Logger,
  ) {}

  publish(input: Pick<ScoreInput, 'paymentId' | 'accountId' | 'deviceId'>, verdict: Verdict): void {
    const value = {
      paymentId: input.paymentId,
      decision: verdict.decision,
      score: verdict.score,
      reasons: verdict.reasons.map((r) => r.code),
      rulesetVersion: verdict.rulesetVersion,
      modelVersion: verdict.modelVersion,
      accountId: input.accountId,
      deviceId: input.deviceId,
    };
    this.track(newEvent('risk.scored', SERVICE, { $case: 'risk', value }, scoredEventId(input.paymentId)), input.paymentId);
    if (verdict.decision === 'DECLINE') this.track(newEvent('risk.alert', SERVICE, { $case: 'risk', value }, alertEventId(input.paymentId)), input.paymentId);
  }

  private track(event: ReturnType<typeof newEvent>, paymentId: string): void {
    const p = this.bus.publish(event).catch((err: Error) => this.log.warn({ err: err.message, paymentId, eventType: event.type }, 'risk event not published'));
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
  }

  async drain(): Promise<void> {
    await Promise.allSettled([...this.pending]);
  }
}
