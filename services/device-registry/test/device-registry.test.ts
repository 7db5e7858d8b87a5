import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import { ChallengePurpose as Purpose, DeviceRegistryServiceClient, DeviceStatus } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { UnlockMethod } from '../../../gen/wristpay/common/v1/common';
import { Band } from '../../../sim/band';
import { registerBand, signedChallenge } from '../../../sim/wallet';
import { watchEvents } from '../../../test/support/events';
import { freshDatabase, requireServers } from '../../../test/support/servers';
import { expectStatus, testClient, testEnv, testLogger, uniqueName } from '../../../test/support/services';
import { startDeviceRegistry } from '../src/app';
import { readConfig } from '../src/config';

describe('device-registry against real PostgreSQL, Redis and NATS', () => {
  const prefix = uniqueName();
  let database: Awaited<ReturnType<typeof freshDatabase>>;
  let service: Awaited<ReturnType<typeof startDeviceRegistry>>;
  let client: ReturnType<typeof testClient<DeviceRegistryServiceClient>>;
  let events: Awaited<ReturnType<typeof watchEvents>>;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    database = await freshDatabase();
    events = await watchEvents(prefix);
    service = await startDeviceRegistry(readConfig(testEnv(prefix, { DATABASE_URL: database.url, DEVICE_REGISTRY_PORT: '0', MAX_DEVICES_PER_ACCOUNT: '2' })), testLogger('device-registry'));
    client = testClient(DeviceRegistryServiceClient, service.port);
  });

  afterAll(async () => {
    client?.close();
    await service?.stop();
    await events?.close();
    await database?.drop();
  });

  async function registered(accountId = uniqueName('acct')) {
    const band = await registerBand(client, accountId);
    return { band, accountId, deviceId: band.deviceId! };
  }

  const signed = (band: Band, purpose: Purpose) => signedChallenge(client, band, purpose === Purpose.CHALLENGE_PURPOSE_PAIRING ? 'PAIRING' : 'SESSION');

  async function paired() {
    const r = await registered();
    await client.pairDevice({ idempotencyKey: randomUUID(), deviceId: r.deviceId, accountId: r.accountId, ...(await signed(r.band, Purpose.CHALLENGE_PURPOSE_PAIRING)) });
    return r;
  }

  it('pairs a band, starts a live session and reports it, with one event per step', async () => {
    const { band, deviceId } = await paired();
    const { session } = await client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_BIOMETRIC, ...(await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION)) });
    expect(session!.live).toBe(true);
    const got = await client.getSession({ deviceId });
    expect(got.session!.live).toBe(true);
    expect(got.session!.sessionId).toBe(session!.sessionId);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    const mine = (type: string) => events.ofType(type).filter((e) => JSON.stringify(e.event.payload?.value).includes(deviceId));
    await events.waitFor(() => mine('device.registered').length === 1 && mine('device.paired').length === 1 && mine('device.session.started').length === 1, 5_000, 'registry events');
  });

  it('refuses a reused nonce, a wrong signature and a foreign account, changing nothing', async () => {
    const { band, deviceId, accountId } = await registered();
    const good = await signed(band, Purpose.CHALLENGE_PURPOSE_PAIRING);
    await expectStatus(client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId: 'someone-else', ...good }), status.PERMISSION_DENIED, /another account/);
    const other = Band.create();
    other.deviceId = deviceId;
    const c = await client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_PAIRING });
    const forged = other.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await expectStatus(client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId, challengeId: c.challengeId, signature: forged }), status.PERMISSION_DENIED, /signature/);
    // The forged attempt spent its nonce: presenting it again, even correctly signed, is refused.
    const resigned = band.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await expectStatus(client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId, challengeId: c.challengeId, signature: resigned }), status.FAILED_PRECONDITION, /challenge/);
    expect((await client.getDevice({ deviceId })).device!.status).toBe(DeviceStatus.DEVICE_STATUS_PENDING_PAIRING);
  });

  it('rejects malformed keys, duplicate serials and bands over the account limit', async () => {
    const band = Band.create();
    const base = { accountId: uniqueName('acct'), model: 'M', serial: band.serial, ed25519PublicKey: band.ed25519PublicKey, x25519PublicKey: band.x25519PublicKey };
    await expectStatus(client.registerDevice({ ...base, idempotencyKey: randomUUID(), ed25519PublicKey: Buffer.alloc(31) }), status.INVALID_ARGUMENT, /32 bytes/);
    await client.registerDevice({ ...base, idempotencyKey: randomUUID() });
    await expectStatus(client.registerDevice({ ...base, idempotencyKey: randomUUID() }), status.ALREADY_EXISTS, /serial/);
    await client.registerDevice({ ...base, serial: `${band.serial}-2`, idempotencyKey: randomUUID() });
    await expectStatus(client.registerDevice({ ...base, serial: `${band.serial}-3`, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /limit is 2/);
  });

  it('answers a retried RegisterDevice with the first answer and refuses the key for another request', async () => {
    const band = Band.create();
    const req = { idempotencyKey: randomUUID(), accountId: uniqueName('acct'), model: 'M', serial: band.serial, ed25519PublicKey: band.ed25519PublicKey, x25519PublicKey: band.x25519PublicKey };
    const [a, b] = await Promise.all([client.registerDevice(req), client.registerDevice(req)]);
    expect(a.device!.deviceId).toBe(b.device!.deviceId);
    await expectStatus(client.registerDevice({ ...req, model: 'other' }), status.ALREADY_EXISTS, /idempotency key/);
  });

  it('reporting a band lost ends its session at once and forbids it from coming back', async () => {
    const { band, deviceId } = await paired();
    await client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_PHONE_PIN, ...(await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION)) });
    await client.reportLost({ idempotencyKey: randomUUID(), deviceId });
    const got = await client.getSession({ deviceId });
    expect(got.session!.live).toBe(false);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_LOST);
    await expectStatus(client.resumeDevice({ idempotencyKey: randomUUID(), deviceId }), status.FAILED_PRECONDITION, /LOST/);
    await expectStatus(client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_SESSION }), status.FAILED_PRECONDITION);
  });

  it('pages through an account’s devices', async () => {
    const accountId = uniqueName('acct');
    await registered(accountId);
    await registered(accountId);
    const first = await client.listDevices({ accountId, pageSize: 1, pageToken: '' });
    expect(first.devices).toHaveLength(1);
    const second = await client.listDevices({ accountId, pageSize: 1, pageToken: first.nextPageToken });
    expect(second.devices).toHaveLength(1);
    expect(second.devices[0]!.deviceId).not.toBe(first.devices[0]!.deviceId);
    expect(second.nextPageToken).toBe('');
    await expectStatus(client.listDevices({ accountId, pageSize: 1, pageToken: 'garbage' }), status.INVALID_ARGUMENT);
  });
});
