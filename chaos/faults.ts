/**
 * The faults, one at a time under load, each followed by a quiet gap. For each: when it began,
 * when it ended (the dependency back, the process restarted), when every service answered
 * SERVING again and when a fresh payment was answered again, against issue 13's targets.
 */
import { SERVICES, type ServiceName } from '../scripts/mesh';
import type { Engine, Engines } from './engines';
import type { Load, ProbeResult } from './load';
import type { Supervisor } from './supervisor';

export type FaultKind = 'kill-service' | 'term-service' | 'kill-redis' | 'kill-nats' | 'stop-postgres';

export interface Fault {
  name: string;
  kind: FaultKind;
  service?: ServiceName;
}

/** The long run: every service killed -9, two SIGTERMs, then each engine. */
export const LONG_FAULTS: Fault[] = [
  ...SERVICES.map((service): Fault => ({ name: `kill -9 ${service}`, kind: 'kill-service', service })),
  { name: 'SIGTERM gateway', kind: 'term-service', service: 'gateway' },
  { name: 'SIGTERM settlement', kind: 'term-service', service: 'settlement' },
  { name: 'kill -9 Redis', kind: 'kill-redis' },
  { name: 'kill -9 NATS node', kind: 'kill-nats' },
  { name: 'PostgreSQL immediate stop', kind: 'stop-postgres' },
];

/** The short run (in `npm test`): one service on the payment path and each engine. */
export const SHORT_FAULTS: Fault[] = [
  { name: 'kill -9 gateway', kind: 'kill-service', service: 'gateway' },
  { name: 'kill -9 Redis', kind: 'kill-redis' },
  { name: 'kill -9 NATS node', kind: 'kill-nats' },
  { name: 'PostgreSQL immediate stop', kind: 'stop-postgres' },
];

/** Issue 13 item 3: how soon after the fault's end each must hold (ms). */
export const TARGETS = {
  /** A killed service SERVING again after its restart. */
  servingAfterRestart: 3_000,
  /** Payments answered again after Redis or NATS is back. */
  paymentsAfterRedisOrNats: 2_000,
  /** Payments answered again after PostgreSQL is back. */
  paymentsAfterPostgres: 3_000,
};

export interface FaultResult {
  name: string;
  kind: FaultKind;
  startedAt: number;
  /** The dependency back up / the killed process restarted. */
  endedAt: number;
  /** ms from endedAt until every service (a killed one: that one) answered SERVING. */
  servingMs?: number;
  servingTargetMs?: number;
  /** ms from endedAt until a fresh payment was answered at all (approved or not). */
  answeredMs?: number;
  /** ms from endedAt until a fresh payment was APPROVED (the recovery target's measure). */
  paymentMs?: number;
  paymentTargetMs?: number;
  /** Why no payment was approved (the probe gave up). */
  paymentError?: string;
  /** Load attempts from the fault's start to the next fault's start, and how many failed (any non-OK code). */
  attempts: number;
  failedAttempts: number;
  /** Codes of the failed attempts, by name. */
  codes: Record<string, number>;
  /** Payments answered in the window, by status (a degraded dependency may step payments up instead of failing them). */
  answers: Record<string, number>;
  /** Processes that exited during this fault besides the one the fault ended (another service, or the restarted one again). */
  unexpectedExits: string[];
  notes: string[];
}

