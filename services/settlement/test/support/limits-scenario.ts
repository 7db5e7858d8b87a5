import type { BandLimitsChanged } from '../../../../gen/wristpay/events/v1/events';
import { migrate, type Db, type Queryable } from '../../../../platform/db';
import { decodeEvent } from '../../../../platform/events';
import { repoPath } from '../../../../platform/paths';
import type { BandLimitsView } from '../../src/band-limits';
import { NO_LIMITS, type LimitSettings } from '../../src/domain/limits';
import { Ledger } from '../../src/ledger';
import { outcome } from './outcome';

const money = (minor: bigint, currency = 'EUR') => ({ minor, currency });

/** The parts of a view a test can compare across databases (no timestamps), bigints as strings. */
function shown(v: BandLimitsView | string): unknown {
  if (typeof v === 'string') return v;
  return {
    version: String(v.version),
    account: v.accountId,
    currency: v.currency,
    perPayment: v.perPayment === null ? null : String(v.perPayment),
    perDay: v.perDay === null ? null : String(v.perDay),
    frozen: v.frozen,
    by: v.updatedBy,
    spent: v.spentToday ? `${v.spentToday.minor} ${v.spentToday.currency}` : null,
    remaining: v.remainingToday ? `${v.remainingToday.minor} ${v.remainingToday.currency}` : null,
  };
}

/**
 * Band limits driven through the ledger's own code (no gRPC, no NATS) on whatever database `db`
 * is: PlaceHold's order of refusals, the edges of both limits, what counts as spent today,
 * ownership, versions and the audit trail. The test expects the same on PostgreSQL and PGlite.
 */
