/** The chaos run's verdict: tables on stdout and the same facts as JSON (for comparing runs). */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import Table from 'cli-table3';
import type { FaultResult } from './faults';
import type { InvariantResult } from './invariants';

export interface ChaosReport {
  variant: 'short' | 'long';
  topology: string;
  startedAt: string;
  seconds: number;
  load: { payments: number; approved: number; declined: number; challenged: number; captures: number; attempts: number; failedAttempts: number };
  faults: FaultResult[];
  invariants: InvariantResult[];
  strictRecovery: boolean;
  recoveryMisses: string[];
  ok: boolean;
}

const verdict = (ms: number | undefined, target: number | undefined): string => {
  if (ms === undefined) return '—';
  if (target === undefined) return `${ms} ms`;
  return `${ms} ms ${ms <= target ? 'PASS' : 'FAIL'} (≤ ${target})`;
};

/** The recovery measurements that missed their target, one line each. */
export function recoveryMisses(faults: FaultResult[]): string[] {
  const misses: string[] = [];
  for (const f of faults) {
    if (f.servingTargetMs !== undefined && (f.servingMs === undefined || f.servingMs > f.servingTargetMs)) misses.push(`${f.name}: SERVING after ${f.servingMs ?? '—'} ms (target ${f.servingTargetMs})`);
    if (f.paymentTargetMs !== undefined && (f.paymentMs === undefined || f.paymentMs > f.paymentTargetMs)) misses.push(`${f.name}: payments after ${f.paymentMs ?? f.paymentError ?? '—'} ms (target ${f.paymentTargetMs})`);
  }
  return misses;
}

/** A note longer than this (a list of every refused probe payment) is cut in the table output. */
const NOTE_CHARS = 200;

export function renderReport(report: ChaosReport): string {
  const faults = new Table({ head: ['fault', 'down for', 'SERVING again', 'first answer', 'payment approved again', 'failed attempts (error rate)', 'answers in the window', 'other exits'], style: { head: [], border: [] } });
  for (const f of report.faults) {
    faults.push([
      f.name,
      `${f.endedAt - f.startedAt} ms`,
      verdict(f.servingMs, f.servingTargetMs),
      f.answeredMs === undefined ? '—' : `${f.answeredMs} ms`,
      f.paymentError ? `none: ${f.paymentError}` : verdict(f.paymentMs, f.paymentTargetMs),
      `${f.failedAttempts}/${f.attempts}${f.attempts ? ` (${((100 * f.failedAttempts) / f.attempts).toFixed(1)}%)` : ''}${Object.keys(f.codes).length ? ` ${Object.entries(f.codes).map(([c, n]) => `${c} ${n}`).join(', ')}` : ''}`,
      Object.entries(f.answers).map(([c, n]) => `${c.replace('CHALLENGE_REQUIRED', 'CHALLENGED')} ${n}`).join(', ') || '—',
      f.unexpectedExits.join(', ') || '—',
    ]);
  }
  const invariants = new Table({ head: ['invariant', 'result', 'checked'], style: { head: [], border: [] }, colWidths: [52, 8, 70], wordWrap: true });
  for (const i of report.invariants) invariants.push([i.name, i.ok ? 'PASS' : 'FAIL', i.detail]);
  const l = report.load;
  const lines = [
    `chaos (${report.variant}, ${report.topology}): ${report.seconds.toFixed(0)} s; ${l.payments} payments (${l.approved} approved, ${l.challenged} challenged, ${l.declined} declined), ${l.captures} captures; ${l.attempts} attempts, ${l.failedAttempts} failed and retried`,
    '',
    faults.toString(),
    // What the table cannot hold: how long an engine took to stop and start, which node a clustered fault killed and who took over.
    ...report.faults.filter((f) => f.notes.length).flatMap((f) => f.notes.map((n) => `  ${f.name}: ${n.length > NOTE_CHARS ? `${n.slice(0, NOTE_CHARS)}… (in full in the JSON)` : n}`)),
    '',
    invariants.toString(),
  ];
  for (const i of report.invariants.filter((x) => !x.ok)) lines.push('', `✗ ${i.name}:`, ...i.violations.map((v) => `  - ${v}`));
  if (report.recoveryMisses.length) lines.push('', `recovery targets missed${report.strictRecovery ? ' (--strict-recovery: the run fails)' : ' (reported; --strict-recovery makes them fail the run)'}:`, ...report.recoveryMisses.map((m) => `  - ${m}`));
  lines.push('', report.ok ? 'chaos: every invariant PASS' : 'chaos: FAILED');
  return lines.join('\n');
}

export function writeJson(path: string, report: ChaosReport): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(report, null, 2)}\n`);
}
