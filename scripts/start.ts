/**
 * `npm start`: brings the whole mesh up locally on real Redis and NATS JetStream (started or
 * installed when missing), embedded PGlite unless DATABASE_URL is set, mTLS between the services
 * with a local dev CA, onboards the demo merchants through the back office, then runs the demo:
 * the payments and their step-ups, the merchants' steps after authorization (refusals, captures,
 * a void), the escrow steps and the day's payouts. `npm start -- --once` then stops the mesh, runs
 * the ledger checker on settlement's database and exits 0 when every payment, every step and the
 * checker went as expected, 1 otherwise.
 * Otherwise the mesh stays up until Ctrl-C (and the checker's command is printed).
 *
 * `WRISTPAY_PROMETHEUS=1 npm start`: each service also serves metrics (METRICS_PORT 9460-9465)
 * and Debian's prometheus (installed when missing, as root) scrapes them every 5 s with the SLO
 * rules loaded, on 127.0.0.1:9090 (PROMETHEUS_PORT) with its data in .data/prometheus.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { Client } from 'pg';
import { repoPath } from '../platform/paths';
import { formatAlert } from '../sim/alert-feed';
import { certCredentials, demoClients } from '../sim/clients';
import { finishFeed, renderDemo, renderEscrow, runDemo, runEscrow } from '../sim/demo';
import { onboardDemoMerchants } from '../sim/merchant-onboarding';
import { certPaths, DATABASES, SERVICES, startMesh, type ServiceName } from './mesh';
import { startPrometheus, type RunningPrometheus } from './prometheus';
import { printLogLine } from './pretty-log';

/**
 * The six ports, gateway first: 50050-50055 unless WRISTPAY_BASE_PORT moves them (two meshes on
 * one machine, e.g. several worktrees running the demo at once).
 */
const BASE_PORT = Number(process.env.WRISTPAY_BASE_PORT ?? 50050);
if (!Number.isInteger(BASE_PORT) || BASE_PORT < 1024 || BASE_PORT > 65530) throw new Error(`WRISTPAY_BASE_PORT must be an integer port in 1024-65530, got ${process.env.WRISTPAY_BASE_PORT}`);
const DEFAULT_PORTS: Record<ServiceName, number> = { gateway: BASE_PORT, 'device-registry': BASE_PORT + 1, tokenization: BASE_PORT + 2, risk: BASE_PORT + 3, settlement: BASE_PORT + 4, alerts: BASE_PORT + 5 };
/** Each service's METRICS_PORT when WRISTPAY_PROMETHEUS=1. */
const METRICS_PORTS: Record<ServiceName, number> = { gateway: 9460, 'device-registry': 9461, tokenization: 9462, risk: 9463, settlement: 9464, alerts: 9465 };
const withPrometheus = ['1', 'true'].includes(process.env.WRISTPAY_PROMETHEUS ?? '');

const data = repoPath('.data');
const once = process.argv.includes('--once');

/**
 * How long the phone has to confirm a step-up in this mesh: a minute, as a buyer waiting at the
 * counter would allow. The demo leaves one step-up unanswered just before its ~61 s pause, so it
 * has expired (the gateway's sweeper runs every second) when the demo comes back to it.
 */
const CHALLENGE_TTL_SECONDS = process.env.CHALLENGE_TTL_SECONDS ?? '60';

