import { disputeResolvedEventId, nameUuid } from './event-ids';

const UUID_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('name-based event ids', () => {
  it('are version-5 UUIDs, the same for the same name and different for another', () => {
    const a = nameUuid('payment.dispute.resolved:x');
    expect(a).toMatch(UUID_V5);
    expect(nameUuid('payment.dispute.resolved:x')).toBe(a);
    expect(nameUuid('payment.dispute.resolved:y')).not.toBe(a);
  });

  it('give one payment.dispute.resolved id per dispute', () => {
    const d = '0b7f3c2a-1111-4222-8333-444455556666';
    expect(disputeResolvedEventId(d)).toBe(disputeResolvedEventId(d));
    expect(disputeResolvedEventId(d)).not.toBe(d);
    expect(disputeResolvedEventId(d)).toMatch(UUID_V5);
  });
});
