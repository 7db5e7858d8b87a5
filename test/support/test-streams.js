// jest globalSetup / globalTeardown: the integration tests create JetStream streams under
// throwaway subject prefixes (`<PREFIX>_DEVICE`, ...), which would otherwise stay on the shared
// NATS server after every run. Setup notes the streams that exist; teardown deletes the
// prefixed streams created since (never an unprefixed one: those are `npm start`'s).
// Plain JavaScript: jest loads these files outside its transform.
const { connect } = require('@nats-io/transport-node');
const { jetstreamManager } = require('@nats-io/jetstream');

const NATS_URL = process.env.TEST_NATS_URL ?? 'nats://127.0.0.1:4222';

async function streamNames() {
  const nc = await connect({ servers: NATS_URL, timeout: 2_000 });
  try {
    const jsm = await jetstreamManager(nc);
    const names = [];
    for await (const s of jsm.streams.list()) names.push(s.config.name);
    return names;
  } finally {
    await nc.close();
  }
}

async function setup() {
  // NATS down: the tests that need it say how to start it; there is nothing to clean up then.
  globalThis.__streamsBeforeTests = new Set(await streamNames().catch(() => []));
}

async function teardown() {
  const before = globalThis.__streamsBeforeTests ?? new Set();
  const nc = await connect({ servers: NATS_URL, timeout: 2_000 }).catch(() => undefined);
  if (!nc) return;
  try {
    const jsm = await jetstreamManager(nc);
    const created = [];
    for await (const s of jsm.streams.list()) if (!before.has(s.config.name) && s.config.name.includes('_')) created.push(s.config.name);
    for (const name of created) await jsm.streams.delete(name).catch(() => undefined);
  } finally {
    await nc.close();
  }
}

module.exports = { setup, teardown };
