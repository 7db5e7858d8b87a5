import type { ServiceName } from './mesh';

const COLORS: Record<ServiceName, number> = { gateway: 36, 'device-registry': 35, tokenization: 33, risk: 31, settlement: 32, alerts: 34 };
const HIDDEN = new Set(['level', 'time', 'msg', 'service', 'pid', 'hostname']);

/**
 * Prints one service log line as `service │ time level message key=value...`. Lines that are
 * not JSON (a one-line start failure) are printed as they are.
 */
export function printLogLine(service: ServiceName, line: string): void {
  const color = process.stdout.isTTY ? (s: string) => `\x1b[${COLORS[service]}m${s}\x1b[0m` : (s: string) => s;
  const prefix = color(service.padEnd(15));
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line);
  } catch {
    console.log(`${prefix} │ ${line}`);
    return;
  }
  const fields = Object.entries(entry)
    .filter(([k]) => !HIDDEN.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : String(v)}`)
    .join(' ');
  const time = typeof entry.time === 'string' ? entry.time.slice(11, 23) : '';
  console.log(`${prefix} │ ${time} ${String(entry.level ?? '').padEnd(5)} ${String(entry.msg ?? '')} ${fields}`.trimEnd());
}
