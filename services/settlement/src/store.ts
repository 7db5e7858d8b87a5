import { randomUUID } from 'node:crypto';
import type { Queryable } from '../../../platform/db';
import { FailedPrecondition } from '../../../platform/errors';
import { parseAccount, type AccountKind } from './domain/accounts';
import type { EscrowChange, EscrowStatus, HoldMoney, HoldStatus } from './domain/hold';
import { INT64_MAX, INT64_MIN } from './domain/money';
import { assertBalanced, netByAccount, type Leg } from './domain/postings';

export type TransferKind = 'topup' | 'capture' | 'release' | 'refund' | 'payout' | 'voucher';

export interface AccountRow {
  account: string;
  currency: string;
  kind: AccountKind;
  owner: string;
  posted: bigint;
  held: bigint;
}

export interface TransferView {
  transferId: string;
  kind: TransferKind;
  reference: string;
  holdId: string | null;
  createdAt: Date;
  postings: Leg[];
}

export interface HoldRow {
  holdId: string;
  paymentId: string;
  accountId: string;
  merchantId: string;
  deviceId: string;
  currency: string;
  /** What is reserved on the wallet: the net, after any voucher. */
  amount: bigint;
  /** The price before the voucher (= amount when none). */
  gross: bigint;
  /** What the voucher took off (0 when none): the merchant's cost, posted at capture. */
  discount: bigint;
  voucherId: string | null;
  merchantName: string;
  status: HoldStatus;
  createdAt: Date;
  expiresAt: Date;
  endedAt: Date | null;
  captured: bigint;
  escrow: bigint;
  released: bigint;
  refunded: bigint;
  escrowStatus: EscrowStatus | null;
  escrowUntil: Date | null;
  /** expires_at has passed, by the database clock. */
  lapsed: boolean;
  /** escrow_until has passed, by the database clock. */
  escrowDue: boolean;
}

export interface DisputeRow {
  disputeId: string;
  holdId: string;
  reason: string;
  status: 'OPEN' | 'RESOLVED';
  outcome: 'REFUND_BUYER' | 'RELEASE_TO_MERCHANT' | null;
  transferId: string | null;
}

export interface PayoutRow {
  payoutId: string;
  merchantId: string;
  currency: string;
  businessDate: string;
  amount: bigint;
  transferId: string;
  transfers: number;
}

/**
 * int8 arrives as bigint from pg (platform type parser) but from PGlite as a number when it fits
 * in 2^53 and as a bigint otherwise; money must be bigint either way.
 */
export const big = (value: unknown): bigint => (typeof value === 'bigint' ? value : BigInt(value as number | string));

type Raw = Record<string, unknown>;

const HOLD_COLUMNS = `*, (expires_at <= now()) AS lapsed, (escrow_until IS NOT NULL AND escrow_until <= now()) AS escrow_due`;

function toAccount(r: Raw): AccountRow {
  return { account: r.account as string, currency: r.currency as string, kind: r.kind as AccountKind, owner: r.owner as string, posted: big(r.posted), held: big(r.held) };
}

function toHold(r: Raw): HoldRow {
  return {
    holdId: r.hold_id as string,
    paymentId: r.payment_id as string,
    accountId: r.account_id as string,
    merchantId: r.merchant_id as string,
    deviceId: r.device_id as string,
    currency: r.currency as string,
    amount: big(r.amount_minor),
    gross: big(r.gross_minor),
    discount: big(r.discount_minor),
    voucherId: (r.voucher_id as string | null) ?? null,
    merchantName: (r.merchant_name as string | null) ?? '',
    status: r.status as HoldStatus,
    createdAt: r.created_at as Date,
    expiresAt: r.expires_at as Date,
    endedAt: (r.ended_at as Date | null) ?? null,
    captured: big(r.captured_minor),
    escrow: big(r.escrow_minor),
    released: big(r.released_minor),
    refunded: big(r.refunded_minor),
    escrowStatus: (r.escrow_status as EscrowStatus | null) ?? null,
    escrowUntil: (r.escrow_until as Date | null) ?? null,
    lapsed: Boolean(r.lapsed),
    escrowDue: Boolean(r.escrow_due),
  };
}