/** Dev-only secrets, made once and kept so the embedded vault stays readable across runs. */
function devSecrets(): { TOKEN_MASTER_KEY: string; VAULT_KEKS: string } {
  const file = repoPath('.data', 'dev-secrets.json');
  if (!existsSync(file)) {
    writeFileSync(file, JSON.stringify({ TOKEN_MASTER_KEY: randomBytes(32).toString('base64'), VAULT_KEKS: `1:${randomBytes(32).toString('base64')}` }), { mode: 0o600 });
  }
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** With DATABASE_URL, each owning service gets its own database on that server, created if missing. */
async function databaseEnv(service: ServiceName): Promise<Record<string, string>> {
  const name = DATABASES[service];
  if (!name) return {};
  if (!process.env.DATABASE_URL) return { PGLITE_DIR: repoPath('.data', 'pglite', service) };
  const url = new URL(process.env.DATABASE_URL);
  const database = `wristpay_${name}`;
  const admin = new Client({ connectionString: url.toString() });
  await admin.connect();
  const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [database]);
  if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${database}`);
  await admin.end();
  url.pathname = `/${database}`;
  return { DATABASE_URL: url.toString() };
}

/** The checker settlement's `npm run ledger:check` runs (services/settlement/src/ledger-check.ts). */
const LEDGER_CHECK = repoPath('dist', 'services', 'settlement', 'src', 'ledger-check.js');

/** Runs the ledger checker on settlement's database (PGLITE_DIR or DATABASE_URL); its verdict and whether it is sound. */
function ledgerCheck(settlementDb: Record<string, string>): { ok: boolean; text: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, ...settlementDb };
  // Exactly the database settlement used: PGlite files, or its own database on the server.
  if (!settlementDb.DATABASE_URL) delete env.DATABASE_URL;
  const run = spawnSync(process.execPath, [LEDGER_CHECK], { env, encoding: 'utf8', timeout: 120_000 });
  const text = [run.stdout, run.stderr].map((t) => (t ?? '').trim()).filter(Boolean).join('\n') || (run.error ? `ledger-check: ${run.error.message}` : `ledger-check exited ${run.status ?? run.signal}`);
  return { ok: run.status === 0, text };
}

/** The command to check the ledger by hand (a DATABASE_URL's password is not printed). */
function ledgerCheckCommand(settlementDb: Record<string, string>): string {
  if (settlementDb.PGLITE_DIR) return `PGLITE_DIR=${relative(process.cwd(), settlementDb.PGLITE_DIR) || '.'} npm run ledger:check`;
  const url = new URL(settlementDb.DATABASE_URL!);
  if (url.password) url.password = '***';
  return `DATABASE_URL='${url.toString()}' npm run ledger:check`;
}

async function main(): Promise<void> {
  mkdirSync(data, { recursive: true });
  execFileSync('bash', [repoPath('scripts', 'ensure-infra.sh'), ...(withPrometheus ? ['--prometheus'] : [])], { stdio: 'inherit' });
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), repoPath('.data', 'certs')], { stdio: 'inherit' });
  const certs = repoPath('.data', 'certs');
  const secrets = devSecrets();
  const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const service of SERVICES) {
    perService[service] = { ...certPaths(certs, service), ...(await databaseEnv(service)), ...(service === 'tokenization' ? secrets : {}) };
  }
  perService.gateway = { ...perService.gateway, CHALLENGE_TTL_SECONDS };
  let prometheus: RunningPrometheus | undefined;
  if (withPrometheus) {
    for (const service of SERVICES) perService[service] = { ...perService[service], METRICS_PORT: String(METRICS_PORTS[service]) };
    prometheus = await startPrometheus({ port: Number(process.env.PROMETHEUS_PORT ?? 9090), dataDir: repoPath('.data', 'prometheus'), targets: METRICS_PORTS, scrapeIntervalSeconds: 5 });
    // However npm start ends (a failed start included), its prometheus does not outlive it.
    const started = prometheus;
    process.once('exit', () => started.process.kill());
    console.log(`prometheus: ${prometheus.url} scraping ${SERVICES.map((s) => `${s} :${METRICS_PORTS[s]}`).join(', ')} (alerts: ${prometheus.url}/alerts)`);
  }
  const traceNote = process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? `OTLP ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}` : `${repoPath('.data', 'traces')}/<service>.jsonl`;
  console.log(`starting the mesh (database: ${process.env.DATABASE_URL ? 'PostgreSQL at DATABASE_URL' : 'embedded PGlite in .data/pglite'}; traces: ${traceNote})`);
  // `demo` only checks that the services are up: every call the demo makes goes as whom it plays.
  const demoCredentials = certCredentials(certs, 'demo');
  const mesh = await startMesh({
    ports: DEFAULT_PORTS,
    env: {
      GRPC_TLS: 'mtls',
      // device-registry and risk; the others ignore it. With REDIS_SENTINELS exported (Redis
      // through Sentinel, e.g. `node dist/scripts/engines/up.js`) the services get it and its
      // companions instead, and no REDIS_URL.
      ...(process.env.REDIS_SENTINELS ? {} : { REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379' }),
      ...passThrough('REDIS_SENTINELS', 'REDIS_MASTER_NAME', 'REDIS_PASSWORD', 'REDIS_SENTINEL_PASSWORD', 'NATS_STREAM_REPLICAS'),
      NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      ...(process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? { OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
    },
    perService,
    credentials: demoCredentials,
    onLine: printLogLine,
  });
  console.log(`mesh up: ${SERVICES.map((s) => `${s} :${DEFAULT_PORTS[s]}`).join(', ')}`);

  // Each part the demo plays has its own identity: the wallet backend (`wallet`: bands, top-ups,
  // limits, alerts, step-ups), the back office (`backoffice`: onboarding, disputes, payouts) and
  // each merchant's terminal (`merchant.<id>`: the gateway acts for that merchant only).
  const clients = demoClients(
    {
      gateway: `localhost:${DEFAULT_PORTS.gateway}`,
      registry: `localhost:${DEFAULT_PORTS['device-registry']}`,
      tokenization: `localhost:${DEFAULT_PORTS.tokenization}`,
      settlement: `localhost:${DEFAULT_PORTS.settlement}`,
      alerts: `localhost:${DEFAULT_PORTS.alerts}`,
    },
    certs,
  );
  /** What did not go as expected; empty when everything did. */
  const failures: string[] = [];
  try {
    const onboarded = await onboardDemoMerchants(clients.backoffice.merchants);
    console.log(`merchants: ${onboarded.merchants.map((m) => m.merchantId).join(', ')} ACTIVE in the gateway's registry (onboarded by the back office; a restart finds them there)`);
    for (const note of onboarded.notes) console.log(`merchants: ${note}`);
    const demo = await runDemo(clients, {
      onPause: (ms) => console.log(`demo: waiting ${Math.round(ms / 1000)} s before the next round of everyday taps (set DEMO_PAUSE_MS to change); the phone goes offline meanwhile`),
      onResume: (after) => console.log(`alert feed: phone back online, resuming after #${after}`),
      onAlert: (alert) => console.log(`alert feed ${alert.accountId} ${formatAlert(alert)}`),
      onStepUp: (alert) => console.log(`step-up on the phone ${alert.accountId} ${formatAlert(alert)}`),
      onExpiryWait: (ms) => console.log(`demo: waiting ${Math.ceil(ms / 1000)} s for the unanswered step-up to expire (the pause was shorter than its challenge)`),
    });
    console.log(`\n${renderDemo(demo.rows)}`);
    console.log(`traces: ${traceNote} (find a payment by the trace id above)`);
    for (const r of demo.rows.filter((row) => !row.ok)) failures.push(`payment #${r.n} (${r.scenario}): expected ${r.expected}, got ${r.outcome} (${r.detail})`);
    const escrow = await runEscrow(clients, demo);
    console.log(`\n${renderEscrow(escrow.rows, escrow.report)}`);
    for (const r of escrow.rows.filter((row) => !row.ok)) failures.push(`step ${r.n} after authorization (${r.step}): expected ${r.expected}, got ${r.outcome} (${r.detail})`);
    const feed = await finishFeed(demo.feed);
    console.log(`\n${feed.ok ? '✓' : '✗'} ${feed.summary}`);
    if (!feed.ok) failures.push(feed.summary);
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
    failures.push(`the demo stopped: ${(err as Error).message}`);
  } finally {
    clients.close();
  }

  const settlementDb = perService.settlement ?? {};
  const checkDb = Object.fromEntries(Object.entries(settlementDb).filter(([k]) => k === 'PGLITE_DIR' || k === 'DATABASE_URL'));
  if (once) {
    // Settlement's embedded PGlite opens in one process at a time: check once the mesh has stopped.
    await mesh.stop();
    await prometheus?.stop();
    const verdict = ledgerCheck(checkDb);
    console.log(`\n${verdict.ok ? '✓' : '✗'} ${verdict.text}`);
    if (!verdict.ok) failures.push(`ledger check: ${verdict.text.split('\n')[0]}`);
    console.log(failures.length === 0 ? '\ndemo: every payment and step-up, every step after authorization, the alert feed and the ledger check went as expected' : `\ndemo: FAILED, ${failures.length} unexpected:\n${failures.map((f) => `  ✗ ${f}`).join('\n')}`);
    process.exit(failures.length === 0 ? 0 : 1);
  }
  if (failures.length) console.log(`\ndemo: FAILED, ${failures.length} unexpected:\n${failures.map((f) => `  ✗ ${f}`).join('\n')}`);
  console.log(`\nledger check: stop the mesh (Ctrl-C), then run  ${ledgerCheckCommand(checkDb)}`);
  console.log('\nthe mesh stays up; press Ctrl-C to stop it');
  const shutdown = async () => {
    console.log('stopping the mesh');
    await mesh.stop();
    await prometheus?.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

main().catch((err) => {
  console.error(`npm start failed: ${(err as Error).message}`);
  process.exit(1);
});

/** The named variables that are set in this environment (a service gets only what the launcher passes). */
function passThrough(...names: string[]): Record<string, string> {
  return Object.fromEntries(names.flatMap((n) => (process.env[n] ? [[n, process.env[n]!]] : [])));
}
