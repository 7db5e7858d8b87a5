import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dump } from 'js-yaml';
import { RULES_DIR } from './prometheus-rule';

/**
 * A local Prometheus (Debian's `prometheus` package) scraping the services' METRICS_PORTs: what
 * `WRISTPAY_PROMETHEUS=1 npm start` runs and the Prometheus integration test starts.
 */

/** The scrape configuration: one job per service (job = its short name), labelled system=wristpay like the prod PodMonitor, with the SLO rules loaded. */
export function scrapeConfig(targets: Record<string, number>, options: { scrapeIntervalSeconds?: number; ruleFiles?: string[] } = {}): string {
  const interval = `${options.scrapeIntervalSeconds ?? 5}s`;
  return dump(
    {
      global: { scrape_interval: interval, evaluation_interval: interval },
      rule_files: options.ruleFiles ?? [join(RULES_DIR, '*.yaml')],
      scrape_configs: Object.entries(targets).map(([service, port]) => ({
        job_name: service,
        static_configs: [{ targets: [`127.0.0.1:${port}`], labels: { system: 'wristpay' } }],
      })),
    },
    { lineWidth: -1 },
  );
}

export interface RunningPrometheus {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts `prometheus` on 127.0.0.1:`port` with its own data directory and the scrape config of
 * `targets`, and resolves once /-/ready answers. Missing binary: an error saying how to get it.
 */
export async function startPrometheus(options: {
  port: number;
  dataDir: string;
  targets: Record<string, number>;
  scrapeIntervalSeconds?: number;
  binary?: string;
  onLine?: (line: string) => void;
  readyTimeoutMs?: number;
}): Promise<RunningPrometheus> {
  mkdirSync(options.dataDir, { recursive: true });
  const config = join(options.dataDir, 'prometheus.yml');
  writeFileSync(config, scrapeConfig(options.targets, { scrapeIntervalSeconds: options.scrapeIntervalSeconds }));
  const url = `http://127.0.0.1:${options.port}`;
  const child = spawn(
    options.binary ?? process.env.PROMETHEUS_BIN ?? 'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${join(options.dataDir, 'tsdb')}`, `--web.listen-address=127.0.0.1:${options.port}`, '--storage.tsdb.retention.time=2d', '--web.enable-lifecycle'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let failed: string | undefined;
  child.on('error', (err: NodeJS.ErrnoException) => {
    failed = err.code === 'ENOENT' ? 'prometheus is not installed: `apt-get install prometheus` (scripts/ensure-infra.sh --prometheus does it as root)' : err.message;
  });
  child.on('exit', (code) => {
    failed ??= `prometheus exited (${code})`;
  });
  let last = '';
  for (const stream of [child.stdout!, child.stderr!]) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      for (const line of chunk.split('\n').filter(Boolean)) {
        last = line;
        options.onLine?.(line);
      }
    });
  }
  const stop = () =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      const kill = setTimeout(() => child.kill('SIGKILL'), 5_000);
      child.once('exit', () => (clearTimeout(kill), resolve()));
      child.kill('SIGTERM');
    });
  const until = Date.now() + (options.readyTimeoutMs ?? 30_000);
  for (;;) {
    if (failed) throw new Error(`${failed}${last ? `: ${last}` : ''}`);
    const ready = await fetch(`${url}/-/ready`).then((r) => r.ok, () => false);
    if (ready) return { url, process: child, stop };
    if (Date.now() > until) {
      await stop();
      throw new Error(`prometheus did not become ready on ${url}${last ? `: ${last}` : ''}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** One instant-vector sample of a PromQL query's answer. */
export interface Sample {
  metric: Record<string, string>;
  value: number;
}

/** Runs an instant PromQL query through the HTTP API (/api/v1/query); a query error throws with Prometheus' message. */
export async function query(url: string, promql: string): Promise<Sample[]> {
  const res = await fetch(`${url}/api/v1/query?${new URLSearchParams({ query: promql })}`);
  const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
  if (body.status !== 'success') throw new Error(`PromQL ${promql}: ${body.error ?? res.status}`);
  if (body.data!.resultType !== 'vector') throw new Error(`PromQL ${promql}: a ${body.data!.resultType}, not an instant vector`);
  return body.data!.result.map((r) => ({ metric: r.metric, value: Number(r.value[1]) }));
}
