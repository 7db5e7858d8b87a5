import { InvalidArgument } from './errors';
import { formatAmount, requireAmount } from './money';

describe('requireAmount', () => {
  it('accepts positive minor units of an ISO code', () => {
    expect(requireAmount({ amountMinor: 1250n, currency: 'EUR' })).toEqual({ amountMinor: 1250n, currency: 'EUR' });
  });
  it.each([
    [undefined, /required/],
    [{ amountMinor: 0n, currency: 'EUR' }, /positive/],
    [{ amountMinor: -5n, currency: 'EUR' }, /positive/],
    [{ amountMinor: 5n, currency: 'eur' }, /ISO 4217/],
    [{ amountMinor: 5n, currency: 'EURO' }, /ISO 4217/],
  ])('refuses %p', (money, message) => {
    expect(() => requireAmount(money)).toThrow(InvalidArgument);
    expect(() => requireAmount(money)).toThrow(message);
  });
});

describe('formatAmount', () => {
  it('prints exact decimals without floats', () => {
    expect(formatAmount({ amountMinor: 900719925474099312n, currency: 'EUR' })).toBe('9007199254740993.12 EUR');
    expect(formatAmount({ amountMinor: 5n, currency: 'CNY' })).toBe('0.05 CNY');
  });
  it('uses each currency’s decimals (ISO 4217 exponents 0, 3 and 4), and a minus sign', () => {
    expect(formatAmount({ amountMinor: 1200n, currency: 'JPY' })).toBe('1200 JPY');
    expect(formatAmount({ amountMinor: 1250n, currency: 'KWD' })).toBe('1.250 KWD');
    expect(formatAmount({ amountMinor: 12345n, currency: 'CLF' })).toBe('1.2345 CLF');
    expect(formatAmount({ amountMinor: -1250n, currency: 'EUR' })).toBe('-12.50 EUR');
  });
});
