import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { jetstreamManager } from '@nats-io/jetstream';
import type { Event } from '../../../gen/wristpay/events/v1/events';
import { openDb, type Db } from '../../../platform/db';
import { newEvent } from '../../../platform/events';
import { createLogger } from '../../../platform/log';
import { EventBus } from '../../../platform/nats';
import { registerBand } from '../../../sim/wallet';
import { requireServers, TEST_NATS_URL, TEST_STREAM_LIMITS } from '../../../test/support/servers';
import { testLogger, uniqueName } from '../../../test/support/services';
import { DeviceStore } from '../src/store';
import { TOKEN_PROVISIONED_CONSUMER, tokenProvisionedHandler } from '../src/token-provisioned';
import { startTestRegistry, stopTestRegistry, type TestRegistry } from './support/registry';

describe('device-registry counts token.provisioned (real PostgreSQL and NATS JetStream)', () => {
  const prefix = uniqueName();
  let registry: TestRegistry;
  /** Publishes as tokenization would, under this test's subject prefix. */
  let bus: EventBus;
  /** The registry's own database, to call the consumer's handler directly as a redelivery would. */
  let db: Db;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'NATS');
    registry = await startTestRegistry(prefix);
    bus = await EventBus.connect({ url: TEST_NATS_URL, prefix, source: 'tokenization', log: testLogger('tokenization'), limits: TEST_STREAM_LIMITS });
    db = await openDb({ databaseUrl: registry.database.url, poolSize: 2 });
  });

  afterAll(async () => {
    await db?.close();
    await bus?.close();
    await stopTestRegistry(registry);
  });

  const provisioned = (deviceId: string, occurredAt = new Date(), eventId = randomUUID()): Event => ({
    ...newEvent('token.provisioned', 'tokenization', { $case: 'token', value: { tokenId: randomUUID(), deviceId, accountId: 'acct', status: 'ACTIVE', reason: '', tokenLast4: '4242' } }, eventId),
    occurredAt,
  });

  /** A registered band's id (registration is all a token count needs: tokenization checks pairing, not this consumer). */
  const registeredBand = async (accountId = uniqueName('acct')) => (await registerBand(registry.client, accountId)).deviceId!;

  const device = async (deviceId: string) => (await registry.client.getDevice({ deviceId })).device!;

  /** Polls GetDevice until `predicate` holds (the consumer is asynchronous); fails after `timeoutMs`. */
  async function eventually(deviceId: string, predicate: (d: Awaited<ReturnType<typeof device>>) => boolean, timeoutMs = 5_000) {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const d = await device(deviceId);
      if (predicate(d)) return d;
      if (Date.now() > until) throw new Error(`device ${deviceId} never matched; last seen tokensProvisioned=${d.tokensProvisioned}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Waits until the registry's durable consumer has acknowledged everything it was given, with nothing redelivered. */
  async function consumerSettled(): Promise<{ delivered: number; redelivered: number }> {
    const jsm = await jetstreamManager(bus.nc);
    const until = Date.now() + 5_000;
    for (;;) {
      const info = await jsm.consumers.info(bus.streamName('token'), TOKEN_PROVISIONED_CONSUMER);
      if (info.num_pending === 0 && info.num_ack_pending === 0) return { delivered: info.delivered.consumer_seq, redelivered: info.num_redelivered };
      if (Date.now() > until) throw new Error(`consumer not settled: ${info.num_pending} pending, ${info.num_ack_pending} unacknowledged`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('a token.provisioned shows on GetDevice and ListDevices, once; the same event again changes nothing; a second token counts', async () => {
    const accountId = uniqueName('acct');
    const deviceId = await registeredBand(accountId);
    expect(await device(deviceId)).toMatchObject({ tokensProvisioned: 0, lastTokenProvisionedAt: undefined });

    const first = provisioned(deviceId, new Date(Date.now() - 60_000));
    expect((await bus.publish(first)).duplicate).toBe(false);
    const after = await eventually(deviceId, (d) => d.tokensProvisioned >= 1);
    expect(after).toMatchObject({ tokensProvisioned: 1, lastTokenProvisionedAt: first.occurredAt });
    const listed = await registry.client.listDevices({ accountId, pageSize: 10, pageToken: '' });
    expect(listed.devices.map((d) => ({ id: d.deviceId, n: d.tokensProvisioned, at: d.lastTokenProvisionedAt }))).toEqual([{ id: deviceId, n: 1, at: first.occurredAt }]);

    // Republished within the window, JetStream drops it; delivered again anyway (a redelivery
    // after a lost ack, simulated by running the handler on it), the processed-event key does.
    expect((await bus.publish(first)).duplicate).toBe(true);
    const handler = tokenProvisionedHandler({ devices: new DeviceStore(db), log: testLogger('device-registry') });
    expect(await Promise.all([handler(first), handler(first)])).toEqual(['duplicate', 'duplicate']);
    await consumerSettled();
    expect((await device(deviceId)).tokensProvisioned).toBe(1);

    const second = provisioned(deviceId);
    await bus.publish(second);
    expect(await eventually(deviceId, (d) => d.tokensProvisioned >= 2)).toMatchObject({ tokensProvisioned: 2, lastTokenProvisionedAt: second.occurredAt });
    await consumerSettled();
    expect((await device(deviceId)).tokensProvisioned).toBe(2);
  });

  it('counts two deliveries of one new event racing each other once', async () => {
    const deviceId = await registeredBand();
    const handler = tokenProvisionedHandler({ devices: new DeviceStore(db), log: testLogger('device-registry') });
    const event = provisioned(deviceId);
    expect((await Promise.all([handler(event), handler(event), handler(event)])).sort()).toEqual(['counted', 'duplicate', 'duplicate']);
    expect(await device(deviceId)).toMatchObject({ tokensProvisioned: 1, lastTokenProvisionedAt: event.occurredAt });
  });

  it('an older event arriving late still counts, but the last-provisioned time keeps the latest', async () => {
    const deviceId = await registeredBand();
    const newer = provisioned(deviceId, new Date(Date.now() - 1_000));
    const older = provisioned(deviceId, new Date(Date.now() - 3_600_000));
    await bus.publish(newer);
    await bus.publish(older);
    expect(await eventually(deviceId, (d) => d.tokensProvisioned >= 2)).toMatchObject({ tokensProvisioned: 2, lastTokenProvisionedAt: newer.occurredAt });
  });

  it('an event for a band it does not know, or without a usable device id, is logged by id, acknowledged and skipped', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
    const handler = tokenProvisionedHandler({ devices: new DeviceStore(db), log: createLogger('device-registry', 'info', sink) });
    const stranger = randomUUID();
    const unknown = provisioned(stranger);
    expect(await handler(unknown)).toBe('unknown-device');
    const warning = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((l) => l.deviceId === stranger);
    expect(warning).toMatchObject({ level: 'warn', deviceId: stranger, eventId: unknown.eventId, tokenId: expect.any(String) });
    expect(Object.keys(warning!).filter((k) => !['level', 'time', 'service', 'pid', 'hostname', 'msg', 'deviceId', 'tokenId', 'eventId'].includes(k))).toEqual([]);
    expect(await handler(provisioned('not-a-uuid'))).toBeUndefined();

    // Through JetStream: neither is retried, and a band the registry does know, published after
    // them, is still counted (the consumer is not stuck behind them).
    const before = await consumerSettled();
    const deviceId = await registeredBand();
    await bus.publish(provisioned(randomUUID()));
    await bus.publish(provisioned('not-a-uuid'));
    await bus.publish(provisioned(deviceId));
    expect((await eventually(deviceId, (d) => d.tokensProvisioned >= 1)).tokensProvisioned).toBe(1);
    const settled = await consumerSettled();
    expect(settled.delivered - before.delivered).toBe(3);
    expect(settled.redelivered).toBe(before.redelivered);
  });
});
