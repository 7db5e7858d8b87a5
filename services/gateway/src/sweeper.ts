import { SpanStatusCode, trace } from '@opentelemetry/api';
import type { Logger } from '../../../platform/log';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { PaymentFlow } from './authorize';
import type { InstanceHeartbeat } from './instances';
import type { PaymentStore } from './payments';
import type { StepUp } from './step-up';

const tracer = trace.getTracer('wristpay.gateway.sweeper');

/**
 * An expiry has no caller and so no incoming span: it gets its own, a root span, so the
 * payment's decline (and the payment.declined event it publishes) can be found by payment id
 * in the traces like a confirmation or a refusal on the phone.
 */
function expireTraced(stepUp: StepUp, paymentId: string): Promise<unknown> {
  return tracer.startActiveSpan('gateway.ExpireChallenge', { root: true, attributes: { [ATTR.paymentId]: paymentId } }, async (span) => {
    try {
      return await stepUp.expire(paymentId);
    } catch (err) {
      span.recordException(err as Error);
      span.setStatus({ code: SpanStatusCode.ERROR });
      throw err;
    } finally {
      span.end();
    }
  });
}

/**
 * Ends what nobody else will: challenges past their expiry (DECLINED, challenge_expired) and
 * payments left RECEIVED by a replica that is gone and never retried (closed by the flow).
 * Every replica sweeps; the conditional transitions make each end happen once.
 */
export class PaymentSweeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly deps: { store: PaymentStore; stepUp: StepUp; flow: PaymentFlow; instance: InstanceHeartbeat; log: Logger },
    private readonly options: { intervalMs: number; abandonAfterSeconds: number; batch?: number },
  ) {}

  start(): void {
    this.timer = setInterval(() => {
      if (!this.running) this.running = this.sweep().finally(() => (this.running = undefined));
    }, this.options.intervalMs);
    this.timer.unref();
  }

  /** One pass; resolves with what it ended. */
  async sweep(): Promise<{ expired: number; orphans: number }> {
    const { store, stepUp, flow, instance, log } = this.deps;
    const batch = this.options.batch ?? 100;
    let expired = 0;
    let orphans = 0;
    try {
      for (const paymentId of await store.expiredChallenges(batch)) if (await expireTraced(stepUp, paymentId)) expired++;
      for (const orphan of await store.orphaned(this.options.abandonAfterSeconds, instance.staleMs, batch)) {
        const closed = await flow.closeOrphan(orphan).catch((err: Error) => log.warn({ err: err.message, paymentId: orphan.payment_id }, 'orphaned payment not closed yet'));
        if (closed) {
          orphans++;
          log.warn({ paymentId: orphan.payment_id, status: closed.status }, 'orphaned payment closed');
        }
      }
    } catch (err) {
      log.warn({ err: (err as Error).message }, 'payment sweep failed; will retry');
    }
    return { expired, orphans };
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }
}
