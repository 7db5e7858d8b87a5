import type { BandLimitsChanged } from '../../../gen/wristpay/events/v1/events';
import type { Queryable } from '../../../platform/db';
import { NotFound } from '../../../platform/errors';
import { newEvent } from '../../../platform/events';
import { enqueueEvent } from '../../../platform/outbox';
import { NO_LIMITS, remainingToday, requireExpectedVersion, type LimitSettings } from './domain/limits';
import { toMoney, type Amount } from './domain/money';
import { big } from './store';

const SOURCE = 'settlement';
export const LIMITS_CHANGED = 'payment.limits.changed';

/** A band's limits row as stored. */
export interface BandLimitsRow extends LimitSettings {
  deviceId: string;
  accountId: string;
  version: bigint;
  updatedAt: Date;
  updatedBy: string;
}

/** What GetBandLimits / SetBandLimits answer: the settings plus today's spending on the band. */
export interface BandLimitsView extends LimitSettings {
  deviceId: string;
  accountId: string;
  /** 0 when the band never had limits set. */
  version: bigint;
  updatedAt: Date | null;
  updatedBy: string;
  /** Undefined only when there is no currency to say it in: no limits and no holds today. */
  spentToday: Amount | undefined;
  remainingToday: Amount | undefined;
}

export interface SetLimitsInput {
  deviceId: string;
  accountId: string;
  settings: LimitSettings;
  reason: string;
  expectedVersion: bigint;
  /** The caller identity the change is recorded under. */
  changedBy: string;
}

type Raw = Record<string, unknown>;

const nullableBig = (value: unknown): bigint | null => (value === null || value === undefined ? null : big(value));

function toRow(r: Raw): BandLimitsRow {
  return {
    deviceId: r.device_id as string,
    accountId: r.account_id as string,
    currency: (r.currency as string | null) ?? null,
    perPayment: nullableBig(r.per_payment_minor),
    perDay: nullableBig(r.per_day_minor),
    frozen: Boolean(r.frozen),
    version: big(r.version),
    updatedAt: r.updated_at as Date,
    updatedBy: r.updated_by as string,
  };
}

/**
 * A band's spending limits: the SetBandLimits / GetBandLimits store code. PlaceHold's check is in
 * place_hold (migrations/006_place_hold.sql). Lock order (see LedgerStore): idempotency key,
 * voucher row, then the band_limits row, then wallet rows. Concurrent PlaceHolds on one band with
 * limits queue on its row, so each sees the holds committed before it when it sums today's
 * spending: together they never pass the daily limit, and a change to the limits waits for (and
 * is seen by) every hold after it.
 */
export class BandLimits {
  /** GetBandLimits: a band never given limits answers version 0; one owned by another account is NOT_FOUND. */
  async get(q: Queryable, deviceId: string, accountId: string): Promise<BandLimitsView> {
    const row = await this.row(q, deviceId, false);
    if (row && row.accountId !== accountId) throw missingBand(deviceId, accountId);
    return this.view(q, row, deviceId, accountId);
  }

  /**
   * SetBandLimits inside the caller's transaction: checks ownership and the expected version on
   * the locked row, writes the new settings with the next version, one audit row with the
   * values before and after, and the payment.limits.changed event to the outbox.
   */
  async set(q: Queryable, input: SetLimitsInput): Promise<BandLimitsView> {
    // Twice at most: a concurrent first SetBandLimits for the band may insert the row between
    // our read and our insert; the second pass finds it, locked.
    for (let attempt = 0; attempt < 2; attempt++) {
      const before = await this.row(q, input.deviceId, true);
      if (before && before.accountId !== input.accountId) throw missingBand(input.deviceId, input.accountId);
      requireExpectedVersion(input.expectedVersion, before?.version ?? 0n);
      const after = before ? await this.update(q, input, before.version + 1n) : await this.insert(q, input);
      if (!after) continue;
      await q.query(
        `INSERT INTO band_limit_changes (device_id, version, account_id, changed_by, changed_at, reason,
           currency_before, per_payment_minor_before, per_day_minor_before, frozen_before,
           currency_after, per_payment_minor_after, per_day_minor_after, frozen_after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`,
        [
          after.deviceId, after.version, after.accountId, input.changedBy, after.updatedAt, input.reason,
          ...settingsParams(before ?? NO_LIMITS),
          ...settingsParams(after),
        ],
      );
      const value: BandLimitsChanged = {
        deviceId: after.deviceId,
        accountId: after.accountId,
        perPayment: after.perPayment === null ? undefined : toMoney(after.perPayment, after.currency!),
        perDay: after.perDay === null ? undefined : toMoney(after.perDay, after.currency!),
        frozen: after.frozen,
        version: after.version,
        changedBy: input.changedBy,
        reason: input.reason,
      };
      await enqueueEvent(q, newEvent(LIMITS_CHANGED, SOURCE, { $case: 'limits', value }));
      return this.view(q, after, input.deviceId, input.accountId);
    }
    throw new Error(`band_limits row for ${input.deviceId} neither insertable nor found`);
  }

