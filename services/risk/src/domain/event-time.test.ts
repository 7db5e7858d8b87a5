import { eventTime } from './event-time';

describe('event time', () => {
  const bounds = { maxPastMs: 3_600_000, maxFutureMs: 5_000 };
  const now = 1_800_000_000_000;

  it('windows a payment when it happened, within the bounds', () => {
    expect(eventTime(now - 600_000, now, bounds)).toBe(now - 600_000);
    expect(eventTime(now + 4_000, now, bounds)).toBe(now + 4_000);
  });

  it('does not believe a terminal clock beyond the bounds', () => {
    expect(eventTime(now - 5 * 3_600_000, now, bounds)).toBe(now - 3_600_000);
    expect(eventTime(now + 60_000, now, bounds)).toBe(now + 5_000);
    expect(eventTime(0, now, bounds)).toBe(now - 3_600_000);
  });

  it('uses the clock without an occurred_at', () => {
    expect(eventTime(undefined, now, bounds)).toBe(now);
    expect(eventTime(Number.NaN, now, bounds)).toBe(now);
  });
});
