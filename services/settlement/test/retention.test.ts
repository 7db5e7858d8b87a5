import { randomUUID } from 'node:crypto';
import { startHarness, uniqueName, type Harness } from './support/settlement-harness';

jest.setTimeout(30_000);

/** Waits until `check` resolves true, polling; fails with `what` after `ms`. */
async function eventually(check: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const until = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// The pruning itself is tested on both databases in platform/retention.test.ts; this checks that
// settlement runs it on its own tables (processed_events keyed by event_id) on its timer.
describe('settlement prunes its idempotency keys, published outbox rows and processed events', () => {
  let h: Harness;

  beforeAll(async () => {
    h = await startHarness({ RETENTION_INTERVAL_SECONDS: '1' });
  });

  afterAll(async () => {
    await h?.stop();
  });

  it('deletes rows past their retention on the next run and keeps the fresh ones', async () => {
    const old = await h.topUp(uniqueName('old'), 100);
    const fresh = await h.topUp(uniqueName('fresh'), 100);
    const oldEvent = randomUUID();
    const freshEvent = randomUUID();
    await h.ledgerDb.query('INSERT INTO processed_events (event_id) VALUES ($1), ($2)', [oldEvent, freshEvent]);
    const published = async () => (await h.ledgerDb.query('SELECT 1 FROM outbox WHERE published_at IS NULL')).rowCount === 0;
    await eventually(published, 5_000, 'the relay to publish the top-ups');
    const outboxRows = async (transferId: string) =>
      (await h.ledgerDb.query("SELECT 1 FROM outbox WHERE position(convert_to($1, 'UTF8') IN event) > 0", [transferId])).rowCount;
    expect(await outboxRows(old.transfer!.transferId)).toBe(1);

    // The older top-up's key (each top-up commits its own key, so the earliest is the old one's).
    await h.ledgerDb.query("UPDATE idempotency_keys SET created_at = now() - interval '31 days' WHERE created_at = (SELECT min(created_at) FROM idempotency_keys)");
    await h.ledgerDb.query("UPDATE outbox SET published_at = now() - interval '8 days' WHERE position(convert_to($1, 'UTF8') IN event) > 0", [old.transfer!.transferId]);
    await h.ledgerDb.query("UPDATE processed_events SET processed_at = now() - interval '31 days' WHERE event_id = $1", [oldEvent]);

    const left = async () => ({
      keys: (await h.ledgerDb.query('SELECT 1 FROM idempotency_keys')).rowCount,
      oldOutbox: await outboxRows(old.transfer!.transferId),
      freshOutbox: await outboxRows(fresh.transfer!.transferId),
      events: (await h.ledgerDb.query<{ event_id: string }>('SELECT event_id FROM processed_events')).rows.map((r) => r.event_id),
    });
    // One run prunes the three tables one after another: wait for all of them, not the first.
    await eventually(
      async () => {
        const now = await left();
        return now.oldOutbox === 0 && now.keys === 1 && now.events.length === 1;
      },
      10_000,
      'a retention run over the three tables',
    );
    expect(await left()).toEqual({ keys: 1, oldOutbox: 0, freshOutbox: 1, events: [freshEvent] });
  });
});
