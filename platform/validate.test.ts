import { InvalidArgument } from './errors';
import { isUuid, requireMerchantName, requireText, requireUuid, requireVoucherCode } from './validate';

describe('request field validation', () => {
  it('accepts and normalises UUIDs, refuses anything else naming the field', () => {
    expect(requireUuid('0F8FAD5B-D9CB-469F-A165-70867728950E', 'device_id')).toBe('0f8fad5b-d9cb-469f-a165-70867728950e');
    expect(() => requireUuid('0f8fad5b-d9cb-469f-a165', 'device_id')).toThrow(new InvalidArgument('device_id must be a UUID'));
    expect(isUuid("0f8fad5b-d9cb-469f-a165-70867728950e' OR 1=1")).toBe(false);
  });

  it('trims text and enforces its length', () => {
    expect(requireText('  band 1 ', 'model')).toBe('band 1');
    expect(() => requireText('   ', 'model')).toThrow(/model is required \(1-128/);
    expect(() => requireText('x'.repeat(65), 'serial', 64)).toThrow(/serial is required \(1-64/);
  });

  it('merchant names: optional, at most 64 characters, printable', () => {
    expect(requireMerchantName('')).toBe('');
    expect(requireMerchantName('Café Zoë – 咖啡')).toBe('Café Zoë – 咖啡');
    expect(requireMerchantName('x'.repeat(64))).toHaveLength(64);
    expect(requireMerchantName('🍜'.repeat(64))).toBe('🍜'.repeat(64));
    expect(() => requireMerchantName('x'.repeat(65))).toThrow(/merchant_name must be at most 64/);
    for (const bad of ['Shop\n2', 'Shop\u0000', 'Tab\tShop', 'Evil\u202eShop', 'zero\u200bwidth', 'bell\u0007']) expect(() => requireMerchantName(bad)).toThrow(/printable/);
    expect(() => requireMerchantName(' Shop')).toThrow(/spaces/);
  });

  it('voucher codes: 4-32 letters, digits or -', () => {
    expect(requireVoucherCode('SPRING-2026')).toBe('SPRING-2026');
    for (const bad of ['abc', 'x'.repeat(33), 'a b c', 'abc_d', 'abc;DROP']) expect(() => requireVoucherCode(bad, 'voucher_code')).toThrow(/voucher_code must be 4-32/);
  });
});
