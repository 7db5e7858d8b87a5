import { headers as natsHeaders } from '@nats-io/nats-core';
import { jetstreamManager } from '@nats-io/jetstream';
import { DEAD_LETTER_AREA, readDeadLetter } from './dead-letters';
import type { EventBus } from './nats';

/** One parked message as an operator sees it: where it came from and why, never its payload. */
export interface DeadLetterSummary {
  /** Its sequence on the dead-letter stream: what `replay` takes. */
  seq: number;
  stream: string;
  consumer: string;
  subject: string;
  /** Its sequence on the original stream. */
  originalSeq: number;
  deliveries: number;
  error: string;
  parkedAt: string;
  eventType: string | undefined;
  bytes: number;
}

/** The dead letters kept under `bus`'s prefix, oldest first (at most `limit`). */
export async function listDeadLetters(bus: EventBus, limit = 100): Promise<DeadLetterSummary[]> {
  const jsm = await jetstreamManager(bus.nc);
  const name = bus.streamName(DEAD_LETTER_AREA);
  const { state } = await jsm.streams.info(name);
  const out: DeadLetterSummary[] = [];
  // Direct gets by sequence: reading leaves no consumer behind. Gaps are replayed (deleted) ones.
  for (let seq = state.first_seq; state.messages > 0 && seq <= state.last_seq && out.length < limit; seq++) {
    const m = await jsm.streams.getMessage(name, { seq }).catch(() => null);
    const info = m && readDeadLetter(m.header);
    if (!m || !info) continue;
    out.push({ seq, stream: info.stream, consumer: info.consumer, subject: info.subject, originalSeq: info.seq, deliveries: info.deliveries, error: info.error, parkedAt: info.parkedAt, eventType: m.header.get('Wp-Event-Type') || undefined, bytes: m.data.length });
  }
  return out;
}

/**
 * Publishes dead letter `seq` again on its original subject, with its original headers (trace
 * context, event type) and no message id, so JetStream does not drop it as a duplicate, then
 * deletes it from the dead-letter stream. Every consumer of that subject sees it again, not
 * only the one that parked it: consumers are idempotent (processed-event keys), so the others
 * do nothing. Fix the cause first, or it comes back after N more tries.
 */
export async function replayDeadLetter(bus: EventBus, seq: number): Promise<{ subject: string; newSeq: number }> {
  const jsm = await jetstreamManager(bus.nc);
  const name = bus.streamName(DEAD_LETTER_AREA);
  const m = await jsm.streams.getMessage(name, { seq }).catch(() => null);
  const info = m && readDeadLetter(m.header);
  if (!m || !info) throw new Error(`no dead letter with sequence ${seq} on ${name}`);
  const h = natsHeaders();
  for (const key of m.header.keys()) if (!key.startsWith('Wp-Dlq-') && key !== 'Nats-Msg-Id') for (const v of m.header.values(key)) h.append(key, v);
  h.set('Wp-Replayed-From', `${name}:${seq}`);
  const ack = await bus.js.publish(info.subject, m.data, { headers: h });
  await jsm.streams.deleteMessage(name, seq, false);
  return { subject: info.subject, newSeq: ack.seq };
}
