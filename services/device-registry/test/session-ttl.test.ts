import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { DeviceStatus } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { UnlockMethod } from '../../../gen/wristpay/common/v1/common';
import { pairBand, registerBand, signedChallenge } from '../../../sim/wallet';
import { requireServers } from '../../../test/support/servers';
import { expectStatus, uniqueName } from '../../../test/support/services';
import { startTestRegistry, stopTestRegistry, type TestRegistry } from './support/registry';

/**
 * The registry's clocks with small TTLs (seconds are the config's unit): challenges live 1 s,
 * sessions 2 s, and no session outlives 4 s however often it heartbeats.
 */
describe('device-registry TTLs against real PostgreSQL and Redis', () => {
  const prefix = uniqueName();
  const TTL_MS = 2_000;
  const MAX_AGE_MS = 4_000;
  let registry: TestRegistry;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    registry = await startTestRegistry(prefix, {
      CHALLENGE_TTL_SECONDS: '1',
      SESSION_TTL_SECONDS: String(TTL_MS / 1000),
      SESSION_MAX_AGE_SECONDS: String(MAX_AGE_MS / 1000),
    });
  });

  afterAll(() => stopTestRegistry(registry));

  const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

  async function activeBand() {
    const accountId = uniqueName('acct');
    const band = await registerBand(registry.client, accountId);
    await pairBand(registry.client, band, accountId);
    return { band, accountId, deviceId: band.deviceId! };
  }

  it('refuses an expired nonce for pairing and for a session, changing nothing', async () => {
    const accountId = uniqueName('acct');
    const pending = await registerBand(registry.client, accountId);
    const pairing = await signedChallenge(registry.client, pending, 'PAIRING');
    const { band, deviceId } = await activeBand();
    const session = await signedChallenge(registry.client, band, 'SESSION');
    await new Promise((r) => setTimeout(r, 1_300));
    await expectStatus(registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId: pending.deviceId!, accountId, ...pairing }), status.FAILED_PRECONDITION, /challenge expired/);
    expect((await registry.client.getDevice({ deviceId: pending.deviceId! })).device!.status).toBe(DeviceStatus.DEVICE_STATUS_PENDING_PAIRING);
    await expectStatus(registry.client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_BIOMETRIC, ...session }), status.FAILED_PRECONDITION, /challenge expired/);
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);
    // A fresh challenge still works: expiry refused only the stale one.
    await pairBand(registry.client, pending, accountId);
    expect((await registry.client.getDevice({ deviceId: pending.deviceId! })).device!.status).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
  });

  it('a session nobody heartbeats expires after its TTL', async () => {
    const { band, deviceId } = await activeBand();
    const { session } = await registry.client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_PHONE_PIN, ...(await signedChallenge(registry.client, band, 'SESSION')) });
    const started = session!.startedAt!.getTime();
    expect(session!.expiresAt!.getTime()).toBe(started + TTL_MS);
    await sleepUntil(started + TTL_MS + 200);
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);
    await expectStatus(registry.client.heartbeat({ deviceId, sessionId: session!.sessionId }), status.FAILED_PRECONDITION, /no live session/);
  });

  it('heartbeats slide the TTL but never past the maximum age', async () => {
    const { band, deviceId } = await activeBand();
    const { session } = await registry.client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_BIOMETRIC, ...(await signedChallenge(registry.client, band, 'SESSION')) });
    const started = session!.startedAt!.getTime();
    const sessionId = session!.sessionId;

    await sleepUntil(started + 1_000);
    const first = (await registry.client.heartbeat({ deviceId, sessionId })).session!;
    // Slid: a full TTL from this heartbeat, beyond the first expiry.
    expect(first.expiresAt!.getTime()).toBe(first.lastHeartbeatAt!.getTime() + TTL_MS);
    expect(first.expiresAt!.getTime()).toBeGreaterThan(started + TTL_MS);
    expect(first.startedAt!.getTime()).toBe(started);

    // Past the first TTL, the band is still live because of the heartbeat.
    await sleepUntil(started + TTL_MS + 300);
    const mid = await registry.client.getSession({ deviceId });
    expect(mid.session!.live).toBe(true);
    expect(mid.session!.sessionId).toBe(sessionId);

    const capped = (await registry.client.heartbeat({ deviceId, sessionId })).session!;
    expect(capped.expiresAt!.getTime()).toBe(started + MAX_AGE_MS);
    await sleepUntil(started + MAX_AGE_MS - 500);
    const again = (await registry.client.heartbeat({ deviceId, sessionId })).session!;
    expect(again.expiresAt!.getTime()).toBe(started + MAX_AGE_MS);

    await sleepUntil(started + MAX_AGE_MS + 200);
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);
    await expectStatus(registry.client.heartbeat({ deviceId, sessionId }), status.FAILED_PRECONDITION, /no live session/);
  });
});