function toDispute(r: Raw): DisputeRow {
  return {
    disputeId: r.dispute_id as string,
    holdId: r.hold_id as string,
    reason: r.reason as string,
    status: r.status as DisputeRow['status'],
    outcome: (r.outcome as DisputeRow['outcome']) ?? null,
    transferId: (r.transfer_id as string | null) ?? null,
  };
}

function toPayout(r: Raw): PayoutRow {
  return {
    payoutId: r.payout_id as string,
    merchantId: r.merchant_id as string,
    currency: r.currency as string,
    businessDate: r.business_date_text as string,
    amount: big(r.amount_minor),
    transferId: r.transfer_id as string,
    transfers: Number(r.transfers),
  };
}

/** The money fields of a hold, as the pure rules in domain/hold.ts take them. */
export const holdMoney = (h: HoldRow): HoldMoney => ({
  status: h.status,
  escrowStatus: h.escrowStatus,
  currency: h.currency,
  amount: h.amount,
  captured: h.captured,
  escrow: h.escrow,
  released: h.released,
  refunded: h.refunded,
  lapsed: h.lapsed,
});

/**
 * SQL for the ledger. Lock order, everywhere: idempotency key, then at most one hold (or
 * dispute → its hold), then at most one voucher (PlaceHold; a void or expiry giving a use back),
 * then for PlaceHold the band's limits row (band-limits.ts), then account rows in (account,
 * currency) order. That one order is why concurrent transfers never deadlock.
 */
export class LedgerStore {
  async account(q: Queryable, account: string, currency: string, forUpdate = false): Promise<AccountRow | undefined> {
    const { rows } = await q.query<Raw>(`SELECT * FROM accounts WHERE account = $1 AND currency = $2${forUpdate ? ' FOR UPDATE' : ''}`, [account, currency]);
    return rows[0] ? toAccount(rows[0]) : undefined;
  }

  /** Locks an account row, creating it (zero balance) first if it does not exist. */
  async lockOrCreate(q: Queryable, account: string, currency: string): Promise<AccountRow> {
    const parsed = parseAccount(account);
    if (!parsed) throw new Error(`not a ledger account name: ${account}`);
    // The no-op DO UPDATE takes the row lock whether the row is new or not.
    const { rows } = await q.query<Raw>(
      `INSERT INTO accounts (account, currency, kind, owner) VALUES ($1, $2, $3, $4)
       ON CONFLICT (account, currency) DO UPDATE SET updated_at = accounts.updated_at RETURNING *`,
      [account, currency, parsed.kind, parsed.owner],
    );
    return toAccount(rows[0]!);
  }

  /**
   * Writes one balanced transfer: locks its accounts in the global order, inserts the transfer
   * and its postings, and moves the stored balances, all in the caller's transaction. `held`
   * changes a wallet's reservation in the same UPDATE as its balance, so the CHECK on available
   * money sees the final row, never a half-applied one.
   */
  async post(q: Queryable, t: { kind: TransferKind; reference: string; holdId?: string; legs: Leg[]; held?: Leg }): Promise<TransferView> {
    assertBalanced(t.legs);
    const net = netByAccount(t.legs);
    if (t.held && !net.some((n) => n.account === t.held!.account && n.currency === t.held!.currency)) throw new Error('held change on an account the transfer does not touch');
    const before = new Map<string, AccountRow>();
    for (const n of net) before.set(`${n.account}\u0000${n.currency}`, await this.lockOrCreate(q, n.account, n.currency));
    for (const n of net) {
      const after = before.get(`${n.account}\u0000${n.currency}`)!.posted + n.amount;
      if (after > INT64_MAX || after < INT64_MIN) throw new FailedPrecondition(`the balance of ${n.account} would overflow int64`);
    }
    const transferId = randomUUID();
    const { rows } = await q.query<{ created_at: Date }>(
      'INSERT INTO transfers (transfer_id, kind, reference, hold_id) VALUES ($1, $2, $3, $4) RETURNING created_at',
      [transferId, t.kind, t.reference, t.holdId ?? null],
    );
    const params: unknown[] = [transferId];
    const values = t.legs.map((leg, i) => {
      params.push(i, leg.account, leg.currency, leg.amount);
      const base = params.length - 4;
      return `($1, $${base + 1}, $${base + 2}, $${base + 3}, $${base + 4})`;
    });
    await q.query(`INSERT INTO postings (transfer_id, seq, account, currency, amount_minor) VALUES ${values.join(', ')}`, params);
    for (const n of net) {
      const heldDelta = t.held && t.held.account === n.account && t.held.currency === n.currency ? t.held.amount : 0n;
      await q.query('UPDATE accounts SET posted = posted + $3, held = held + $4, updated_at = now() WHERE account = $1 AND currency = $2', [n.account, n.currency, n.amount, heldDelta]);
    }
    return { transferId, kind: t.kind, reference: t.reference, holdId: t.holdId ?? null, createdAt: rows[0]!.created_at, postings: t.legs };
  }

