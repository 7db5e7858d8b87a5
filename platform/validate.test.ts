import { InvalidArgument } from './errors';
import { isUuid, requireText, requireUuid } from './validate';

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
});
