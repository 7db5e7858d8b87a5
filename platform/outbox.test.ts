import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onFreshPostgres } from '../test/support/both-databases';
import { migrate } from './db';
import { newEvent } from './events';
import { createLogger } from './log';
import type { EventBus } from './nats';
import { enqueueEvent, OutboxRelay } from './outbox';

jest.setTimeout(60_000);

/** A bus that records what it was asked to publish and refuses the event ids in `refuse`. */
function recordingBus(refuse: Set<string>) {
  const sent: string[] = [];
  const bus = {
    publish: async (event: { eventId: string }) => {
      sent.push(event.eventId);
      await new Promise((resolve) => setImmediate(resolve));
      if (refuse.has(event.eventId)) throw new Error('nats: timeout');
      return { seq: sent.length, duplicate: false };
    },
  };
  return { bus: bus as unknown as EventBus, sent };
}

describe('OutboxRelay', () => {
  const empty = mkdtempSync(join(tmpdir(), 'wp-no-migrations-'));
  afterAll(() => rmSync(empty, { recursive: true, force: true }));

  it('publishes a batch together, marks only what was acknowledged before the first failure, and sends the rest again next pass', async () => {
    await onFreshPostgres(async (db) => {
      await migrate(db, empty);
      const events = [1, 2, 3, 4].map(() => newEvent('payment.authorized', 'test', { $case: 'payment', value: { paymentId: 'p' } as never }));
      for (const e of events) await db.tx((q) => enqueueEvent(q, e));
      const ids = events.map((e) => e.eventId);
      const refuse = new Set([ids[1]!]);
      const { bus, sent } = recordingBus(refuse);
      const relay = new OutboxRelay(db, bus, createLogger('outbox-test', 'silent'));

      await expect(relay.drain()).rejects.toThrow('nats: timeout');
      // All four went out back to back; only the first, before the refused second, is marked.
      expect(sent).toEqual(ids);
      const pending = async () => (await db.query<{ event_id: string }>('SELECT event_id FROM outbox WHERE published_at IS NULL ORDER BY seq')).rows.map((r) => r.event_id);
      expect(await pending()).toEqual(ids.slice(1));

      refuse.clear();
      expect(await relay.drain()).toBe(3);
      expect(sent.slice(4)).toEqual(ids.slice(1));
      expect(await pending()).toEqual([]);
    });
  });
});
