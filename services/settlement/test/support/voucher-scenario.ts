import { migrate, type Db, type Queryable } from '../../../../platform/db';
import { repoPath } from '../../../../platform/paths';
import { checkLedger } from '../../src/invariants';
import { Ledger } from '../../src/ledger';
import { outcome } from './outcome';

const EUR = (minor: bigint) => ({ minor, currency: 'EUR' });

/**
 * The voucher code driven directly through the Ledger (no gRPC, no NATS) on whatever database
 * `db` is; returns what it saw as JSON-able values. The test expects the same on PostgreSQL and
 * on embedded PGlite (so migration 004 and its SQL run on both).
 */
export async function runVoucherScenario(db: Db): Promise<Record<string, unknown>> {
  await migrate(db, repoPath('services', 'settlement', 'migrations'));
  const ledger = new Ledger({ protectionWindowSeconds: 3600 });
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => db.tx(fn);
  const seen: Record<string, unknown> = {};
  const expiresAt = new Date(Date.now() + 3_600_000);
  const uses = async (voucherId: string) => Number((await db.query<{ uses: number }>('SELECT uses FROM vouchers WHERE voucher_id = $1', [voucherId])).rows[0]!.uses);
  const posted = async (account: string) => String((await ledger.balance(db, account, 'EUR')).posted);
  const hold = (paymentId: string, minor: bigint, voucherCode: string, merchantId = 'm1') =>
    outcome(() => tx((q) => ledger.placeHold(q, { paymentId, accountId: 'alice', merchantId, deviceId: 'band-1', amount: EUR(minor), ttlSeconds: 60, voucherCode, merchantName: 'Corner Shop' })));
  type Placed = { outcome: string; hold?: { amount: bigint; gross: bigint; discount: bigint; merchantName: string } };
  const summary = (r: Placed | string) => {
    if (typeof r === 'string' || !r.hold) return typeof r === 'string' ? r : { outcome: r.outcome };
    const { amount, gross, discount, merchantName } = r.hold;
    return { outcome: r.outcome, amount: String(amount), gross: String(gross), discount: String(discount), merchantName };
  };
  const holdIdOf = (r: unknown) => (r as { hold: { holdId: string } }).hold.holdId;

  await tx((q) => ledger.topUp(q, { accountId: 'alice', amount: EUR(5_000n), sourceReference: 'bank-1' }));
  const amountOff = await tx((q) => ledger.vouchers.issue(q, { merchantId: 'm1', code: 'TENOFF', discount: { kind: 'amount', amount: EUR(1_000n) }, expiresAt, maxUses: 2 }));
  const percent = await tx((q) => ledger.vouchers.issue(q, { merchantId: 'm1', code: 'QUARTER', discount: { kind: 'percent', percent: 25 }, expiresAt, maxUses: 1 }));
  seen.taken = await outcome(() => tx((q) => ledger.vouchers.issue(q, { merchantId: 'm2', code: 'tenoff', discount: { kind: 'percent', percent: 5 }, expiresAt, maxUses: 1 })));
  seen.generated = /^[2-9A-HJKMNP-Z]{10}$/.test((await tx((q) => ledger.vouchers.issue(q, { merchantId: 'm1', code: undefined, discount: { kind: 'percent', percent: 5 }, expiresAt, maxUses: 1 }))).code);
  seen.quote = await outcome(async () => {
    const r = await ledger.vouchers.quote(db, 'm1', 'quarter', EUR(999n));
    return { discount: String(r.discount), toPay: String(r.toPay) };
  });
  seen.foreign = await outcome(() => ledger.vouchers.get(db, 'm2', 'TENOFF'));
  seen.unknown = await outcome(() => ledger.vouchers.get(db, 'm1', 'NOPE'));

  seen.tooPoor = summary(await hold('p0', 7_000n, 'TENOFF'));
  seen.usesAfterTooPoor = await uses(amountOff.voucherId);
  const p1 = await hold('p1', 3_000n, 'TENOFF');
  seen.p1 = summary(p1);
  const p2 = await hold('p2', 2_000n, 'QUARTER');
  seen.p2 = summary(p2);
  seen.usedUp = summary(await hold('p3', 2_000n, 'QUARTER'));
  seen.usesAfterHolds = [await uses(amountOff.voucherId), await uses(percent.voucherId)];
  seen.wallet = (await ledger.balance(db, 'wallet:alice', 'EUR')).held.toString();

  await tx((q) => ledger.void(q, holdIdOf(p2)));
  seen.usesAfterVoid = await uses(percent.voucherId);
  const captured = await tx((q) => ledger.capture(q, { holdId: holdIdOf(p1) }));
  seen.capture = captured.transfer.postings.map((p) => `${p.account} ${p.amount}`);
  seen.balances = { merchantVouchers: await posted('merchant:m1:vouchers'), externalVouchers: await posted('external:vouchers'), escrow: await posted('merchant:m1:escrow') };

  await db.query("UPDATE vouchers SET expires_at = now() - interval '1 second' WHERE voucher_id = $1", [amountOff.voucherId]);
  seen.expired = String(await hold('p4', 3_000n, 'TENOFF')).replace(/expired at \S+/, 'expired at <time>');

  const check = await checkLedger(db);
  seen.check = { ok: check.ok, violations: check.violations };
  return seen;
}
