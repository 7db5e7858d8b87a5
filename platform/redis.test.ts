import { taggedKey } from './redis';

describe('taggedKey', () => {
  it('puts the owner in a Redis Cluster hash tag', () => {
    expect(taggedKey('wp', 'session', 'dev-1')).toBe('wp:session:{dev-1}');
    expect(taggedKey('wp', 'challenge', 'dev-1', 'c-9')).toBe('wp:challenge:{dev-1}:c-9');
  });
  it('refuses a tag that would move the hash-tag boundary', () => {
    expect(() => taggedKey('wp', 'session', 'a}b')).toThrow(/braces/);
  });
});
