/**
 * `npm start`: brings the whole mesh up locally on real Redis and NATS JetStream (started or
 * installed when missing), embedded PGlite unless DATABASE_URL is set, mTLS between the services
 * with a local dev CA, then runs the demo. `npm start -- --once` exits after the demo: 0 when
 * every payment went as expected, 1 otherwise. Otherwise the mesh stays up until Ctrl-C.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { credentials } from '@grpc/grpc-js';
import { Client } from 'pg';
import { repoPath } from '../platform/paths';
import { meshClients } from '../sim/clients';
import { renderDemo, runDemo } from '../sim/demo';
import { certPaths, SERVICES, startMesh, type ServiceName } from './mesh';
import { printLogLine } from './pretty-log';

const DEFAULT_PORTS: Record<ServiceName, number> = { gateway: 50050, 'device-registry': 50051, tokenization: 50052, risk: 50053, settlement: 50054 };
/** The services that own a database, and its name (DESIGN.md: one database per owning service). */
const DATABASES: Partial<Record<ServiceName, string>> = { 'device-registry': 'registry', tokenization: 'vault', settlement: 'ledger' };

const data = repoPath('.data');
const once = process.argv.includes('--once');

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

async function main(): Promise<void> {
  mkdirSync(data, { recursive: true });
  execFileSync('bash', [repoPath('scripts', 'ensure-infra.sh')], { stdio: 'inherit' });
  execFileSync('bash', [repoPath('scripts', 'dev-certs.sh'), repoPath('.data', 'certs')], { stdio: 'inherit' });
  const certs = repoPath('.data', 'certs');
  const secrets = devSecrets();
  const perService: Partial<Record<ServiceName, Record<string, string>>> = {};
  for (const service of SERVICES) {
    perService[service] = { ...certPaths(certs, service), ...(await databaseEnv(service)), ...(service === 'tokenization' ? secrets : {}) };
  }
  const traceNote = process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? `OTLP ${process.env.OTEL_EXPORTER_OTLP_ENDPOINT}` : `${repoPath('.data', 'traces')}/<service>.jsonl`;
  console.log(`starting the mesh (database: ${process.env.DATABASE_URL ? 'PostgreSQL at DATABASE_URL' : 'embedded PGlite in .data/pglite'}; traces: ${traceNote})`);
  const tls = { ca: readFileSync(`${certs}/ca.crt`), key: readFileSync(`${certs}/demo.key`), cert: readFileSync(`${certs}/demo.crt`) };
  const demoCredentials = credentials.createSsl(tls.ca, tls.key, tls.cert);
  const mesh = await startMesh({
    ports: DEFAULT_PORTS,
    env: {
      GRPC_TLS: 'mtls',
      REDIS_URL: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
      NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
      ...(process.env.OTEL_EXPORTER_OTLP_ENDPOINT ? { OTEL_EXPORTER_OTLP_ENDPOINT: process.env.OTEL_EXPORTER_OTLP_ENDPOINT } : {}),
    },
    perService,
    credentials: demoCredentials,
    onLine: printLogLine,
  });
  console.log(`mesh up: ${SERVICES.map((s) => `${s} :${DEFAULT_PORTS[s]}`).join(', ')}`);

  const clients = meshClients(
    {
      gateway: `localhost:${DEFAULT_PORTS.gateway}`,
      registry: `localhost:${DEFAULT_PORTS['device-registry']}`,
      tokenization: `localhost:${DEFAULT_PORTS.tokenization}`,
      settlement: `localhost:${DEFAULT_PORTS.settlement}`,
    },
    demoCredentials,
  );
  let ok = false;
  try {
    const { rows } = await runDemo(clients, (ms) => console.log(`demo: waiting ${Math.round(ms / 1000)} s before the next round of everyday taps (set DEMO_PAUSE_MS to change)`));
    console.log(`\n${renderDemo(rows)}`);
    console.log(`traces: ${traceNote} (find a payment by the trace id above)`);
    ok = rows.every((r) => r.ok);
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message}`);
  } finally {
    clients.close();
  }

  if (once) {
    await mesh.stop();
    process.exit(ok ? 0 : 1);
  }
  console.log('\nthe mesh stays up; press Ctrl-C to stop it');
  const shutdown = async () => {
    console.log('stopping the mesh');
    await mesh.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown());
  process.on('SIGTERM', () => void shutdown());
}

main().catch((err) => {
  console.error(`npm start failed: ${(err as Error).message}`);
  process.exit(1);
});
