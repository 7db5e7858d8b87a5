import { setTimeout as sleep } from 'node:timers/promises';
import type { Event } from '../gen/wristpay/events/v1/events';
import type { Logger } from './log';
import { captureTraceContext, type EventBus, type TraceCarrier } from './nats';

export interface BackgroundPublisherOptions {
  /** Events kept while JetStream does not answer; past it the newest is dropped (and logged). */
  maxQueued?: number;
  /** Events sent at once while JetStream answers. */
  batch?: number;
  retryMinMs?: number;
  retryMaxMs?: number;
}

/**
 * Publishes events without a database behind them (risk's decisions, the registry's session
 * hints) off the answer's path, and keeps each until JetStream acknowledges it: while NATS is
 * down or restarting they wait in memory and go out, oldest first, once it answers, so an outage
 * delays them instead of losing them. The event id is the JetStream message id, so a retry of an
 * event whose ack was lost is dropped by the stream's duplicate window. Memory is bounded
 * (`maxQueued`); what a crash finds queued is lost, which is why events that move money go
 * through an outbox instead (platform/outbox.ts).
 */
export class BackgroundPublisher {
  private readonly queue: Array<{ event: Event; carrier: TraceCarrier }> = [];
  private pumping: Promise<void> | undefined;
  private dropped = 0;
  private closed = false;
  private readonly maxQueued: number;
  private readonly batch: number;
  private readonly retryMinMs: number;
  private readonly retryMaxMs: number;

  constructor(
    private readonly bus: EventBus,
    private readonly log: Logger,
    options: BackgroundPublisherOptions = {},
  ) {
    this.maxQueued = options.maxQueued ?? 10_000;
    this.batch = options.batch ?? 64;
    this.retryMinMs = options.retryMinMs ?? 100;
    this.retryMaxMs = options.retryMaxMs ?? 2_000;
  }

  /** Events not yet acknowledged by JetStream. */
  get size(): number {
    return this.queue.length;
  }

  /** Queues `event` (with the active trace context, so its publish span joins the caller's trace). */
  publish(event: Event): void {
    if (this.queue.length >= this.maxQueued) {
      if (this.dropped++ % 1_000 === 0) this.log.error({ dropped: this.dropped, queued: this.queue.length, eventType: event.type }, 'event queue full while NATS is unavailable; dropping new events');
      return;
    }
    this.queue.push({ event, carrier: captureTraceContext() });
    this.pumping ??= this.pump().finally(() => (this.pumping = undefined));
  }

  /**
   * Waits up to `timeoutMs` for what is queued to be published (shutdown), then gives up on the
   * rest and says how many events that was.
   */
  async drain(timeoutMs: number): Promise<void> {
    if (this.pumping) await Promise.race([this.pumping, sleep(timeoutMs, undefined, { ref: false })]);
    this.closed = true;
    if (this.queue.length) this.log.error({ lost: this.queue.length }, 'stopping with events JetStream has not acknowledged');
  }

  private async pump(): Promise<void> {
    let failures = 0;
    while (this.queue.length && !this.closed) {
      const head = this.queue.slice(0, this.batch);
      const results = await Promise.allSettled(head.map(({ event, carrier }) => this.bus.publish(event, carrier)));
      // Acknowledged ones leave the queue; the rest stay at its head, in their order.
      const failed = head.filter((_, i) => results[i]!.status === 'rejected');
      this.queue.splice(0, head.length, ...failed);
      if (!failed.length) {
        if (failures) this.log.info({ afterFailures: failures }, 'NATS answers again; queued events published');
        failures = 0;
        continue;
      }
      if (failures++ === 0) this.log.warn({ queued: this.queue.length, err: ((results.find((r) => r.status === 'rejected') as PromiseRejectedResult).reason as Error).message }, 'events not published; retrying until NATS answers');
      await sleep(Math.min(this.retryMaxMs, this.retryMinMs * 2 ** Math.min(failures - 1, 10)));
    }
  }
}
