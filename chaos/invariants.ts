/**
 * What must hold after the faults, checked against what each service stored (its own database,
 * read directly), what JetStream holds and what the terminals were told. Each check gives PASS
 * or FAIL with the offending ids, so a violation can be followed to the payment.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { Client } from 'pg';
import { EventBus, natsServers } from '../platform/nats';
import { createLogger } from '../platform/log';
import type { RequestOutcome } from './load';

export interface InvariantResult {
  name: string;
  ok: boolean;
  /** What was checked (counts). */
  detail: string;
  /** Offending ids, at most a few dozen. */
  violations: string[];
}

export interface InvariantInputs {
  /** Each owning service's database URL on the harness's PostgreSQL. */
  databases: { gateway: string; settlement: string; alerts: string; all: Record<string, string> };
  natsUrl: string;
  subjectPrefix: string;
  /** The services' NATS_STREAM_MAX_BYTES when it is not the default: reading the streams must not resize them. */
  streamMaxBytes?: number;
  outcomes: RequestOutcome[];
}

const MAX_LISTED = 30;

async function withDb<T>(url: string, fn: (c: Client) => Promise<T>): Promise<T> {
  const c = new Client({ connectionString: url });
  c.on('error', () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

const result = (name: string, violations: string[], detail: string): InvariantResult => ({
  name,
  ok: violations.length === 0,
  detail: violations.length > MAX_LISTED ? `${detail}; ${violations.length} violations (first ${MAX_LISTED} listed)` : detail,
  violations: violations.slice(0, MAX_LISTED),
});

/** Rows of the outbox not yet published, per database (a database without an outbox counts 0). */
export async function pendingOutboxes(databases: Record<string, string>): Promise<Record<string, number>> {
  const pending: Record<string, number> = {};
  for (const [service, url] of Object.entries(databases)) {
    pending[service] = await withDb(url, async (c) => {
      const has = await c.query<{ t: string | null }>(`SELECT to_regclass('outbox')::text AS t`);
      if (!has.rows[0]?.t) return 0;
      return Number((await c.query<{ n: string }>('SELECT count(*) AS n FROM outbox WHERE published_at IS NULL')).rows[0]!.n);
    });
  }
  return pending;
}

/**
 * Messages the durable consumer `durable` (on each of the harness's streams, `prefix`) has not
 * yet had delivered or acknowledged, summed: the alert consumer catching up before the alerts
 * are checked. Undefined when JetStream cannot say right now (a consumer or stream without a
 * leader just after a node's loss).
 */
export async function pendingDeliveries(natsUrl: string, prefix: string, durable: string): Promise<number | undefined> {
  const nc = await connect({ servers: natsServers(natsUrl), name: 'chaos-settle', timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc, { timeout: 2_000 });
    let pending = 0;
    for await (const stream of jsm.streams.list()) {
      if (!stream.config.name.startsWith(`${prefix.toUpperCase()}_`)) continue;
      for await (const c of jsm.consumers.list(stream.config.name)) if (c.name === durable) pending += c.num_pending + c.num_ack_pending;
    }
    return pending;
  } catch {
    return undefined;
  } finally {
    await nc.close();
  }
}

interface PaymentRow {
  payment_id: string;
  merchant_id: string;
  idempotency_key: string;
  status: string;
  hold_id: string;
  account_id: string;
}
interface HoldRow {
  hold_id: string;
  payment_id: string;
  status: string;
  amount_minor: string;
  captured_minor: string;
}

/** The payment events on the stream: payment id → how many decision events of each type. */
async function decisionEvents(natsUrl: string, prefix: string, maxBytes: number | undefined): Promise<Map<string, Record<string, number>>> {
  const bus = await EventBus.connect({ url: natsUrl, prefix, source: 'chaos', log: createLogger('chaos', 'silent'), ...(maxBytes ? { limits: { maxBytes } } : {}) });
  const seen = new Map<string, Record<string, number>>();
  try {
    for (const type of ['payment.authorized', 'payment.challenged', 'payment.declined']) {
      for await (const { event } of bus.history('payment', type)) {
        if (event.payload?.$case !== 'payment') continue;
        const id = event.payload.value.paymentId;
        const counts = seen.get(id) ?? {};
        counts[type] = (counts[type] ?? 0) + 1;
        seen.set(id, counts);
      }
    }
  } finally {
    await bus.close();
  }
  return seen;
}

export async function checkInvariants(input: InvariantInputs, ledger: () => Promise<{ ok: boolean; violations: string[]; counts: Record<string, number> }>): Promise<InvariantResult[]> {
  const out: InvariantResult[] = [];
  const ledgerResult = await ledger();
  out.push(result('ledger sound (settlement invariants)', ledgerResult.violations, Object.entries(ledgerResult.counts).map(([k, v]) => `${v} ${k}`).join(', ')));

  const payments = await withDb(input.databases.gateway, (c) => c.query<PaymentRow>('SELECT payment_id, merchant_id, idempotency_key, status, hold_id, account_id FROM payments').then((r) => r.rows));
  const holds = await withDb(input.databases.settlement, (c) => c.query<HoldRow>('SELECT hold_id, payment_id, status, amount_minor::text, captured_minor::text FROM holds').then((r) => r.rows));
  const byId = new Map(payments.map((p) => [p.payment_id, p]));
  const holdsByPayment = new Map<string, HoldRow[]>();
  for (const h of holds) holdsByPayment.set(h.payment_id, [...(holdsByPayment.get(h.payment_id) ?? []), h]);
  const authorizes = input.outcomes.filter((o) => o.kind === 'authorize');
  const answerOf = new Map(authorizes.map((o) => [`${o.merchantId}/${o.idempotencyKey}`, o]));

  // Every APPROVED answer: the gateway's row agrees and names exactly one hold, which settlement has for that payment, not released.
  {
    const v: string[] = [];
    const approved = authorizes.filter((o) => o.status === 'APPROVED');
    for (const o of approved) {
      const p = byId.get(o.paymentId!);
      const hs = holdsByPayment.get(o.paymentId!) ?? [];
      if (!p) v.push(`payment ${o.paymentId}: answered APPROVED, unknown to the gateway's database`);
      else if (hs.length !== 1) v.push(`payment ${o.paymentId}: answered APPROVED with ${hs.length} holds`);
      else if (hs[0]!.hold_id !== p.hold_id) v.push(`payment ${o.paymentId}: gateway names hold ${p.hold_id}, settlement has ${hs[0]!.hold_id}`);
      else if (hs[0]!.status === 'VOIDED' || hs[0]!.status === 'EXPIRED') v.push(`payment ${o.paymentId}: answered APPROVED but its hold ${hs[0]!.hold_id} is ${hs[0]!.status}`);
    }
    out.push(result('every approved answer has exactly one hold', v, `${approved.length} approved answers`));
  }

  // Every hold that holds or took money: its payment is APPROVED (or later: CAPTURED) in the gateway and the terminal was told APPROVED.
  {
    const v: string[] = [];
    let released = 0;
    for (const h of holds) {
      const p = byId.get(h.payment_id);
      const live = h.status === 'PENDING' || h.status === 'CAPTURED';
      if (!live) {
        if (!p || !['APPROVED', 'CAPTURED', 'VOIDED', 'EXPIRED', 'REFUNDED'].includes(p.status)) released++;
        continue;
      }
      if (!p) {
        v.push(`hold ${h.hold_id} (${h.status}) for payment ${h.payment_id}, which the gateway does not know`);
        continue;
      }
      if (!['APPROVED', 'CAPTURED'].includes(p.status)) v.push(`hold ${h.hold_id} (${h.status}) for payment ${p.payment_id}, which is ${p.status} in the gateway`);
      const answer = answerOf.get(`${p.merchant_id}/${p.idempotency_key}`);
      if (!answer) v.push(`hold ${h.hold_id} (${h.status}) for payment ${p.payment_id}, which no terminal of this run asked for`);
      else if (answer.status !== 'APPROVED') v.push(`hold ${h.hold_id} (${h.status}) for payment ${p.payment_id}: the terminal was told ${answer.status ?? `nothing (${answer.error})`}`);
    }
    out.push(result('no hold without an approved answer', v, `${holds.length} holds (${released} released for payments not approved)`));
  }

  // Captures: each CAPTURED answer matches a hold captured once for the amount; no capture the terminal did not ask for.
  {
    const v: string[] = [];
    const captures = input.outcomes.filter((o) => o.kind === 'capture');
    const asked = new Set(captures.map((c) => c.paymentId));
    for (const c of captures) {
      const hs = holdsByPayment.get(c.paymentId!) ?? [];
      const p = byId.get(c.paymentId!);
      if (c.status !== 'CAPTURED') {
        v.push(`payment ${c.paymentId}: capture answered ${c.status ?? c.error}${c.errorMessage ? ` (${c.errorMessage})` : ''}`);
        continue;
      }
      if (p?.status !== 'CAPTURED') v.push(`payment ${c.paymentId}: capture answered CAPTURED but the gateway has it ${p?.status ?? 'missing'}`);
      if (hs.length !== 1 || hs[0]!.status !== 'CAPTURED' || hs[0]!.captured_minor !== hs[0]!.amount_minor) v.push(`payment ${c.paymentId}: capture answered CAPTURED but its holds are ${hs.map((h) => `${h.status} ${h.captured_minor}/${h.amount_minor}`).join(', ') || 'none'}`);
    }
    for (const h of holds) if (h.status === 'CAPTURED' && !asked.has(h.payment_id)) v.push(`hold ${h.hold_id} of payment ${h.payment_id} is CAPTURED, but no capture was asked for`);
    out.push(result('captures applied once', v, `${captures.length} captures (one capture transfer each: ledger rule)`));
  }

  // Decided payments: at least one decision event on the stream, and exactly one alert per decision kind on the account's feed.
  {
    const v: string[] = [];
    const events = await decisionEvents(input.natsUrl, input.subjectPrefix, input.streamMaxBytes);
    const alerts = await withDb(input.databases.alerts, (c) =>
      c.query<{ payment_id: string; kind: string; n: string }>(`SELECT payment_id, kind, count(*)::text AS n FROM alerts WHERE kind IN ('AUTHORIZED', 'CHALLENGED', 'DECLINED') AND payment_id <> '' GROUP BY 1, 2`).then((r) => r.rows),
    );
    const alertKinds = new Map<string, Record<string, number>>();
    for (const a of alerts) alertKinds.set(a.payment_id, { ...(alertKinds.get(a.payment_id) ?? {}), [a.kind]: Number(a.n) });
    const decided = payments.filter((p) => p.status !== 'RECEIVED');
    let withAccount = 0;
    for (const p of decided) {
      const ev = events.get(p.payment_id);
      if (!ev) v.push(`payment ${p.payment_id} (${p.status}): no payment.authorized/challenged/declined event on the stream`);
      if (!p.account_id) continue; // no account was identified: there is no feed to alert
      withAccount++;
      const kinds = alertKinds.get(p.payment_id) ?? {};
      if (Object.keys(kinds).length === 0) v.push(`payment ${p.payment_id} (${p.status}): no alert on ${p.account_id}'s feed`);
      for (const [kind, n] of Object.entries(kinds)) if (n !== 1) v.push(`payment ${p.payment_id}: ${n} ${kind} alerts`);
      for (const [type, n] of Object.entries(ev ?? {})) if (n > 1 && (kinds[type === 'payment.authorized' ? 'AUTHORIZED' : type === 'payment.challenged' ? 'CHALLENGED' : 'DECLINED'] ?? 0) !== 1) v.push(`payment ${p.payment_id}: ${n} ${type} events and not one alert`);
    }
    out.push(result("every decided payment's event and alert exactly once", v, `${decided.length} decided payments (${withAccount} with an account feed), ${[...events.values()].reduce((s, e) => s + Object.values(e).reduce((a, b) => a + b, 0), 0)} decision events`));
  }

  {
    const pending = await pendingOutboxes(input.databases.all);
    const v = Object.entries(pending)
      .filter(([, n]) => n > 0)
      .map(([s, n]) => `${s}: ${n} outbox rows never published`);
    out.push(result('outboxes drained', v, Object.entries(pending).map(([s, n]) => `${s} ${n}`).join(', ')));
  }

  {
    const v: string[] = [];
    for (const o of input.outcomes) if (o.error) v.push(`${o.kind} ${o.paymentId ?? `key ${o.idempotencyKey}`} at ${o.merchantId}: ${o.error} after ${o.attempts} attempts (${o.errorMessage ?? ''})`);
    for (const p of payments) if (p.status === 'RECEIVED') v.push(`payment ${p.payment_id} is still RECEIVED in the gateway`);
    out.push(result('no request left unresolved after retries', v, `${input.outcomes.length} requests, ${input.outcomes.reduce((s, o) => s + o.attempts, 0)} attempts; ${payments.length} payments in the gateway`));
  }

  {
    const v: string[] = [];
    for (const o of input.outcomes) for (const i of o.internal ?? []) v.push(`${o.kind} ${o.paymentId ?? `key ${o.idempotencyKey}`}: ${i}`);
    out.push(result('no INTERNAL or UNKNOWN answer', v, 'dependency outages must reach callers as UNAVAILABLE'));
  }
  return out;
}
