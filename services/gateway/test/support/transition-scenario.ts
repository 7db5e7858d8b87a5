import { randomUUID } from 'node:crypto';
import { migrate, type Db } from '../../../../platform/db';
import { decodeEvent } from '../../../../platform/events';
import { repoPath } from '../../../../platform/paths';
import { decisionEvent } from '../../src/authorize';
import { PaymentStore, type PaymentRow } from '../../src/payments';

/**
 * PaymentStore.transitionSeen driven directly, on whatever database `db` is: a decision commits
 * with exactly one outbox event; a decision built from a row that changed meanwhile (a take-over
 * bumped it) writes neither the payment nor an event; a retry of a committed decision moves
 * nothing. Returns what it observed (the test expects the same on PostgreSQL and PGlite).
 */
export async function runTransitionScenario(db: Db): Promise<Record<string, unknown>> {
  await migrate(db, repoPath('services', 'gateway', 'migrations'));
  const store = new PaymentStore(db);
  await db.query("INSERT INTO merchants (merchant_id, display_name, mcc, country, settlement_currency) VALUES ('m1', 'Shop', '5812', 'CN', 'EUR')");
  const claim = async (owner: string) =>
    (
      await store.claim({
        paymentId: randomUUID(),
        merchantId: 'm1',
        idempotencyKey: randomUUID(),
        requestHash: Buffer.alloc(32),
        channel: 'CHANNEL_BAND_TAP',
        amountMinor: 1234n,
        currency: 'EUR',
        voucherCode: '',
        merchantName: 'Shop',
        owner,
      })
    ).row;
  const events = async () => {
    const { rows } = await db.query<{ event: Uint8Array }>('SELECT event FROM outbox ORDER BY seq');
    return rows.map((r) => {
      const e = decodeEvent(r.event);
      return `${e.type} ${e.payload?.$case === 'payment' ? `${e.payload.value.status} ${e.payload.value.holdId}` : ''}`;
    });
  };
  const approve = (row: PaymentRow) => store.transitionSeen(row, { status: 'APPROVED', hold_id: 'hold-1', account_id: 'alice' }, { from: ['RECEIVED'], attempt: row.attempt }, decisionEvent);

  const [replicaA, replicaB] = [randomUUID(), randomUUID()];
  const seen: Record<string, unknown> = {};
  const first = await claim(replicaA);
  const approved = await approve(first);
  seen.approved = { status: approved?.status, hold: approved?.hold_id, versionMoved: approved?.row_version !== first.row_version };
  seen.retried = await approve(first);
  seen.eventsAfterApproval = await events();

  // A take-over bumps the attempt: the first attempt's decision, built from the row it saw, is refused.
  const second = await claim(replicaA);
  const taken = await store.takeOver(second.payment_id, second.attempt, replicaB);
  seen.stale = await approve(second);
  seen.staleLeft = (await store.get(second.payment_id))?.status;
  // The same attempt number but a row written since (its version moved): refused too.
  const third = await claim(replicaA);
  await db.query("UPDATE payments SET message = 'touched' WHERE payment_id = $1", [third.payment_id]);
  seen.changedMeanwhile = await approve(third);
  seen.eventsAfterRefusals = await events();
  seen.takenOverDecides = (await approve(taken!))?.status;
  seen.eventsAtEnd = (await events()).length;
  return seen;
}
