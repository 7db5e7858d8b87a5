import type { Queryable } from '../../../platform/db';
import { big } from './store';

export interface LedgerCheck {
  ok: boolean;
  /** One readable line per broken rule; empty when the ledger is sound. */
  violations: string[];
  counts: { accounts: number; transfers: number; postings: number; holds: number };
}

interface Rule {
  name: string;
  sql: string;
  describe: (row: Record<string, unknown>) => string;
}

// Each query returns the rows that break its rule; a sound ledger returns none for every rule.
const RULES: Rule[] = [
  {
    name: 'transfer balances',
    sql: `SELECT transfer_id, currency, sum(amount_minor)::text AS sum FROM postings GROUP BY transfer_id, currency HAVING sum(amount_minor) <> 0`,
    describe: (r) => `transfer ${r.transfer_id}: postings in ${r.currency} sum to ${r.sum}, not zero`,
  },
  {
    name: 'transfer has postings',
    sql: `SELECT t.transfer_id, count(p.seq)::int AS n FROM transfers t LEFT JOIN postings p USING (transfer_id) GROUP BY t.transfer_id HAVING count(p.seq) < 2`,
    describe: (r) => `transfer ${r.transfer_id} has ${r.n} posting(s); a transfer needs at least two`,
  },
  {
    name: 'stored balance equals postings',
    sql: `SELECT coalesce(a.account, s.account) AS account, coalesce(a.currency, s.currency) AS currency, a.posted::text AS stored, coalesce(s.sum, 0)::text AS summed
          FROM accounts a FULL JOIN (SELECT account, currency, sum(amount_minor) AS sum FROM postings GROUP BY account, currency) s
            ON s.account = a.account AND s.currency = a.currency
          WHERE a.posted IS NULL OR a.posted <> coalesce(s.sum, 0)`,
    describe: (r) => `account ${r.account} ${r.currency}: stored balance ${r.stored ?? '(missing)'} but postings sum to ${r.summed}`,
  },
  {
    name: 'wallet held equals pending holds',
    sql: `SELECT a.account, a.currency, a.held::text AS held, coalesce(h.sum, 0)::text AS pending
          FROM accounts a LEFT JOIN (SELECT 'wallet:' || account_id AS account, currency, sum(amount_minor) AS sum FROM holds WHERE status = 'PENDING' GROUP BY 1, 2) h
            ON h.account = a.account AND h.currency = a.currency
          WHERE a.kind = 'WALLET' AND a.held <> coalesce(h.sum, 0)
          UNION ALL
          SELECT h.account, h.currency, '(no wallet)', h.sum::text FROM (SELECT 'wallet:' || account_id AS account, currency, sum(amount_minor) AS sum FROM holds WHERE status = 'PENDING' GROUP BY 1, 2) h
          WHERE NOT EXISTS (SELECT 1 FROM accounts a WHERE a.account = h.account AND a.currency = h.currency)`,
    describe: (r) => `wallet ${r.account} ${r.currency}: held ${r.held} but its pending holds total ${r.pending}`,
  },
  {
    name: 'no wallet below zero available',
    sql: `SELECT account, currency, (posted - held)::text AS available FROM accounts WHERE kind = 'WALLET' AND posted - held < 0`,
    describe: (r) => `wallet ${r.account} ${r.currency}: available ${r.available} is below zero`,
  },
  {
    name: 'escrow never negative',
    sql: `SELECT account, currency, posted::text AS posted FROM accounts WHERE kind = 'ESCROW' AND posted < 0`,
    describe: (r) => `escrow ${r.account} ${r.currency} is negative (${r.posted})`,
  },
  {
    name: 'each hold ended at most once',
    sql: `SELECT h.hold_id, h.status, (h.ended_at IS NULL) AS open, coalesce(c.n, 0) AS captures, coalesce(c.taken, 0)::text AS taken, h.captured_minor::text AS captured
          FROM holds h LEFT JOIN (
            SELECT t.hold_id, count(DISTINCT t.transfer_id)::int AS n, -sum(p.amount_minor) FILTER (WHERE p.account LIKE 'wallet:%') AS taken
            FROM transfers t JOIN postings p USING (transfer_id) WHERE t.kind = 'capture' GROUP BY t.hold_id) c ON c.hold_id = h.hold_id
          WHERE (h.status = 'PENDING') <> (h.ended_at IS NULL)
             OR (h.status = 'CAPTURED' AND (coalesce(c.n, 0) <> 1 OR coalesce(c.taken, 0) <> h.captured_minor))
             OR (h.status <> 'CAPTURED' AND coalesce(c.n, 0) <> 0)`,
    describe: (r) => `hold ${r.hold_id} is ${r.status}${r.open ? ' (not ended)' : ''} with ${r.captures} capture transfer(s) taking ${r.taken} (captured ${r.captured})`,
  },
  {
    name: 'captured money is escrowed, released or refunded',
    sql: `SELECT hold_id, captured_minor::text AS captured, escrow_minor::text AS escrow, released_minor::text AS released, refunded_minor::text AS refunded
          FROM holds WHERE captured_minor <> escrow_minor + released_minor + refunded_minor OR refunded_minor > captured_minor`,
    describe: (r) => `hold ${r.hold_id}: captured ${r.captured} ≠ escrow ${r.escrow} + released ${r.released} + refunded ${r.refunded}`,
  },
  {
    name: 'refunds match their transfers',
    sql: `SELECT h.hold_id, h.refunded_minor::text AS refunded, coalesce(r.sum, 0)::text AS transferred
          FROM holds h LEFT JOIN (SELECT t.hold_id, sum(p.amount_minor) AS sum FROM transfers t JOIN postings p USING (transfer_id)
                                  WHERE t.kind = 'refund' AND p.account LIKE 'wallet:%' GROUP BY t.hold_id) r ON r.hold_id = h.hold_id
          WHERE h.refunded_minor <> coalesce(r.sum, 0)`,
    describe: (r) => `hold ${r.hold_id}: refunded ${r.refunded} but refund transfers credited ${r.transferred}`,
  },
  {
    name: 'merchant escrow equals its holds',
    sql: `SELECT coalesce(a.account, e.account) AS account, coalesce(a.currency, e.currency) AS currency, coalesce(a.posted, 0)::text AS stored, coalesce(e.sum, 0)::text AS holds
          FROM (SELECT * FROM accounts WHERE kind = 'ESCROW') a
          FULL JOIN (SELECT 'merchant:' || merchant_id || ':escrow' AS account, currency, sum(escrow_minor) AS sum FROM holds WHERE status = 'CAPTURED' GROUP BY 1, 2) e
            ON e.account = a.account AND e.currency = a.currency
          WHERE coalesce(a.posted, 0) <> coalesce(e.sum, 0)`,
    describe: (r) => `escrow ${r.account} ${r.currency}: balance ${r.stored} but its holds have ${r.holds} in escrow`,
  },
  {
    name: 'merchant payable equals released minus paid out',
    sql: `SELECT coalesce(a.account, x.account) AS account, coalesce(a.currency, x.currency) AS currency, coalesce(a.posted, 0)::text AS stored, coalesce(x.sum, 0)::text AS expected
          FROM (SELECT * FROM accounts WHERE kind = 'PAYABLE') a
          FULL JOIN (
            SELECT account, currency, sum(v) AS sum FROM (
              SELECT 'merchant:' || merchant_id || ':payable' AS account, currency, released_minor AS v FROM holds WHERE status = 'CAPTURED'
              UNION ALL
              SELECT 'merchant:' || merchant_id || ':payable', currency, -amount_minor FROM payouts) u
            GROUP BY account, currency) x
            ON x.account = a.account AND x.currency = a.currency
          WHERE coalesce(a.posted, 0) <> coalesce(x.sum, 0)`,
    describe: (r) => `payable ${r.account} ${r.currency}: balance ${r.stored} but released minus paid out is ${r.expected}`,
  },
  {
    name: 'each payout matches its items',
    sql: `SELECT po.payout_id, po.amount_minor::text AS amount, coalesce(i.sum, 0)::text AS items
          FROM payouts po LEFT JOIN (
            SELECT it.payout_id, sum(p.amount_minor) AS sum FROM payout_items it JOIN payouts po2 ON po2.payout_id = it.payout_id
              JOIN postings p ON p.transfer_id = it.transfer_id AND p.account = 'merchant:' || po2.merchant_id || ':payable' AND p.currency = po2.currency
            GROUP BY it.payout_id) i ON i.payout_id = po.payout_id
          WHERE po.amount_minor <> coalesce(i.sum, 0)`,
    describe: (r) => `payout ${r.payout_id} pays ${r.amount} but its transfers net ${r.items}`,
  },
  {
    name: 'voucher accounts never positive',
    sql: `SELECT account, currency, posted::text AS posted FROM accounts WHERE kind = 'VOUCHER' AND posted > 0`,
    describe: (r) => `vouchers ${r.account} ${r.currency} is positive (${r.posted}); a merchant's voucher cost only grows`,
  },
  {
    name: 'voucher accounts move only by voucher transfers',
    sql: `SELECT DISTINCT t.transfer_id, t.kind, p.account FROM postings p JOIN transfers t USING (transfer_id)
          WHERE ((p.account LIKE 'merchant:%:vouchers' OR p.account = 'external:vouchers') AND t.kind <> 'voucher')
             OR (t.kind = 'voucher' AND NOT (p.account LIKE 'merchant:%:vouchers' OR p.account = 'external:vouchers'))`,
    describe: (r) => `transfer ${r.transfer_id} (${r.kind}) posts to ${r.account}`,
  },
  {
    name: 'each captured voucher hold has one voucher transfer of its discount',
    sql: `SELECT h.hold_id, h.status, h.discount_minor::text AS discount, coalesce(v.n, 0) AS transfers, coalesce(v.cost, 0)::text AS cost
          FROM holds h LEFT JOIN (
            SELECT t.hold_id, count(DISTINCT t.transfer_id)::int AS n, -sum(p.amount_minor) FILTER (WHERE p.account LIKE 'merchant:%:vouchers') AS cost
            FROM transfers t JOIN postings p USING (transfer_id) WHERE t.kind = 'voucher' GROUP BY t.hold_id) v ON v.hold_id = h.hold_id
          WHERE (h.status = 'CAPTURED' AND h.discount_minor > 0 AND (coalesce(v.n, 0) <> 1 OR coalesce(v.cost, 0) <> h.discount_minor))
             OR ((h.status <> 'CAPTURED' OR h.discount_minor = 0) AND coalesce(v.n, 0) <> 0)`,
    describe: (r) => `hold ${r.hold_id} is ${r.status} with discount ${r.discount} and ${r.transfers} voucher transfer(s) costing ${r.cost}`,
  },
  {
    name: 'merchant vouchers equal the discounts of captured holds',
    sql: `SELECT coalesce(a.account, x.account) AS account, coalesce(a.currency, x.currency) AS currency, coalesce(a.posted, 0)::text AS stored, coalesce(x.sum, 0)::text AS expected
          FROM (SELECT * FROM accounts WHERE kind = 'VOUCHER') a
          FULL JOIN (SELECT 'merchant:' || merchant_id || ':vouchers' AS account, currency, -sum(discount_minor) AS sum FROM holds
                     WHERE status = 'CAPTURED' AND discount_minor > 0 GROUP BY 1, 2) x
            ON x.account = a.account AND x.currency = a.currency
          WHERE coalesce(a.posted, 0) <> coalesce(x.sum, 0)`,
    describe: (r) => `vouchers ${r.account} ${r.currency}: balance ${r.stored} but its captured holds' discounts total ${r.expected}`,
  },
  {
    name: 'voucher uses equal standing redemptions',
    sql: `SELECT v.voucher_id, v.uses, v.max_uses, coalesce(r.n, 0) AS standing
          FROM vouchers v LEFT JOIN (SELECT voucher_id, count(*)::int AS n FROM voucher_redemptions WHERE released_at IS NULL GROUP BY voucher_id) r
            ON r.voucher_id = v.voucher_id
          WHERE v.uses <> coalesce(r.n, 0) OR v.uses > v.max_uses`,
    describe: (r) => `voucher ${r.voucher_id}: uses ${r.uses} (max ${r.max_uses}) but ${r.standing} standing redemption(s)`,
  },
  {
    name: 'each voucher hold has its redemption, released iff the hold was voided or expired',
    sql: `SELECT h.hold_id, h.status, h.voucher_id, r.voucher_id AS redeemed, (r.released_at IS NOT NULL) AS released
          FROM holds h FULL JOIN voucher_redemptions r ON r.hold_id = h.hold_id
          WHERE (h.voucher_id IS NOT NULL OR r.hold_id IS NOT NULL)
            AND (h.voucher_id IS DISTINCT FROM r.voucher_id
              OR (r.released_at IS NOT NULL) IS DISTINCT FROM (h.status IN ('VOIDED', 'EXPIRED'))
              OR r.discount_minor IS DISTINCT FROM h.discount_minor OR r.gross_minor IS DISTINCT FROM h.gross_minor)`,
    describe: (r) => `hold ${r.hold_id ?? '(none)'} (${r.status ?? 'missing'}) with voucher ${r.voucher_id ?? '(none)'}: redemption of ${r.redeemed ?? '(none)'}${r.released ? ', released' : ''}`,
  },
];

