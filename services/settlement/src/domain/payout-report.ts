import { formatMoney } from './money';

export interface PayoutLine {
  payoutId: string;
  merchantId: string;
  currency: string;
  amount: bigint;
  transfers: number;
}

/** The day's payouts as a plain-text table with a total per currency, for people and the demo. */
export function payoutReport(businessDate: string, cutoff: Date, lines: readonly PayoutLine[], carried: number): string {
  const header = `Payouts for ${businessDate} (UTC), cut-off ${cutoff.toISOString()}`;
  if (lines.length === 0) return `${header}\nNo merchant has released funds to pay out.${carriedNote(carried)}\n`;
  const rows = lines.map((l) => [l.merchantId, l.currency, formatMoney(l.amount, l.currency), String(l.transfers), l.payoutId]);
  const titles = ['merchant', 'currency', 'amount', 'transfers', 'payout'];
  const widths = titles.map((t, i) => Math.max(t.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 2 || i === 3 ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const totals = new Map<string, { amount: bigint; count: number }>();
  for (const l of lines) {
    const t = totals.get(l.currency) ?? { amount: 0n, count: 0 };
    totals.set(l.currency, { amount: t.amount + l.amount, count: t.count + 1 });
  }
  const totalLines = [...totals.entries()]
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([currency, t]) => `Total ${formatMoney(t.amount, currency)} in ${t.count} payout${t.count === 1 ? '' : 's'}`);
  return [header, line(titles), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line), ...totalLines].join('\n') + carriedNote(carried) + '\n';
}

function carriedNote(carried: number): string {
  return carried > 0 ? `\n${carried} merchant balance${carried === 1 ? '' : 's'} not positive after refunds; carried to the next payout.` : '';
}
