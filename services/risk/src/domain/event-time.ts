/**
 * The time a payment is windowed at: when it happened (occurred_at), not when it reached risk, so
 * an offline tap uploaded later or a request retried after a network stall lands in the windows
 * where it belongs. A terminal's clock is not trusted beyond bounds: a time further back than
 * `maxPastMs` is taken as `now - maxPastMs` (an attacker cannot hide a burst in the past), and one
 * ahead of `now + maxFutureMs` as that (a fast clock cannot push payments out of later windows).
 * No occurred_at means now. The backtest calls this too, so live and replay agree.
 */
export interface EventTimeBounds {
  maxPastMs: number;
  maxFutureMs: number;
}

export const DEFAULT_EVENT_TIME_BOUNDS: EventTimeBounds = { maxPastMs: 24 * 3_600_000, maxFutureMs: 5_000 };

export function eventTime(occurredAtMs: number | undefined, nowMs: number, bounds: EventTimeBounds): number {
  if (occurredAtMs === undefined || !Number.isFinite(occurredAtMs)) return nowMs;
  return Math.round(Math.min(nowMs + bounds.maxFutureMs, Math.max(nowMs - bounds.maxPastMs, occurredAtMs)));
}
