import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { status as GrpcStatus } from '@grpc/grpc-js';

/** A closed-loop load runner shared by the benchmarks: `concurrency` workers, `calls` in all. */
export interface LoadResult {
  perSecond: number;
  p50: number;
  p99: number;
  max: number;
  /** Every call's latency (ms), sorted, and the wall time of the run (s): to pool runs (`pooled`). */
  latencies: number[];
  seconds: number;
}

export const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());

/** CPU seconds (user + system) a process has used so far: fields 14 and 15 of /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) may hold spaces; the fields after its closing parenthesis start at field 3.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLK_TCK;
}

export function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

/** `--name 1,2,3` as numbers. */
export function listArg(name: string, fallback: number[]): number[] {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]!.split(',').map(Number) : fallback;
}

/** `--name value` as given. */
export function stringArg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1]! : fallback;
}

export async function run(calls: number, concurrency: number, one: (i: number) => Promise<unknown>): Promise<LoadResult> {
  const latencies: number[] = [];
  let next = 0;
  const started = process.hrtime.bigint();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < calls) {
        const i = next++;
        const t = process.hrtime.bigint();
        await one(i);
        latencies.push(Number(process.hrtime.bigint() - t) / 1e6);
      }
    }),
  );
  return summarize(latencies, Number(process.hrtime.bigint() - started) / 1e9);
}

function summarize(latencies: number[], seconds: number): LoadResult {
  latencies.sort((a, b) => a - b);
  const q = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { perSecond: latencies.length / seconds, p50: q(0.5), p99: q(0.99), max: latencies[latencies.length - 1]!, latencies, seconds };
}

/** Several runs as one: every call's latency together, the rate over their summed wall time. */
export const pooled = (runs: LoadResult[]): LoadResult =>
  summarize(
    runs.flatMap((r) => r.latencies),
    runs.reduce((sum, r) => sum + r.seconds, 0),
  );

export const formatResult = (label: string, r: LoadResult): string =>
  `${label.padEnd(40)} ${r.perSecond.toFixed(0).padStart(6)}/s   p50 ${r.p50.toFixed(2).padStart(6)} ms   p99 ${r.p99.toFixed(2).padStart(6)} ms   max ${r.max.toFixed(1).padStart(6)} ms`;

/**
 * `one`, with a failure counted in `errors` by its gRPC status name (or message) instead of
 * thrown: for long runs on a busy machine, where one late call must not void the rest.
 */
export function counting<T>(one: (i: number) => Promise<T>, errors: Map<string, number>): (i: number) => Promise<T | undefined> {
  return async (i) => {
    try {
      return await one(i);
    } catch (err) {
      const code = (err as { code?: number }).code;
      const what = code === undefined ? (err as Error).message : (GrpcStatus[code] ?? String(code));
      errors.set(what, (errors.get(what) ?? 0) + 1);
      return undefined;
    }
  };
}