export interface FaultOptions {
  /** How long an engine stays down. */
  outageMs: number;
  /** Quiet time after recovery before the next fault. */
  gapMs: number;
  onProgress(line: string): void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Runs `faults` in order while `load` runs; one result per fault. */
export async function runFaults(faults: Fault[], engines: Engines, supervisor: Supervisor, load: Load, options: FaultOptions): Promise<FaultResult[]> {
  const results: FaultResult[] = [];
  for (const [i, fault] of faults.entries()) {
    options.onProgress(`fault ${i + 1}/${faults.length}: ${fault.name}`);
    const exitsBefore = supervisor.events.length;
    const attemptsBefore = load.attempts.length;
    const startedAt = Date.now();
    const result: FaultResult = { name: fault.name, kind: fault.kind, startedAt, endedAt: startedAt, attempts: 0, failedAttempts: 0, codes: {}, answers: {}, unexpectedExits: [], notes: [] };
    let engine: Engine | undefined;
    if (fault.kind === 'kill-service' || fault.kind === 'term-service') {
      const service = fault.service!;
      await supervisor.signal(service, fault.kind === 'kill-service' ? 'SIGKILL' : 'SIGTERM');
      // The supervisor restarts it at once; the fault ends when the new process is spawned.
      while (supervisor.lastSpawn(service) < startedAt) await sleep(5);
      result.endedAt = supervisor.lastSpawn(service);
      const [serving, payment] = await Promise.all([supervisor.waitServing(service, 60_000), load.probe(60_000)]);
      result.servingMs = serving - result.endedAt;
      result.servingTargetMs = TARGETS.servingAfterRestart;
      recordPayment(result, payment);
    } else {
      engine = fault.kind === 'kill-redis' ? engines.redisPrimary() : fault.kind === 'kill-nats' ? engines.natsNode() : engines.postgres;
      if (engine.failover) {
        await runFailover(engine, result, supervisor, load, options);
      } else {
        await engine.crash();
        const down = Date.now();
        await sleep(options.outageMs);
        const restart = Date.now();
        await engine.start();
        result.endedAt = Date.now();
        result.notes.push(`stopping took ${down - startedAt} ms, starting again ${result.endedAt - restart} ms`);
        const [serving, payment] = await Promise.all([Promise.all(SERVICES.map((s) => supervisor.waitServing(s, 60_000))), load.probe(60_000)]);
        result.servingMs = Math.max(...serving) - result.endedAt;
        result.paymentTargetMs = fault.kind === 'stop-postgres' ? TARGETS.paymentsAfterPostgres : TARGETS.paymentsAfterRedisOrNats;
        recordPayment(result, payment);
      }
    }
    options.onProgress(
      `  ${fault.name}: back after ${result.endedAt - startedAt} ms${result.notes.length ? ` (${result.notes.join('; ')})` : ''}; SERVING +${result.servingMs} ms; a payment answered +${result.answeredMs ?? '—'} ms, approved +${result.paymentMs ?? result.paymentError ?? '—'} ms`,
    );
    await sleep(options.gapMs);
    const window = load.attempts.slice(attemptsBefore);
    result.attempts = window.length;
    for (const a of window) {
      if (a.code === 0) continue;
      result.failedAttempts++;
      const name = codeLabel(a.code);
      result.codes[name] = (result.codes[name] ?? 0) + 1;
    }
    const windowEnd = Date.now();
    for (const o of load.outcomes) {
      if (o.kind !== 'authorize' || !o.status || o.endedAt < startedAt || o.endedAt > windowEnd || o.idempotencyKey === undefined) continue;
      result.answers[o.status] = (result.answers[o.status] ?? 0) + 1;
    }
    // Any exit but the one the fault caused: another service, or the restarted one exiting again (a crash loop).
    let causedExit = false;
    for (const e of supervisor.events.slice(exitsBefore)) {
      if (e.what !== 'exited') continue;
      if (e.service === fault.service && !causedExit) causedExit = true;
      else result.unexpectedExits.push(`${e.service} (${e.detail})`);
    }
    results.push(result);
  }
  return results;
}

/**
 * One node of a replicated engine killed -9: the others keep the service, so the fault "ends"
 * at the kill and SERVING and payment recovery are measured from it (through the failover).
 * The node stays down for the outage, then rejoins (a replica, for Redis); a second probe and
 * SERVING check show the mesh still fine with it back, measured from its rejoining.
 */
async function runFailover(engine: Engine, result: FaultResult, supervisor: Supervisor, load: Load, options: FaultOptions): Promise<void> {
  await engine.crash();
  result.endedAt = Date.now();
  const [failover, serving, payment] = await Promise.all([
    engine.failover!().catch((err: Error) => `failover not seen: ${err.message}`),
    Promise.all(SERVICES.map((s) => supervisor.waitServing(s, 60_000))),
    load.probe(60_000),
    sleep(options.outageMs),
  ]);
  result.notes.push(failover);
  // The probe pays only with bands the velocity rules leave alone, and a long run of step-ups can
  // leave none for seconds: the load's payments say when approvals resumed from the other side.
  const approvedAfter = load.outcomes.filter((o) => o.kind === 'authorize' && o.status === 'APPROVED' && o.startedAt >= result.endedAt).map((o) => o.endedAt);
  result.notes.push(approvedAfter.length ? `first payment started after the kill and approved (load or probe): +${Math.min(...approvedAfter) - result.endedAt} ms` : 'no payment started after the kill was approved during the outage');
  result.servingMs = Math.max(...serving) - result.endedAt;
  result.paymentTargetMs = TARGETS.paymentsAfterRedisOrNats;
  recordPayment(result, payment);
  const restart = Date.now();
  await engine.start();
  const rejoined = Date.now();
  const [servingAfter, after] = await Promise.all([Promise.all(SERVICES.map((s) => supervisor.waitServing(s, 60_000))), load.probe(60_000)]);
  result.notes.push(
    `killed node restarted ${restart - result.endedAt} ms after the kill and back in the cluster in ${rejoined - restart} ms; then SERVING +${Math.max(...servingAfter) - rejoined} ms, a payment approved +${after.approvedAt !== undefined ? `${after.approvedAt - rejoined} ms` : `— (${after.error})`}`,
  );
}

function recordPayment(result: FaultResult, probe: ProbeResult): void {
  const first = probe.seen[0];
  if (first) result.answeredMs = Math.max(0, first.at - result.endedAt);
  const refused = probe.seen.filter((x) => x.status !== 'APPROVED');
  if (refused.length) result.notes.push(`${refused.length} probe payment(s) not approved first: ${refused.map((s) => `${s.paymentId} ${s.status} (${s.reasons || 'no reason'}) at +${s.at - result.endedAt} ms`).join('; ')}`);
  if (probe.approvedAt !== undefined) result.paymentMs = Math.max(0, probe.approvedAt - result.endedAt);
  else result.paymentError = probe.error;
}

const CODE_NAMES: Record<number, string> = { 1: 'CANCELLED', 2: 'UNKNOWN', 4: 'DEADLINE_EXCEEDED', 8: 'RESOURCE_EXHAUSTED', 9: 'FAILED_PRECONDITION', 10: 'ABORTED', 13: 'INTERNAL', 14: 'UNAVAILABLE' };
const codeLabel = (code: number) => CODE_NAMES[code] ?? `code ${code}`;
