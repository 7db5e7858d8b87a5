// jest globalSetup / globalTeardown: the integration tests create JetStream streams under
// throwaway subject prefixes (`<PREFIX>_DEVICE`, ...) and Redis keys under throwaway key
// prefixes (`<prefix>:risk-device:...`, some with TTLs of a year), which would otherwise stay on
// the shared servers after every run. Setup picks an id for the run; teardown deletes the
// prefixed streams and keys whose prefix carries it (never an unprefixed one: those are
// `npm start`'s).
// Plain JavaScript: jest loads these files outside its transform.
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const { randomBytes } = require('node:crypto');
const Redis = require('ioredis');

const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';
const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

async function setup() {
  // uniqueName (test/support/servers.ts) puts this run's id into every prefix, so teardown
  // deletes this run's streams only, never those of another run against the same server.
  process.env.WRISTPAY_TEST_RUN ??= randomBytes(3).toString('hex');
}

async function teardown() {
  await removeRunKeys(process.env.WRISTPAY_TEST_RUN);
  const run = process.env.WRISTPAY_TEST_RUN.toUpperCase();
  const nc = await connect({ servers: NATS_URL, timeout: 2_000 }).catch(() => undefined);
  if (!nc) return;
  try {
    const jsm = await jetstreamManager(nc);
    const created = [];
    for await (const s of jsm.streams.list()) if (s.config.name.includes(run) && s.config.name.includes('_')) created.push(s.config.name);
    for (const name of created) await jsm.streams.delete(name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

/**
 * Deletes the Redis keys of this run: those whose key prefix is a uniqueName of it (a label, the
 * run's id, ten hex digits, then ':'). SCAN's pattern only narrows the walk; the exact shape is
 * checked before a key is deleted.
 */
async function removeRunKeys(run) {
  const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  try {
    await redis.connect();
    const ours = new RegExp(`^[A-Za-z0-9_]*${run}[0-9a-f]{10}:`);
    for await (const keys of redis.scanStream({ match: `*${run}*`, count: 1000 })) {
      const doomed = keys.filter((k) => ours.test(k));
      if (doomed.length) await redis.unlink(...doomed);
    }
  } catch {
    // No Redis (a run of unit tests only): nothing of ours is there.
  } finally {
    redis.disconnect();
  }
}

module.exports = { setup, teardown, removeRunKeys };