/**
 * Checks the ledger's invariants against what is stored, read in one snapshot so a busy ledger
 * does not produce false alarms: each transfer balances per currency; stored balances equal
 * the sum of postings; wallets' reservations equal their pending holds and never exceed their
 * balance; each hold ended at most once; every captured cent is in escrow, released or
 * refunded; escrow and payable accounts agree with the holds and payouts behind them; a
 * merchant's vouchers account is the discounts of its captured voucher holds, and each
 * voucher's uses are its standing redemptions.
 */
export async function checkLedger(db: { tx<T>(fn: (q: Queryable) => Promise<T>): Promise<T> }): Promise<LedgerCheck> {
  return db.tx(async (q) => {
    // REPEATABLE READ: every rule sees the same committed ledger (PGlite has one connection anyway).
    await q.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    const violations: string[] = [];
    for (const rule of RULES) {
      const { rows } = await q.query<Record<string, unknown>>(rule.sql);
      for (const row of rows) violations.push(`${rule.name}: ${rule.describe(row)}`);
    }
    const { rows } = await q.query<Record<string, unknown>>(
      'SELECT (SELECT count(*) FROM accounts)::int AS accounts, (SELECT count(*) FROM transfers)::int AS transfers, (SELECT count(*) FROM postings)::int AS postings, (SELECT count(*) FROM holds)::int AS holds',
    );
    const c = rows[0]!;
    return {
      ok: violations.length === 0,
      violations,
      counts: { accounts: Number(big(c.accounts)), transfers: Number(big(c.transfers)), postings: Number(big(c.postings)), holds: Number(big(c.holds)) },
    };
  });
}