export async function runLimitsScenario(db: Db): Promise<Record<string, unknown>> {
  await migrate(db, repoPath('services', 'settlement', 'migrations'));
  const ledger = new Ledger({ protectionWindowSeconds: 3600 });
  const tx = <T>(fn: (q: Queryable) => Promise<T>) => db.tx(fn);
  const seen: Record<string, unknown> = {};
  let payment = 0;
  const hold = async (minor: bigint, over: { deviceId?: string; currency?: string; accountId?: string } = {}) => {
    const r = await tx((q) =>
      ledger.placeHold(q, { paymentId: `p${++payment}`, accountId: over.accountId ?? 'alice', merchantId: 'm1', deviceId: over.deviceId ?? 'band-1', amount: money(minor, over.currency), ttlSeconds: 60 }),
    );
    return r.hold ? { outcome: r.outcome, holdId: r.hold.holdId } : { outcome: r.outcome };
  };
  const set = (settings: Partial<LimitSettings>, over: { deviceId?: string; accountId?: string; expectedVersion?: bigint; reason?: string } = {}) =>
    outcome(() =>
      tx((q) =>
        ledger.limits.set(q, {
          deviceId: over.deviceId ?? 'band-1',
          accountId: over.accountId ?? 'alice',
          settings: { ...NO_LIMITS, ...settings },
          reason: over.reason ?? 'test',
          expectedVersion: over.expectedVersion ?? 0n,
          changedBy: 'wallet',
        }),
      ),
    ).then(shown);
  const get = (deviceId = 'band-1', accountId = 'alice') => outcome(() => ledger.limits.get(db, deviceId, accountId)).then(shown);

  await tx((q) => ledger.topUp(q, { accountId: 'alice', amount: money(100_000n), sourceReference: 'bank-1' }));
  await tx((q) => ledger.topUp(q, { accountId: 'alice', amount: money(100_000n, 'USD'), sourceReference: 'bank-2' }));

  seen.neverSet = await get();
  seen.firstSet = await set({ currency: 'EUR', perPayment: 1_000n, perDay: 3_000n });
  seen.perPayment = [(await hold(1_000n)).outcome, (await hold(1_001n)).outcome];
  seen.otherCurrency = (await hold(1n, { currency: 'USD' })).outcome;
  const second = await hold(1_000n);
  seen.daily = [second.outcome, (await hold(1_001n)).outcome, (await hold(1_000n)).outcome, (await hold(1n)).outcome];
  seen.atLimit = await get();

  // Voided holds give the allowance back; a captured one keeps only what was captured.
  await tx((q) => ledger.void(q, second.holdId!));
  seen.afterVoid = await get();
  const third = await hold(1_000n);
  await tx((q) => ledger.capture(q, { holdId: third.holdId!, amount: money(400n) }));
  seen.afterPartialCapture = await get();
  seen.fillToLimit = [(await hold(600n)).outcome, (await hold(1n)).outcome];

  // "Today" is the UTC day by the database clock: a hold stamped just before midnight does not count.
  const { rows } = await db.query<{ hold_id: string }>("SELECT hold_id FROM holds WHERE payment_id = 'p1'");
  await db.query("UPDATE holds SET created_at = (date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC') - interval '1 microsecond' WHERE hold_id = $1", [rows[0]!.hold_id]);
  seen.yesterdayFreed = [await get(), (await hold(1_000n)).outcome, (await hold(1n)).outcome];

  // Frozen comes before the limits; a band reported lost comes before both.
  seen.freeze = await set({ currency: 'EUR', perPayment: 1_000n, perDay: 3_000n, frozen: true }, { expectedVersion: 1n, reason: 'on holiday' });
  seen.frozenHolds = [(await hold(1n)).outcome, (await hold(5_000n)).outcome, (await hold(1n, { currency: 'USD' })).outcome];
  await tx((q) => ledger.freezeDevice(q, { eventId: 'lost-1', deviceId: 'band-lost', accountId: 'alice' }));
  await set({ frozen: true }, { deviceId: 'band-lost' });
  seen.lostAndFrozen = (await hold(1n, { deviceId: 'band-lost' })).outcome;

  // Optimistic concurrency, ownership, and removing limits.
  seen.staleVersion = await set({ frozen: false }, { expectedVersion: 1n });
  seen.afterRefusals = await get();
  seen.otherAccount = [await set({ frozen: false }, { accountId: 'mallory' }), await get('band-1', 'mallory')];
  seen.unfreezeAndLift = await set({ currency: 'EUR', perDay: 10_000n }, { expectedVersion: 2n, reason: 'back home' });
  seen.liftedPerPayment = (await hold(5_000n)).outcome;
  seen.removeAll = await set({});
  seen.noLimitsAnyCurrency = [(await hold(50_000n)).outcome, (await hold(10n, { currency: 'USD' })).outcome];
  // A band without limits shows what the asking account spent on it today, in its latest hold's currency.
  seen.noLimitsView = [await get(), await get('band-2', 'alice')];
  await hold(70n, { deviceId: 'band-2', accountId: 'bob' });
  seen.noLimitsOtherAccount = await get('band-2', 'alice');

  const audit = await db.query<Record<string, unknown>>(
    `SELECT version::text AS v, changed_by, reason, frozen_before, frozen_after, per_payment_minor_before::text AS pp_before, per_payment_minor_after::text AS pp_after,
            per_day_minor_before::text AS pd_before, per_day_minor_after::text AS pd_after, currency_before, currency_after
     FROM band_limit_changes WHERE device_id = 'band-1' ORDER BY version`,
  );
  seen.audit = audit.rows.map((r) => `${r.v} ${r.changed_by} "${r.reason}" ${r.currency_before}/${r.pp_before}/${r.pd_before}/${r.frozen_before} -> ${r.currency_after}/${r.pp_after}/${r.pd_after}/${r.frozen_after}`);
  const outbox = await db.query<{ event: Uint8Array }>('SELECT event FROM outbox ORDER BY seq');
  seen.limitEvents = outbox.rows
    .map((r) => decodeEvent(r.event))
    .filter((e) => e.type === 'payment.limits.changed' && e.payload?.$case === 'limits')
    .map((e) => {
      const v = (e.payload as { value: BandLimitsChanged }).value;
      const limit = (m: BandLimitsChanged['perDay']) => (m ? `${m.amountMinor} ${m.currency}` : '-');
      return `${v.deviceId}/${v.accountId} v${v.version} per_payment=${limit(v.perPayment)} per_day=${limit(v.perDay)} frozen=${v.frozen} by=${v.changedBy} "${v.reason}"`;
    });
  return seen;
}
