import { randomUUID } from 'node:crypto';
import { Event } from '../gen/wristpay/events/v1/events';

/** The streams WristPay keeps, one per event area (the first word of the subject). */
export const STREAM_AREAS = ['device', 'token', 'payment', 'risk', 'escrow'] as const;
export type StreamArea = (typeof STREAM_AREAS)[number];

export type EventPayload = NonNullable<Event['payload']>;

/**
 * Builds an event envelope. `type` is the unprefixed subject, `<area>.<noun>.<past-tense>`
 * (e.g. `device.session.started`); `eventId` becomes the NATS message id, so pass a stable id
 * (an outbox row id, a payment id plus step) wherever a retry must not publish twice.
 */
export function newEvent(type: string, source: string, payload: EventPayload, eventId: string = randomUUID()): Event {
  const area = type.split('.')[0];
  if (!STREAM_AREAS.includes(area as StreamArea)) throw new Error(`event type ${type} is in no stream area`);
  return { eventId, type, occurredAt: new Date(), source, payload };
}

export const encodeEvent = (event: Event): Uint8Array => Event.encode(event).finish();
export const decodeEvent = (data: Uint8Array): Event => Event.decode(data);
