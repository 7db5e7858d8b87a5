/**
 * The analysts' trace tool (`npm run trace -- ...`): why a payment went as it did, from its
 * spans. Reads the local trace files (.data/traces/*.jsonl, or --dir) or, with --jaeger, the
 * query API of the Jaeger k8s/ deploys; the output is the same.
 *
 *   npm run trace -- <payment id | trace id>      the payment's waterfall, every trace of it
 *   npm run trace -- --declined [--since 1h]      declines grouped by reason
 *   npm run trace -- --challenged [--since 1h]    step-ups grouped by risk reasons, with how they ended
 *   npm run trace -- --slowest 20 [--since 1h]    the slowest Authorize calls and their slowest child span
 */
import { parseArgs } from 'node:util';
import { repoPath } from '../../platform/paths';
import { FileSpanSource } from './file-source';
import { JaegerSpanSource } from './jaeger-source';
import { challengesByReason, declinesByReason, paymentOfTrace, slowestPayments, tracesOfPayment } from './payments';
import { renderGroups, renderSlowest, renderWaterfall } from './render';
import type { SpanSource } from './span';

const USAGE = 'usage: npm run trace -- <payment id | trace id> | --declined | --challenged | --slowest N   [--since 1h] [--dir .data/traces | --jaeger http://host:16686] [--db]';

/** `90s`, `15m`, `1h`, `7d` as microseconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)(s|m|h|d)$/.exec(text.trim());
  if (!m) throw new Error(`--since must be a duration like 90s, 15m, 1h or 7d, got ${JSON.stringify(text)}`);
  const unit = { s: 1, m: 60, h: 3600, d: 86400 }[m[2] as 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit * 1_000_000;
}

/** Runs the tool with `argv` (after the script name); resolves with what to print. */
export async function run(argv: string[], now: () => number = Date.now): Promise<string> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      declined: { type: 'boolean' },
      challenged: { type: 'boolean' },
      slowest: { type: 'string' },
      since: { type: 'string' },
      dir: { type: 'string' },
      jaeger: { type: 'string' },
      db: { type: 'boolean' },
    },
  });
  if (values.dir && values.jaeger) throw new Error('--dir and --jaeger: choose one source');
  const source: SpanSource = values.jaeger ? new JaegerSpanSource(values.jaeger, now) : new FileSpanSource(values.dir ?? repoPath('.data', 'traces'));
  const sinceUs = values.since ? now() * 1000 - parseDuration(values.since) : undefined;
  const modes = [values.declined, values.challenged, values.slowest !== undefined, positionals.length > 0].filter(Boolean).length;
  if (modes !== 1 || positionals.length > 1) throw new Error(USAGE);

  const window = values.since ? ` in the last ${values.since}` : '';
  if (values.declined) return renderGroups(`declined${window} (${source.describe()})`, await declinesByReason(source, sinceUs ?? 0), 'declined');
  if (values.challenged) return renderGroups(`stepped up${window} (${source.describe()})`, await challengesByReason(source, sinceUs ?? 0), 'challenged');
  if (values.slowest !== undefined) {
    const count = Number(values.slowest);
    if (!Number.isInteger(count) || count < 1) throw new Error(`--slowest takes a count (1 or more), got ${JSON.stringify(values.slowest)}`);
    return `slowest ${count} Authorize calls${window} (${source.describe()})\n${renderSlowest(await slowestPayments(source, count, sinceUs))}`;
  }
  let paymentId = positionals[0]!;
  // A trace id (32 hex digits, as the demo prints) stands for the payment it is about.
  if (/^[0-9a-f]{32}$/.test(paymentId)) {
    const found = await paymentOfTrace(source, paymentId);
    if (!found) return `no payment in trace ${paymentId}`;
    paymentId = found;
  }
  return renderWaterfall(paymentId, await tracesOfPayment(source, paymentId), values.db ?? false);
}

if (require.main === module) {
  run(process.argv.slice(2)).then(
    (out) => console.log(out),
    (err: Error) => {
      console.error(err.message);
      process.exitCode = 1;
    },
  );
}