  /** Changes a wallet's reservation without moving money (place, void, expire). */
  async changeHeld(q: Queryable, account: string, currency: string, delta: bigint): Promise<void> {
    const { rowCount } = await q.query('UPDATE accounts SET held = held + $3, updated_at = now() WHERE account = $1 AND currency = $2 AND held + $3 >= 0', [account, currency, delta]);
    if (rowCount !== 1) throw new Error(`held on ${account} ${currency} cannot change by ${delta}`);
  }

  async transfer(q: Queryable, transferId: string): Promise<TransferView | undefined> {
    const { rows } = await q.query<Raw>('SELECT * FROM transfers WHERE transfer_id = $1', [transferId]);
    const t = rows[0];
    if (!t) return undefined;
    const { rows: postings } = await q.query<Raw>('SELECT account, currency, amount_minor FROM postings WHERE transfer_id = $1 ORDER BY seq', [transferId]);
    return {
      transferId,
      kind: t.kind as TransferKind,
      reference: t.reference as string,
      holdId: (t.hold_id as string | null) ?? null,
      createdAt: t.created_at as Date,
      postings: postings.map((p) => ({ account: p.account as string, currency: p.currency as string, amount: big(p.amount_minor) })),
    };
  }

  /** A hold, optionally locked; with `skipLocked` a hold another transaction is working on reads as absent. */
  async hold(q: Queryable, holdId: string, lock: 'none' | 'update' | 'skipLocked' = 'none'): Promise<HoldRow | undefined> {
    const suffix = lock === 'update' ? ' FOR UPDATE' : lock === 'skipLocked' ? ' FOR UPDATE SKIP LOCKED' : '';
    const { rows } = await q.query<Raw>(`SELECT ${HOLD_COLUMNS} FROM holds WHERE hold_id = $1${suffix}`, [holdId]);
    return rows[0] ? toHold(rows[0]) : undefined;
  }

  async holdByPayment(q: Queryable, paymentId: string): Promise<HoldRow | undefined> {
    const { rows } = await q.query<Raw>(`SELECT ${HOLD_COLUMNS} FROM holds WHERE payment_id = $1`, [paymentId]);
    return rows[0] ? toHold(rows[0]) : undefined;
  }

  /** Ends a PENDING hold; the WHERE makes ending twice impossible even if a caller forgot the lock. */
  async endHold(q: Queryable, holdId: string, status: 'VOIDED' | 'EXPIRED'): Promise<HoldRow> {
    const { rows } = await q.query<Raw>(`UPDATE holds SET status = $2, ended_at = now() WHERE hold_id = $1 AND status = 'PENDING' RETURNING ${HOLD_COLUMNS}`, [holdId, status]);
    if (!rows[0]) throw new Error(`hold ${holdId} was not pending`);
    return toHold(rows[0]);
  }

