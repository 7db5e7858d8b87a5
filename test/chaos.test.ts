import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoPath } from '../platform/paths';
import type { ChaosReport } from '../chaos/report';

/**
 * The short chaos run (`npm run chaos -- --short`), as a child process on its own PostgreSQL,
 * Redis and NATS (ports 25500+, apart from the long run's 25000+): four faults under load, then
 * every invariant must PASS and every fault must have recovered (SERVING again, a payment
 * approved again). Recovery times against their targets are reported, not asserted (they depend
 * on how busy the machine is); `npm run chaos -- --strict-recovery` asserts them.
 */
const MAIN = repoPath('dist', 'chaos', 'main.js');

test('npm run chaos -- --short: every invariant PASS after kill -9 of the gateway, Redis and NATS and a PostgreSQL immediate stop', async () => {
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: run \`npm run build\` first (npm test does)`);
  const dir = mkdtempSync(join(tmpdir(), 'wp-chaos-test-'));
  const json = join(dir, 'report.json');
  try {
    const { code, stdout, stderr } = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [MAIN, '--short', '--port-base', process.env.CHAOS_TEST_PORT_BASE ?? '25500', '--json', json], { stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (d) => (out += d));
      child.stderr.on('data', (d) => (err += d));
      child.on('exit', (c) => resolve({ code: c, stdout: out, stderr: err }));
    });
    const why = `exit ${code}\n${stdout}\n${stderr.split('\n').slice(-30).join('\n')}`;
    expect({ code, why }).toEqual({ code: 0, why });
    const report = JSON.parse(readFileSync(json, 'utf8')) as ChaosReport;
    expect(report.invariants.filter((i) => !i.ok)).toEqual([]);
    expect(report.invariants.map((i) => i.name)).toEqual([
      'ledger sound (settlement invariants)',
      'every approved answer has exactly one hold',
      'no hold without an approved answer',
      'captures applied once',
      "every decided payment's event and alert exactly once",
      'outboxes drained',
      'no request left unresolved after retries',
      'no INTERNAL or UNKNOWN answer',
    ]);
    expect(report.faults.map((f) => f.name)).toEqual(['kill -9 gateway', 'kill -9 Redis', 'kill -9 NATS node', 'PostgreSQL immediate stop']);
    for (const f of report.faults) {
      expect({ fault: f.name, serving: typeof f.servingMs, approved: typeof f.paymentMs, error: f.paymentError }).toEqual({ fault: f.name, serving: 'number', approved: 'number', error: undefined });
    }
    // The load really ran through the faults: approvals, holds and captures to check.
    expect(report.load.approved).toBeGreaterThan(20);
    expect(report.load.captures).toBeGreaterThan(5);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}, 180_000);
