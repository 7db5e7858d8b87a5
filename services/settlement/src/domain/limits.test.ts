import { status } from '@grpc/grpc-js';
import { NO_LIMITS, remainingToday, requireExpectedVersion, requireReason, requireSettings, requireVersionField, type LimitSettings } from './limits';

const money = (amountMinor: bigint, currency = 'EUR') => ({ amountMinor, currency });
const limits = (over: Partial<LimitSettings>): LimitSettings => ({ ...NO_LIMITS, currency: 'EUR', ...over });

function codeOf(fn: () => unknown): { code: number; message: string } | undefined {
  try {
    fn();
    return undefined;
  } catch (err) {
    return { code: (err as { code: number }).code, message: (err as Error).message };
  }
}

describe('band limit rules', () => {
  it('remaining today is the daily limit minus spending, never below zero, null without a daily limit', () => {
    expect(remainingToday(limits({ perDay: 3_000n }), 1_200n)).toBe(1_800n);
    expect(remainingToday(limits({ perDay: 3_000n }), 3_000n)).toBe(0n);
    expect(remainingToday(limits({ perDay: 1_000n }), 3_000n)).toBe(0n);
    expect(remainingToday(limits({ perPayment: 1_000n }), 3_000n)).toBeNull();
  });
});

describe('SetBandLimits input', () => {
  it('takes unset as no limit and keeps the currency of whichever limit is set', () => {
    expect(requireSettings({ perPayment: undefined, perDay: undefined, frozen: true })).toEqual({ currency: null, perPayment: null, perDay: null, frozen: true });
    expect(requireSettings({ perPayment: money(500n), perDay: money(2_000n), frozen: false })).toEqual({ currency: 'EUR', perPayment: 500n, perDay: 2_000n, frozen: false });
    expect(requireSettings({ perPayment: undefined, perDay: money(2_000n, 'JPY'), frozen: false })).toEqual({ currency: 'JPY', perPayment: null, perDay: 2_000n, frozen: false });
  });

  it('refuses zero, negative, badly written or mixed-currency limits with INVALID_ARGUMENT naming the field', () => {
    const bad: Array<[Parameters<typeof requireSettings>[0], RegExp]> = [
      [{ perPayment: money(0n), perDay: undefined, frozen: false }, /^per_payment\.amount_minor must be greater than zero/],
      [{ perPayment: undefined, perDay: money(-5n), frozen: false }, /^per_day\.amount_minor must be greater than zero/],
      [{ perPayment: money(5n, 'eur'), perDay: undefined, frozen: false }, /^per_payment\.currency must be an ISO 4217/],
      [{ perPayment: money(5n), perDay: money(50n, 'USD'), frozen: false }, /^per_payment and per_day must be in one currency \(got EUR and USD\)$/],
    ];
    for (const [input, message] of bad) expect(codeOf(() => requireSettings(input))).toEqual({ code: status.INVALID_ARGUMENT, message: expect.stringMatching(message) });
  });

  it('takes a reason of at most 200 printable characters, trimmed; empty is allowed', () => {
    expect(requireReason('  set by owner in app  ')).toBe('set by owner in app');
    expect(requireReason('')).toBe('');
    expect(requireReason('é'.repeat(200))).toHaveLength(200);
    expect(requireReason('🙂'.repeat(200))).toHaveLength(400); // 200 characters, 400 UTF-16 units
    for (const bad of ['x'.repeat(201), 'line\nbreak', 'bell\u0007', 'nul\u0000', 'rtl \u202Eevil', 'lone \uD800']) {
      expect(codeOf(() => requireReason(bad))?.code).toBe(status.INVALID_ARGUMENT);
    }
  });

  it('expected_version: 0 skips the check, anything else must match; negative is invalid', () => {
    expect(codeOf(() => requireExpectedVersion(0n, 7n))).toBeUndefined();
    expect(codeOf(() => requireExpectedVersion(7n, 7n))).toBeUndefined();
    expect(codeOf(() => requireExpectedVersion(6n, 7n))).toEqual({ code: status.FAILED_PRECONDITION, message: 'band limits are at version 7, not the expected version 6; read them again and retry' });
    expect(codeOf(() => requireExpectedVersion(1n, 0n))?.code).toBe(status.FAILED_PRECONDITION);
    expect(codeOf(() => requireVersionField(-1n))?.code).toBe(status.INVALID_ARGUMENT);
    expect(requireVersionField(3n)).toBe(3n);
  });
});
