import type { FaultResult } from './faults';
import { recoveryMisses, renderReport, type ChaosReport } from './report';

const fault = (over: Partial<FaultResult>): FaultResult => ({
  name: 'kill -9 gateway',
  kind: 'kill-service',
  startedAt: 0,
  endedAt: 10,
  attempts: 10,
  failedAttempts: 2,
  codes: { UNAVAILABLE: 2 },
  answers: { APPROVED: 8 },
  unexpectedExits: [],
  notes: [],
  ...over,
});

describe('recoveryMisses', () => {
  test('lists each measurement past its target, and a probe that never got a payment approved', () => {
    const misses = recoveryMisses([
      fault({ servingMs: 2_999, servingTargetMs: 3_000 }),
      fault({ name: 'kill -9 risk', servingMs: 3_001, servingTargetMs: 3_000 }),
      fault({ name: 'kill -9 Redis', kind: 'kill-redis', servingMs: 50, paymentMs: 2_500, paymentTargetMs: 2_000 }),
      fault({ name: 'PostgreSQL immediate stop', kind: 'stop-postgres', paymentError: 'no payment approved within 60000 ms', paymentTargetMs: 3_000 }),
    ]);
    expect(misses).toEqual([
      'kill -9 risk: SERVING after 3001 ms (target 3000)',
      'kill -9 Redis: payments after 2500 ms (target 2000)',
      'PostgreSQL immediate stop: payments after no payment approved within 60000 ms ms (target 3000)',
    ]);
  });
});

describe('renderReport', () => {
  test('prints PASS/FAIL against each target, each failed invariant with its ids, and the verdict', () => {
    const report: ChaosReport = {
      variant: 'short',
      topology: 'single',
      startedAt: '2026-12-03T00:00:00.000Z',
      seconds: 60,
      load: { payments: 10, approved: 8, declined: 0, challenged: 2, captures: 3, attempts: 12, failedAttempts: 2 },
      faults: [fault({ servingMs: 1_200, servingTargetMs: 3_000, answeredMs: 1_500, paymentMs: 1_500, notes: ['n0 (CHAOS_PAYMENT leader) killed'] })],
      invariants: [
        { name: 'ledger sound (settlement invariants)', ok: true, detail: '3 holds', violations: [] },
        { name: 'no hold without an approved answer', ok: false, detail: '3 holds', violations: ['hold h-1 (PENDING) for payment p-1: the terminal was told nothing (UNAVAILABLE)'] },
      ],
      strictRecovery: false,
      recoveryMisses: [],
      ok: false,
    };
    const text = renderReport(report);
    expect(text).toContain('1200 ms PASS (≤ 3000)');
    expect(text).toContain('2/10 (20.0%) UNAVAILABLE 2');
    expect(text).toContain('  kill -9 gateway: n0 (CHAOS_PAYMENT leader) killed');
    expect(text).toContain('✗ no hold without an approved answer:\n  - hold h-1 (PENDING) for payment p-1: the terminal was told nothing (UNAVAILABLE)');
    expect(text.trim().endsWith('chaos: FAILED')).toBe(true);
  });
});