  async markCaptured(q: Queryable, holdId: string, captured: bigint, protectionSeconds: number): Promise<HoldRow> {
    const { rows } = await q.query<Raw>(
      `UPDATE holds SET status = 'CAPTURED', ended_at = now(), captured_minor = $2, escrow_minor = $2, escrow_status = 'HELD',
         escrow_until = now() + make_interval(secs => $3)
       WHERE hold_id = $1 AND status = 'PENDING' RETURNING ${HOLD_COLUMNS}`,
      [holdId, captured, protectionSeconds],
    );
    if (!rows[0]) throw new Error(`hold ${holdId} was not pending`);
    return toHold(rows[0]);
  }

  async setEscrow(q: Queryable, holdId: string, change: Pick<EscrowChange, 'escrowStatus' | 'escrow' | 'released' | 'refunded'>): Promise<HoldRow> {
    const { rows } = await q.query<Raw>(
      `UPDATE holds SET escrow_status = $2, escrow_minor = $3, released_minor = $4, refunded_minor = $5
       WHERE hold_id = $1 AND status = 'CAPTURED' RETURNING ${HOLD_COLUMNS}`,
      [holdId, change.escrowStatus, change.escrow, change.released, change.refunded],
    );
    if (!rows[0]) throw new Error(`hold ${holdId} is not captured`);
    return toHold(rows[0]);
  }

  /** Holds due for the sweeper: pending past expiry, or escrow past its protection window. */
  async dueHolds(q: Queryable, what: 'expiry' | 'release', limit: number): Promise<string[]> {
    const sql =
      what === 'expiry'
        ? "SELECT hold_id FROM holds WHERE status = 'PENDING' AND expires_at <= now() ORDER BY expires_at LIMIT $1"
        : "SELECT hold_id FROM holds WHERE escrow_status = 'HELD' AND escrow_until <= now() ORDER BY escrow_until LIMIT $1";
    const { rows } = await q.query<{ hold_id: string }>(sql, [limit]);
    return rows.map((r) => r.hold_id);
  }

  async insertDispute(q: Queryable, holdId: string, reason: string): Promise<DisputeRow> {
    const { rows } = await q.query<Raw>("INSERT INTO disputes (dispute_id, hold_id, reason, status) VALUES ($1, $2, $3, 'OPEN') RETURNING *", [randomUUID(), holdId, reason]);
    return toDispute(rows[0]!);
  }

  async dispute(q: Queryable, disputeId: string, forUpdate = false): Promise<DisputeRow | undefined> {
    const { rows } = await q.query<Raw>(`SELECT * FROM disputes WHERE dispute_id = $1${forUpdate ? ' FOR UPDATE' : ''}`, [disputeId]);
    return rows[0] ? toDispute(rows[0]) : undefined;
  }

  async resolveDispute(q: Queryable, disputeId: string, outcome: NonNullable<DisputeRow['outcome']>, transferId: string): Promise<void> {
    const { rowCount } = await q.query(
      "UPDATE disputes SET status = 'RESOLVED', outcome = $2, transfer_id = $3, resolved_at = now() WHERE dispute_id = $1 AND status = 'OPEN'",
      [disputeId, outcome, transferId],
    );
    if (rowCount !== 1) throw new Error(`dispute ${disputeId} was not open`);
  }

  /** Records a consumed event; false when it was seen before (a redelivery). */
  async markProcessed(q: Queryable, eventId: string): Promise<boolean> {
    const { rowCount } = await q.query('INSERT INTO processed_events (event_id) VALUES ($1) ON CONFLICT DO NOTHING', [eventId]);
    return rowCount === 1;
  }

  async freezeDevice(q: Queryable, deviceId: string, accountId: string, eventId: string): Promise<void> {
    await q.query('INSERT INTO frozen_devices (device_id, account_id, event_id) VALUES ($1, $2, $3) ON CONFLICT (device_id) DO NOTHING', [deviceId, accountId, eventId]);
  }

