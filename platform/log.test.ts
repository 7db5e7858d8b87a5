import { Writable } from 'node:stream';
import { createLogger } from './log';

describe('the logger', () => {
  it('redacts secret-named fields at any depth, including a database error’s detail', () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const log = createLogger('test', 'info', sink);
    log.info({ cardNumber: '4111111111111111', req: { cryptogram: 'abcd', nested: { tokenKey: 'k' } }, err: { detail: 'Key (pan)=(4111111111111111)' } }, 'careless');
    expect(lines.join('')).not.toMatch(/4111111111111111|abcd|"k"/);
    expect(JSON.parse(lines[0]!)).toMatchObject({ service: 'test', msg: 'careless', cardNumber: '[redacted]' });
  });
});
