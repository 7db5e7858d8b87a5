import { randomUUID } from 'node:crypto';
import { migrate, type Db } from '../../../../platform/db';
import { newEvent } from '../../../../platform/events';
import { createLogger } from '../../../../platform/log';
import { repoPath } from '../../../../platform/paths';
import { RetentionJob } from '../../../../platform/retention';
import { alertFor, type AlertDraft } from '../../src/domain/alert';
import { toAlert } from '../../src/server';
import { AlertStore, alertsRetention } from '../../src/store';

/** The step-up every run stores on one challenged alert, and expects back byte for byte. */
export const STEP_UP = { challengeId: '0f6f3f3e-7a4b-4f57-9a38-6c1d2b1f0e01', nonce: Buffer.from('00ff10203040506070808090a0b0c0d0e0f0', 'hex'), expiresAt: new Date('2026-12-03T10:00:00.123Z') };

/** The alert a payment.authorized (or, with the step-up, payment.challenged) event makes for `accountId`. */
const draft = (accountId: string, type: 'payment.authorized' | 'payment.challenged' = 'payment.authorized'): AlertDraft => {
  const d = alertFor(
    newEvent(type, 'gateway', {
      $case: 'payment',
      value: {
        paymentId: randomUUID(),
        status: type === 'payment.authorized' ? 'APPROVED' : 'CHALLENGE_REQUIRED',
        declineReason: '',
        amount: { amountMinor: 990n, currency: 'EUR' },
        merchantId: 'm',
        accountId,
        deviceId: '',
        holdId: '',
        merchantName: '',
        discount: undefined,
        stepUp: type === 'payment.challenged' ? STEP_UP : undefined,
      },
    }),
  );
  if ('skip' in d) throw new Error(d.skip);
  return d;
};

const plainStepUp = (s: ReturnType<typeof toAlert>['stepUp']) => s && { challengeId: s.challengeId, nonce: s.nonce.toString('hex'), expiresAt: s.expiresAt?.toISOString() };

/**
 * The store on one database (PostgreSQL, or PGlite in a child process): 20 alerts for one account
 * stored at once plus a redelivery of one of them, and another account's feed beside it. Returns
 * what a reader then sees, as plain JSON.
 */
export async function runStoreScenario(db: Db) {
  await migrate(db, repoPath('services', 'alerts', 'migrations'));
  const store = new AlertStore(db);
  const drafts = Array.from({ length: 20 }, () => draft('acct-a'));
  const outcomes = await Promise.all([...drafts.map((d) => store.record('alerts', d)), store.record('alerts', drafts[3]!), store.record('alerts', draft('acct-b'))]);
  const rows = await store.after('acct-a', 0n, 100);
  // Retention: the five oldest are past ALERTS_RETENTION_DAYS; they go, and the feed carries on at 21.
  await db.query("UPDATE alerts SET created_at = now() - interval '91 days' WHERE account_id = 'acct-a' AND sequence <= 5");
  const pruned = await new RetentionJob(db, [alertsRetention(90)], createLogger('alerts', 'silent'), { intervalMs: 60_000 }).runOnce();
  const after = await store.record('alerts', draft('acct-a'));
  await store.record('alerts', draft('acct-c', 'payment.challenged'));
  const [stepUpRow] = await store.after('acct-c', 0n, 1);
  return {
    pruned: pruned.deleted,
    retained: (await store.after('acct-a', 0n, 100)).map((r) => Number(r.sequence)),
    afterPrune: after.stored ? Number(after.sequence) : 'duplicate',
    kind: db.kind,
    duplicates: outcomes.filter((o) => !o.stored).length,
    sequences: rows.map((r) => Number(r.sequence)),
    eventsStored: new Set(rows.map((r) => r.event_id)).size,
    allDrafted: drafts.every((d) => rows.some((r) => r.event_id === d.eventId)),
    otherAccount: (await store.after('acct-b', 0n, 100)).map((r) => Number(r.sequence)),
    page: (await store.after('acct-a', 18n, 100)).map((r) => Number(r.sequence)),
    wrist: { name: rows[0]!.wrist_merchant_name, minor: String(rows[0]!.wrist_amount_minor), currency: rows[0]!.wrist_currency },
    // bytea comes back as a Buffer from pg and a Uint8Array from PGlite: both read back the same.
    stepUp: plainStepUp(toAlert(stepUpRow!).stepUp),
    noStepUp: toAlert(rows[0]!).stepUp ?? 'none',
  };
}
