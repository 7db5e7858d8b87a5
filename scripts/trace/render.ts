import Table from 'cli-table3';
import { ATTR } from '../../platform/telemetry/attributes';
import type { Group, PaymentTrace, SlowPayment } from './payments';
import { attributeText, type Span } from './span';

const BAR_WIDTH = 24;
const WHY_WIDTH = 64;
const PREFIX = 'wristpay.';
// Said once in the header, not on every line.
const OMITTED = new Set<string>([ATTR.paymentId]);

const ms = (us: number): string => (us / 1000).toFixed(1);
// No rule between rows: a waterfall reads down its first column; a blank there is the line above continued.
const COMPACT = { mid: '', 'left-mid': '', 'mid-mid': '', 'right-mid': '' };
const table = (head: string[], colWidths?: Array<number | null>) =>
  new Table({ head, chars: COMPACT, style: { head: [], border: [] }, ...(colWidths ? { colWidths, wordWrap: true, wrapOnWordBoundary: true } : {}) });

/** A span's wristpay.* attributes as `name=value`, prefix dropped. */
export function why(span: Span): string {
  return Object.keys(span.attributes)
    .filter((k) => k.startsWith(PREFIX) && !OMITTED.has(k))
    .sort()
    .map((k) => `${k.slice(PREFIX.length)}=${attributeText(span.attributes[k])}`)
    .join(' ');
}

/** `█` over the part of [0, totalUs] the span covers, `·` elsewhere. */
export function bar(offsetUs: number, durationUs: number, totalUs: number, width = BAR_WIDTH): string {
  const scale = totalUs > 0 ? width / totalUs : 0;
  const from = Math.min(width - 1, Math.floor(offsetUs * scale));
  const len = Math.max(1, Math.min(width - from, Math.round(durationUs * scale)));
  return '·'.repeat(from) + '█'.repeat(len) + '·'.repeat(width - from - len);
}

/** `grpc.wristpay.risk.v1.RiskService/Score` → `RiskService/Score`: the service column says whose span it is. */
export const shortName = (name: string): string => name.replace(/^grpc\.wristpay\.[a-z_]+\.v\d+\./, '');

const isDatabase = (span: Span): boolean => span.attributes['db.system'] !== undefined || span.attributes['db.system.name'] !== undefined;

/** Depth-first, children by start time; a span whose parent is not in the trace is a root. */
function ordered(spans: Span[]): Array<{ span: Span; depth: number }> {
  const ids = new Set(spans.map((s) => s.spanId));
  const children = new Map<string, Span[]>();
  const roots: Span[] = [];
  for (const s of spans) {
    if (s.parentSpanId && ids.has(s.parentSpanId)) children.set(s.parentSpanId, [...(children.get(s.parentSpanId) ?? []), s]);
    else roots.push(s);
  }
  const out: Array<{ span: Span; depth: number }> = [];
  const visit = (s: Span, depth: number) => {
    out.push({ span: s, depth });
    for (const c of (children.get(s.spanId) ?? []).sort((a, b) => a.startUs - b.startUs)) visit(c, depth + 1);
  };
  for (const r of roots.sort((a, b) => a.startUs - b.startUs)) visit(r, 0);
  return out;
}

/** The waterfall of each of a payment's traces, oldest first. Database spans are hidden unless `showDb`. */
export function renderWaterfall(paymentId: string, traces: PaymentTrace[], showDb = false): string {
  if (traces.length === 0) return `no trace carries payment ${paymentId}`;
  const first = traces[0]!.startUs;
  const parts = [`payment ${paymentId}: ${traces.length} trace${traces.length === 1 ? '' : 's'}`];
  for (const t of traces) {
    const shown = t.spans.filter((s) => showDb || !isDatabase(s));
    // Hiding a span keeps its children: they hang from the nearest shown ancestor.
    const byId = new Map(t.spans.map((s) => [s.spanId, s]));
    const visible = new Set(shown.map((s) => s.spanId));
    const lifted = shown.map((s) => {
      let parent = s.parentSpanId;
      while (parent && !visible.has(parent) && byId.has(parent)) parent = byId.get(parent)!.parentSpanId;
      return { ...s, ...(parent ? { parentSpanId: parent } : { parentSpanId: undefined }) };
    });
    const end = Math.max(...t.spans.map((s) => s.startUs + s.durationUs));
    const total = end - t.startUs;
    const after = t.startUs - first;
    const hidden = t.spans.length - shown.length;
    parts.push(
      `\ntrace ${t.traceId}  ${new Date(t.startUs / 1000).toISOString()}${after > 0 ? `  (+${(after / 1e6).toFixed(1)} s)` : ''}  ${ms(total)} ms, ${t.spans.length} spans${hidden ? ` (${hidden} database spans hidden; --db shows them)` : ''}`,
    );
    const out = table(['span', 'service', 'status', 'at ms', 'ms', 'timeline', 'why (wristpay.*)'], [null, null, null, null, null, null, WHY_WIDTH] as Array<number | null>);
    for (const { span, depth } of ordered(lifted)) {
      out.push([`${'  '.repeat(depth)}${shortName(span.name)}`, span.service, span.error ? 'ERROR' : 'ok', ms(span.startUs - t.startUs), ms(span.durationUs), bar(span.startUs - t.startUs, span.durationUs, total), why(span)]);
    }
    parts.push(out.toString());
  }
  return parts.join('\n');
}

const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;

/** Declines grouped by reason (or step-ups by risk reasons, with how they ended). */
export function renderGroups(title: string, groups: Group[], what: 'declined' | 'challenged'): string {
  const total = groups.reduce((n, g) => n + g.count, 0);
  if (total === 0) return `${title}: none`;
  const head = what === 'declined' ? ['reason', 'payments', 'share', 'message (first)', 'sample payment ids'] : ['risk reasons', 'payments', 'share', 'confirmed / declined / expired / pending', 'sample payment ids'];
  const out = table(head);
  for (const g of groups) {
    const detail = what === 'declined' ? (g.message ?? '') : ['confirmed', 'declined', 'expired', 'pending'].map((o) => g.outcomes?.[o] ?? 0).join(' / ');
    out.push([g.key, String(g.count), pct(g.share), detail, g.samples.join('\n')]);
  }
  return `${title}: ${total} payment${total === 1 ? '' : 's'}\n${out.toString()}`;
}

/** The slowest Authorize calls with where their time went. */
export function renderSlowest(slow: SlowPayment[]): string {
  if (slow.length === 0) return 'no Authorize span found';
  const out = table(['#', 'payment', 'at', 'Authorize ms', 'decision', 'reason', 'slowest child span', 'child ms', 'trace']);
  slow.forEach((p, i) => {
    const child = p.slowestChild;
    out.push([String(i + 1), p.paymentId, new Date(p.startUs / 1000).toISOString().slice(11, 23), ms(p.durationUs), p.decision, p.reason, child ? `${child.service}: ${shortName(child.name)}` : '—', child ? ms(child.durationUs) : '', p.traceId]);
  });
  return out.toString();
}