  /**
   * What the band spent today (UTC, by the database clock) in `currency`: today's pending holds
   * at their amount plus today's captured holds at what was captured. With `accountId`, only
   * that account's holds.
   */
  async spentToday(q: Queryable, deviceId: string, currency: string, accountId?: string): Promise<bigint> {
    // The same function place_hold enforces the daily limit with (migrations/006_place_hold.sql).
    const { rows } = await q.query<{ spent: string }>('SELECT band_spent_today($1, $2, $3)::text AS spent', [deviceId, currency, accountId ?? null]);
    return BigInt(rows[0]!.spent);
  }

  private async row(q: Queryable, deviceId: string, forUpdate: boolean): Promise<BandLimitsRow | undefined> {
    const { rows } = await q.query<Raw>(`SELECT * FROM band_limits WHERE device_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [deviceId]);
    return rows[0] ? toRow(rows[0]) : undefined;
  }

  private async insert(q: Queryable, input: SetLimitsInput): Promise<BandLimitsRow | undefined> {
    const { rows } = await q.query<Raw>(
      `INSERT INTO band_limits (device_id, account_id, currency, per_payment_minor, per_day_minor, frozen, version, updated_at, updated_by)
       VALUES ($1, $2, $3, $4, $5, $6, 1, now(), $7) ON CONFLICT (device_id) DO NOTHING RETURNING *`,
      [input.deviceId, input.accountId, ...settingsParams(input.settings), input.changedBy],
    );
    return rows[0] ? toRow(rows[0]) : undefined;
  }

  private async update(q: Queryable, input: SetLimitsInput, version: bigint): Promise<BandLimitsRow> {
    const { rows } = await q.query<Raw>(
      `UPDATE band_limits SET currency = $2, per_payment_minor = $3, per_day_minor = $4, frozen = $5, version = $6, updated_at = now(), updated_by = $7
       WHERE device_id = $1 RETURNING *`,
      [input.deviceId, ...settingsParams(input.settings), version, input.changedBy],
    );
    return toRow(rows[0]!);
  }

  /**
   * Limits plus today's spending. With limits in a currency, spending is counted in it over
   * every hold on the band (what PlaceHold enforces). A band without limits has no currency of
   * its own: its spending is in the currency of the asking account's latest hold on the band
   * today, over that account's holds only, so nobody learns another account's spending.
   */
  private async view(q: Queryable, row: BandLimitsRow | undefined, deviceId: string, accountId: string): Promise<BandLimitsView> {
    const settings: LimitSettings = row ?? NO_LIMITS;
    let spentToday: Amount | undefined;
    if (settings.currency !== null) {
      spentToday = { minor: await this.spentToday(q, deviceId, settings.currency), currency: settings.currency };
    } else {
      const { rows } = await q.query<{ currency: string }>(
        `SELECT currency FROM holds WHERE device_id = $1 AND account_id = $2 AND created_at >= utc_today_start() ORDER BY created_at DESC LIMIT 1`,
        [deviceId, accountId],
      );
      const currency = rows[0]?.currency;
      if (currency) spentToday = { minor: await this.spentToday(q, deviceId, currency, accountId), currency };
    }
    const remaining = spentToday ? remainingToday(settings, spentToday.minor) : null;
    return {
      ...settings,
      deviceId,
      accountId: row?.accountId ?? accountId,
      version: row?.version ?? 0n,
      updatedAt: row?.updatedAt ?? null,
      updatedBy: row?.updatedBy ?? '',
      spentToday,
      remainingToday: remaining === null ? undefined : { minor: remaining, currency: spentToday!.currency },
    };
  }
}

const settingsParams = (s: LimitSettings): unknown[] => [s.currency, s.perPayment, s.perDay, s.frozen];

/** Worded as a band that is not there: a caller learns nothing about another account's band. */
const missingBand = (deviceId: string, accountId: string) => new NotFound(`no band ${deviceId} for account ${accountId}`);
