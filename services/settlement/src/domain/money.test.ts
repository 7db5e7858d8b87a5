import { status } from '@grpc/grpc-js';
import { formatMoney, requireCurrency, requirePositive } from './money';

describe('money', () => {
  it('accepts positive int64 minor units in an ISO 4217 code', () => {
    expect(requirePositive({ amountMinor: 1999n, currency: 'EUR' }, 'amount')).toEqual({ minor: 1999n, currency: 'EUR' });
  });

  it.each([
    [undefined, /amount is required/],
    [{ amountMinor: 0n, currency: 'EUR' }, /greater than zero/],
    [{ amountMinor: -5n, currency: 'EUR' }, /greater than zero/],
    [{ amountMinor: 5n, currency: 'eur' }, /ISO 4217/],
    [{ amountMinor: 5n, currency: 'EURO' }, /ISO 4217/],
    [{ amountMinor: 5n, currency: '' }, /ISO 4217/],
  ])('refuses %p', (money, message) => {
    expect(() => requirePositive(money, 'amount')).toThrow(message);
    try {
      requirePositive(money, 'amount');
    } catch (err) {
      expect((err as { code: number }).code).toBe(status.INVALID_ARGUMENT);
    }
  });

  it('checks currency codes', () => {
    expect(requireCurrency('CNY')).toBe('CNY');
    expect(() => requireCurrency('C1Y')).toThrow(/currency/);
  });

  it.each([
    [1999n, 'EUR', '19.99 EUR'],
    [5n, 'EUR', '0.05 EUR'],
    [-1250n, 'USD', '-12.50 USD'],
    [1500n, 'JPY', '1500 JPY'],
    [12345n, 'KWD', '12.345 KWD'],
    [9_223_372_036_854_775_807n, 'EUR', '92233720368547758.07 EUR'],
  ])('formats %p %s as %s without floats', (minor, currency, text) => {
    expect(formatMoney(minor, currency)).toBe(text);
  });
});
