import { subjectMatches } from './nats';

describe('subjectMatches', () => {
  it.each([
    ['device.lost', 'device.lost', true],
    ['device.lost', 'device.lost.x', false],
    ['device.*', 'device.lost', true],
    ['device.*', 'device.session.ended', false],
    ['device.>', 'device.session.ended', true],
    ['device.>', 'device', false],
    ['t1.payment.*.placed', 't1.payment.hold.placed', true],
    ['t1.payment.*.placed', 't2.payment.hold.placed', false],
  ])('%s ~ %s = %s', (pattern, subject, expected) => {
    expect(subjectMatches(pattern, subject)).toBe(expected);
  });
});