  /** End of `businessDate` in UTC, or now if the day is still running; `future` when the day has not begun. */
  async payoutCutoff(q: Queryable, businessDate: string): Promise<{ cutoff: Date; future: boolean }> {
    const { rows } = await q.query<{ cutoff: Date; future: boolean }>(
      `SELECT LEAST((($1::date + 1)::timestamp AT TIME ZONE 'UTC'), now()) AS cutoff,
              ($1::date > (now() AT TIME ZONE 'UTC')::date) AS future`,
      [businessDate],
    );
    return rows[0]!;
  }

  /** Merchant payables with transfers committed before `cutoff` and not yet paid out, and no payout yet for the date. */
  async payoutCandidates(q: Queryable, businessDate: string, cutoff: Date): Promise<Array<{ account: string; currency: string; merchantId: string }>> {
    const { rows } = await q.query<{ account: string; currency: string; owner: string }>(
      `SELECT a.account, a.currency, a.owner FROM accounts a
       WHERE a.kind = 'PAYABLE'
         AND EXISTS (SELECT 1 FROM postings p JOIN transfers t USING (transfer_id)
                     WHERE p.account = a.account AND p.currency = a.currency AND t.kind <> 'payout' AND t.created_at < $2
                       AND NOT EXISTS (SELECT 1 FROM payout_items i WHERE i.transfer_id = p.transfer_id))
         AND NOT EXISTS (SELECT 1 FROM payouts po WHERE po.merchant_id = a.owner AND po.currency = a.currency AND po.business_date = $1::date)
       ORDER BY a.account, a.currency`,
      [businessDate, cutoff],
    );
    return rows.map((r) => ({ account: r.account, currency: r.currency, merchantId: r.owner }));
  }

  /** The net of a payable's unpaid transfers before `cutoff`; call with the payable row locked so it cannot change underneath. */
  async unpaidNet(q: Queryable, account: string, currency: string, cutoff: Date): Promise<{ net: bigint; transfers: number }> {
    const { rows } = await q.query<Raw>(
      `SELECT coalesce(sum(p.amount_minor), 0)::bigint AS net, count(DISTINCT p.transfer_id)::int AS transfers
       FROM postings p JOIN transfers t USING (transfer_id)
       WHERE p.account = $1 AND p.currency = $2 AND t.kind <> 'payout' AND t.created_at < $3
         AND NOT EXISTS (SELECT 1 FROM payout_items i WHERE i.transfer_id = p.transfer_id)`,
      [account, currency, cutoff],
    );
    return { net: big(rows[0]!.net), transfers: Number(rows[0]!.transfers) };
  }

  async insertPayout(
    q: Queryable,
    p: { merchantId: string; currency: string; businessDate: string; amount: bigint; transferId: string; transfers: number; account: string; cutoff: Date },
  ): Promise<string> {
    const payoutId = randomUUID();
    await q.query('INSERT INTO payouts (payout_id, merchant_id, currency, business_date, amount_minor, transfer_id, transfers) VALUES ($1, $2, $3, $4::date, $5, $6, $7)', [
      payoutId,
      p.merchantId,
      p.currency,
      p.businessDate,
      p.amount,
      p.transferId,
      p.transfers,
    ]);
    await q.query(
      `INSERT INTO payout_items (transfer_id, payout_id)
       SELECT DISTINCT p.transfer_id, $4::uuid FROM postings p JOIN transfers t USING (transfer_id)
       WHERE p.account = $1 AND p.currency = $2 AND t.kind <> 'payout' AND t.created_at < $3
         AND NOT EXISTS (SELECT 1 FROM payout_items i WHERE i.transfer_id = p.transfer_id)`,
      [p.account, p.currency, p.cutoff, payoutId],
    );
    return payoutId;
  }

  async payouts(q: Queryable, businessDate: string): Promise<PayoutRow[]> {
    const { rows } = await q.query<Raw>(
      "SELECT *, to_char(business_date, 'YYYY-MM-DD') AS business_date_text FROM payouts WHERE business_date = $1::date ORDER BY merchant_id, currency",
      [businessDate],
    );
    return rows.map(toPayout);
  }
}
