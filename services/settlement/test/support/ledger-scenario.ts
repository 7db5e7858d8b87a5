import { randomUUID } from 'node:crypto';
import { migrate, type Db } from '../../../../platform/db';
import { repoPath } from '../../../../platform/paths';
import { checkLedger } from '../../src/invariants';
import { Ledger } from '../../src/ledger';
import { outcome } from './outcome';

const EUR = (minor: bigint) => ({ minor, currency: 'EUR' });

/** JSON-able: bigints become strings, so the PGlite child can report what it saw. */
function plain(value: unknown): unknown {
  return JSON.parse(JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)));
}

/**
 * The ledger's store code driven directly (no gRPC, no NATS) through every movement, on
 * whatever database `db` is. Returns what it observed; the test expects the same on PostgreSQL
 * and on embedded PGlite.
 */
export async function runLedgerScenario(db: Db): Promise<Record<string, unknown>> {
  await migrate(db, repoPath('services', 'settlement', 'migrations'));
  const ledger = new Ledger({ protectionWindowSeconds: 3600 });
  const tx = <T>(fn: (l: Ledger, q: Parameters<Parameters<Db['tx']>[0]>[0]) => Promise<T>) => db.tx((q) => fn(ledger, q));
  const balance = async (account: string) => plain(await ledger.balance(db, account, 'EUR'));
  const seen: Record<string, unknown> = {};
  const hold = (paymentId: string, minor: bigint, deviceId = 'band-1', merchantId = 'm1') =>
    outcome(() => tx((l, q) => l.placeHold(q, { paymentId, accountId: 'alice', merchantId, deviceId, amount: EUR(minor), ttlSeconds: 60 })));
  const outcomeOf = (r: unknown) => (typeof r === 'string' ? r : (r as { outcome: string }).outcome);
  const holdIdOf = (r: unknown) => (r as { hold: { holdId: string } }).hold.holdId;

  await tx((l, q) => l.topUp(q, { accountId: 'alice', amount: EUR(10_000n), sourceReference: 'bank-1' }));
  seen.afterTopUp = await balance('wallet:alice');
  const p1 = await hold('p1', 4_000n);
  const p2 = await hold('p2', 7_000n);
  const p3 = await hold('p3', 6_000n);
  seen.holds = [p1, p2, p3].map(outcomeOf);
  seen.duplicatePayment = outcomeOf(await hold('p1', 1n));
  seen.afterHolds = await balance('wallet:alice');

  const capture = await tx((l, q) => l.capture(q, { holdId: holdIdOf(p1), amount: EUR(3_000n) }));
  seen.capture = plain({ status: capture.hold.status, captured: capture.hold.captured, postings: capture.transfer.postings });
  seen.captureTwice = await outcome(() => tx((l, q) => l.capture(q, { holdId: holdIdOf(p1) })));
  seen.afterCapture = await balance('wallet:alice');
  await tx((l, q) => l.void(q, holdIdOf(p3)));
  seen.afterVoid = await balance('wallet:alice');

  seen.freeze = [await tx((l, q) => l.freezeDevice(q, { eventId: 'e1', deviceId: 'band-lost', accountId: 'alice' })), await tx((l, q) => l.freezeDevice(q, { eventId: 'e1', deviceId: 'band-lost', accountId: 'alice' }))];
  seen.frozenHold = outcomeOf(await hold('p4', 1n, 'band-lost'));

  await tx((l, q) => l.refund(q, { holdId: holdIdOf(p1), amount: EUR(1_000n) }));
  await tx((l, q) => l.confirmDelivery(q, holdIdOf(p1)));
  await tx((l, q) => l.refund(q, { holdId: holdIdOf(p1), amount: EUR(500n) }));
  seen.overRefund = await outcome(() => tx((l, q) => l.refund(q, { holdId: holdIdOf(p1), amount: EUR(2_000n) })));
  seen.payableAfterRefunds = await balance('merchant:m1:payable');

  const p5 = await hold('p5', 1_000n);
  await tx((l, q) => l.capture(q, { holdId: holdIdOf(p5) }));
  const dispute = await tx((l, q) => l.openDispute(q, { holdId: holdIdOf(p5), reason: 'broken' }));
  seen.releaseDisputed = await outcome(() => tx((l, q) => l.confirmDelivery(q, holdIdOf(p5))));
  const resolved = await tx((l, q) => l.resolveDispute(q, { disputeId: dispute.disputeId, outcome: 'REFUND_BUYER' }));
  seen.disputeRefund = plain(resolved.postings);

  // Time passing, simulated: one pending hold lapses, one escrow reaches the end of its window.
  const p6 = await hold('p6', 700n);
  const p7 = await hold('p7', 800n, 'band-1', 'm2');
  await tx((l, q) => l.capture(q, { holdId: holdIdOf(p7) }));
  await db.query("UPDATE holds SET expires_at = now() - interval '1 second' WHERE hold_id = $1", [holdIdOf(p6)]);
  await db.query("UPDATE holds SET escrow_until = now() - interval '1 second' WHERE hold_id = $1", [holdIdOf(p7)]);
  seen.sweep = {
    due: [await ledger.store.dueHolds(db, 'expiry', 10), await ledger.store.dueHolds(db, 'release', 10)].map((ids) => ids.length),
    expired: [await tx((l, q) => l.expire(q, holdIdOf(p6))), await tx((l, q) => l.expire(q, holdIdOf(p6)))],
    released: [await tx((l, q) => l.autoRelease(q, holdIdOf(p7))), await tx((l, q) => l.autoRelease(q, holdIdOf(p7)))],
  };
  seen.afterSweep = await balance('wallet:alice');

  // Above 2^53: PGlite hands such int8 values back as bigint but smaller ones as numbers.
  await tx((l, q) => l.topUp(q, { accountId: 'whale', amount: EUR(9_007_199_254_740_993n), sourceReference: 'bank-2' }));
  seen.whale = await balance('wallet:whale');
  seen.overflow = await outcome(() => tx((l, q) => l.topUp(q, { accountId: 'whale', amount: EUR(9_223_372_036_854_775_807n), sourceReference: 'bank-3' })));

  const today = (await db.query<{ d: string }>("SELECT to_char((now() AT TIME ZONE 'UTC')::date, 'YYYY-MM-DD') AS d")).rows[0]!.d;
  const payouts = await tx((l, q) => l.runPayouts(q, today));
  seen.payouts = plain(payouts.payouts.map((p) => ({ merchant: p.merchantId, amount: p.amount, transfers: p.transfers })));
  seen.payoutAgain = (await tx((l, q) => l.runPayouts(q, today))).payouts.length;
  seen.payablesAfterPayout = [await balance('merchant:m1:payable'), await balance('merchant:m2:payable')];

  const transfer = await ledger.transfer(db, resolved.transferId);
  seen.getTransfer = transfer.kind;
  seen.unknownTransfer = await outcome(() => ledger.transfer(db, randomUUID()));
  const { rows } = await db.query<{ n: number }>('SELECT count(*)::int AS n FROM outbox');
  seen.outboxEvents = Number(rows[0]!.n);

  const clean = await checkLedger(db);
  seen.check = { ok: clean.ok, violations: clean.violations, counts: clean.counts };

  // The checker must also see breakage: corrupt a stored balance, a reservation and a transfer.
  await db.query("UPDATE accounts SET posted = posted + 1 WHERE account = 'wallet:whale'");
  await db.query("UPDATE accounts SET held = held + 5 WHERE account = 'wallet:alice'");
  await db.query("UPDATE postings SET amount_minor = amount_minor + 1 WHERE transfer_id = $1 AND seq = 0", [resolved.transferId]);
  const broken = await checkLedger(db);
  seen.brokenRules = [...new Set(broken.violations.map((v) => v.split(':')[0]))].sort();
  return seen;
}
