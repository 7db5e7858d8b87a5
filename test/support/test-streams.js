// jest globalSetup / globalTeardown: the integration tests create JetStream streams under
// throwaway subject prefixes (`<PREFIX>_DEVICE`, ...), which would otherwise stay on the shared
// NATS server after every run. Setup picks an id for the run; teardown deletes the prefixed
// streams whose prefix carries it (never an unprefixed one: those are `npm start`'s).
// Plain JavaScript: jest loads these files outside its transform.
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');
const { randomBytes } = require('node:crypto');

const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

async function setup() {
  // uniqueName (test/support/servers.ts) puts this run's id into every prefix, so teardown
  // deletes this run's streams only, never those of another run against the same server.
  process.env.WRISTPAY_TEST_RUN ??= randomBytes(3).toString('hex');
}

async function teardown() {
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

module.exports = { setup, teardown };
