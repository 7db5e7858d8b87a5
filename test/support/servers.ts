import { randomBytes } from 'node:crypto';
import { Socket } from 'node:net';
import { Client } from 'pg';

/** The real servers integration tests use; override with these variables to point elsewhere. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';
export const TEST_NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

/**
 * The size cap of every stream a test creates. JetStream reserves a stream's max_bytes of the
 * server's storage when it creates it; a test run creates hundreds of prefixed streams (they go
 * at the run's end), and at production's 1 GiB each the machine's server ran out of storage to
 * reserve half way through the run (stream creation refused, services waiting for NATS).
 */
export const TEST_STREAM_MAX_BYTES = 16 * 1024 * 1024;
/** TEST_STREAM_MAX_BYTES as EventBus.connect takes it. */
export const TEST_STREAM_LIMITS = { maxBytes: TEST_STREAM_MAX_BYTES };

const HOW_TO_START: Record<string, string> = {
  PostgreSQL: 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start',
  Redis: 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no',
  NATS: 'nats-server -a 127.0.0.1 -p 4222 -js -sd /tmp/nats &',
};

function reachable(url: string): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = new Socket();
    socket.setTimeout(1_000);
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.connect(Number(port), hostname);
  });
}

/**
 * Fails (never skips) with the command that starts whatever is missing. Call it in beforeAll of
 * every integration test.
 */
export async function requireServers(...which: Array<'PostgreSQL' | 'Redis' | 'NATS'>): Promise<void> {
  const urls = { PostgreSQL: TEST_DATABASE_URL, Redis: TEST_REDIS_URL, NATS: TEST_NATS_URL };
  for (const name of which) {
    if (!(await reachable(urls[name]))) {
      throw new Error(`${name} is not reachable at ${urls[name]}. Start it with: ${HOW_TO_START[name]} (or run .ci/run, which starts everything)`);
    }
  }
}

/** A short unique name for one test's data: NATS subject prefix, Redis key prefix, database name. */
export function uniqueName(label = 't'): string {
  // The run's id (set by jest's globalSetup, test/support/test-streams.js) lets the run's
  // teardown find what it created; outside jest there is none.
  return `${label}${process.env.WRISTPAY_TEST_RUN ?? ''}${randomBytes(5).toString('hex')}`;
}

/** Creates an empty PostgreSQL database for one test file; `drop()` removes it. */
export async function freshDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = uniqueName('wp_test_');
  const admin = new Client({ connectionString: TEST_DATABASE_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = new URL(TEST_DATABASE_URL);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const c = new Client({ connectionString: TEST_DATABASE_URL });
      await c.connect();
      await c.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await c.end();
    },
  };
}
