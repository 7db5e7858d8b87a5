import { createHash } from 'node:crypto';

// The outbox keys events by uuid (platform/migrations/001_outbox.sql), so an id that must be the
// same on every attempt is a name-based UUID (RFC 9562 version 5, SHA-1) rather than a string.
const NAMESPACE = Buffer.from('6f1c2a4e8b9d4c3e9a7f0d5b2e8c1a47', 'hex');

/** The RFC 9562 version-5 UUID of `name` in WristPay settlement's event namespace. */
export function nameUuid(name: string): string {
  const bytes = createHash('sha1').update(NAMESPACE).update(name, 'utf8').digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x50;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** The event id of payment.dispute.resolved: one per dispute, so a retry can never publish a second. */
export const disputeResolvedEventId = (disputeId: string): string => nameUuid(`payment.dispute.resolved:${disputeId}`);
