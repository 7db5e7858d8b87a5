import { status as GrpcStatus, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { AlertKind, type Alert, type AlertsServiceClient, type StepUp, type StreamAlertsResponse } from '../gen/wristpay/alerts/v1/alerts';
import { formatAmount } from '../platform/money';

/** One line for an alert: what the wrist shows, then what the phone shows. */
export function formatAlert(alert: Alert): string {
  const wrist = alert.wrist;
  const onWrist = wrist ? `${wrist.merchantName || '—'} · ${wrist.amount ? formatAmount(wrist.amount) : '—'} · ${wrist.outcome}` : '—';
  return `#${alert.sequence} ${AlertKind[alert.kind].replace('ALERT_KIND_', '').padEnd(16)} wrist: ${onWrist.padEnd(42)} phone: ${alert.phone?.title ?? ''}${alert.phone?.body ? ` (${alert.phone.body})` : ''}`;
}

/**
 * What the phone does with its account's alert feed: streams it from `afterSequence`, and after a
 * disconnect (UNAVAILABLE, or `disconnect()`) resumes from the last alert it saw. It checks what
 * the service promises: sequences arrive as 1, 2, 3, ... with no gap and no duplicate.
 */
export class AlertFollower {
  readonly alerts: Alert[] = [];
  /** Broken promises seen on the way (a gap, a duplicate, a stream error other than a disconnect). */
  readonly problems: string[] = [];
  private call: ClientReadableStream<StreamAlertsResponse> | undefined;
  private stopped = false;
  private waiters: Array<{ until: (alerts: Alert[]) => boolean; resolve: () => void }> = [];

  constructor(
    private readonly client: AlertsServiceClient,
    readonly accountId: string,
    private readonly onAlert: (alert: Alert) => void,
    private lastSequence = 0n,
  ) {}

  get last(): bigint {
    return this.lastSequence;
  }

  /** Opens the stream after the last sequence seen. */
  connect(): void {
    if (this.stopped || this.call) return;
    const call = this.client.streamAlerts({ accountId: this.accountId, afterSequence: this.lastSequence });
    this.call = call;
    call.on('data', (msg: StreamAlertsResponse) => this.receive(msg.alert));
    call.on('error', (err: ServiceError) => {
      if (this.call === call) this.call = undefined;
      if (err.code === GrpcStatus.CANCELLED && (this.stopped || !this.call)) return;
      if (err.code === GrpcStatus.UNAVAILABLE && !this.stopped) {
        setTimeout(() => this.connect(), 500).unref();
        return;
      }
      if (err.code !== GrpcStatus.CANCELLED) this.problems.push(`stream ended: ${GrpcStatus[err.code]}: ${err.details}`);
    });
  }

  /** Drops the connection, as a phone going offline does; `connect()` resumes. */
  disconnect(): void {
    const call = this.call;
    this.call = undefined;
    call?.cancel();
  }

  stop(): void {
    this.stopped = true;
    this.disconnect();
  }

  /** Resolves once the alerts received satisfy `until`, or after `timeoutMs` (false then). */
  waitFor(until: (alerts: Alert[]) => boolean, timeoutMs: number): Promise<boolean> {
    if (until(this.alerts)) return Promise.resolve(true);
    return new Promise((resolve) => {
      const waiter = { until, resolve: () => resolve(true) };
      this.waiters.push(waiter);
      setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        resolve(false);
      }, timeoutMs).unref();
    });
  }

  private receive(alert: Alert | undefined): void {
    if (!alert) return;
    if (alert.sequence !== this.lastSequence + 1n) {
      this.problems.push(`expected alert #${this.lastSequence + 1n}, got #${alert.sequence}`);
      if (alert.sequence <= this.lastSequence) return;
    }
    this.lastSequence = alert.sequence;
    this.alerts.push(alert);
    this.onAlert(alert);
    for (const w of [...this.waiters]) {
      if (w.until(this.alerts)) {
        this.waiters = this.waiters.filter((x) => x !== w);
        w.resolve();
      }
    }
  }
}

/**
 * What the phone does when a payment waits for it: follows its account's feed (from the start)
 * until the CHALLENGED alert of `paymentId` arrives, and returns it with the step-up the band is
 * to sign. Throws after `timeoutMs` without one.
 */
export async function stepUpAlert(client: AlertsServiceClient, accountId: string, paymentId: string, timeoutMs = 15_000): Promise<Alert & { stepUp: StepUp }> {
  const isIt = (a: Alert) => a.kind === AlertKind.ALERT_KIND_CHALLENGED && a.paymentId === paymentId;
  const feed = new AlertFollower(client, accountId, () => undefined);
  feed.connect();
  try {
    await feed.waitFor((alerts) => alerts.some(isIt), timeoutMs);
    const alert = feed.alerts.find(isIt);
    if (!alert?.stepUp) {
      const why = alert ? 'it carries no step-up' : `none within ${timeoutMs} ms`;
      throw new Error(`no CHALLENGED alert for payment ${paymentId} on the feed of ${accountId}: ${why}${feed.problems.length ? ` (${feed.problems.join('; ')})` : ''}`);
    }
    return { ...alert, stepUp: alert.stepUp };
  } finally {
    feed.stop();
  }
}
