import { randomBytes, randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { ChallengePurpose as Purpose, DeviceStatus, SessionEndReason } from '../../../gen/wristpay/device_registry/v1/device_registry';
import { UnlockMethod } from '../../../gen/wristpay/common/v1/common';
import { Band } from '../../../sim/band';
import { registerBand, signedChallenge } from '../../../sim/wallet';
import { requireServers, TEST_REDIS_URL } from '../../../test/support/servers';
import { expectStatus, uniqueName } from '../../../test/support/services';
import { startTestRegistry, stopTestRegistry, type TestRegistry } from './support/registry';

describe('device-registry against real PostgreSQL, Redis and NATS', () => {
  const prefix = uniqueName();
  let registry: TestRegistry;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    registry = await startTestRegistry(prefix, { MAX_DEVICES_PER_ACCOUNT: '2' });
  });

  afterAll(() => stopTestRegistry(registry));

  async function registered(accountId = uniqueName('acct')) {
    const band = await registerBand(registry.client, accountId);
    return { band, accountId, deviceId: band.deviceId! };
  }

  const signed = (band: Band, purpose: Purpose) => signedChallenge(registry.client, band, purpose === Purpose.CHALLENGE_PURPOSE_PAIRING ? 'PAIRING' : 'SESSION');

  async function paired() {
    const r = await registered();
    await registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId: r.deviceId, accountId: r.accountId, ...(await signed(r.band, Purpose.CHALLENGE_PURPOSE_PAIRING)) });
    return r;
  }

  it('pairs a band, starts a live session and reports it, with one event per step', async () => {
    const { band, deviceId } = await paired();
    const { session } = await registry.client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_BIOMETRIC, ...(await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION)) });
    expect(session!.live).toBe(true);
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(true);
    expect(got.session!.sessionId).toBe(session!.sessionId);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    const mine = (type: string) => registry.events.ofType(type).filter((e) => JSON.stringify(e.event.payload?.value).includes(deviceId));
    await registry.events.waitFor(() => mine('device.registered').length === 1 && mine('device.paired').length === 1 && mine('device.session.started').length === 1, 5_000, 'registry events');
  });

  it('refuses a reused nonce, a wrong signature and a foreign account, changing nothing', async () => {
    const { band, deviceId, accountId } = await registered();
    const good = await signed(band, Purpose.CHALLENGE_PURPOSE_PAIRING);
    await expectStatus(registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId: 'someone-else', ...good }), status.PERMISSION_DENIED, /another account/);
    const other = Band.create();
    other.deviceId = deviceId;
    const c = await registry.client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_PAIRING });
    const forged = other.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await expectStatus(registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId, challengeId: c.challengeId, signature: forged }), status.PERMISSION_DENIED, /signature/);
    // The forged attempt spent its nonce: presenting it again, even correctly signed, is refused.
    const resigned = band.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await expectStatus(registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId, challengeId: c.challengeId, signature: resigned }), status.FAILED_PRECONDITION, /challenge/);
    expect((await registry.client.getDevice({ deviceId })).device!.status).toBe(DeviceStatus.DEVICE_STATUS_PENDING_PAIRING);
  });

  it('rejects malformed keys, duplicate serials and bands over the account limit', async () => {
    const band = Band.create();
    const base = { accountId: uniqueName('acct'), model: 'M', serial: band.serial, ed25519PublicKey: band.ed25519PublicKey, x25519PublicKey: band.x25519PublicKey };
    await expectStatus(registry.client.registerDevice({ ...base, idempotencyKey: randomUUID(), ed25519PublicKey: Buffer.alloc(31) }), status.INVALID_ARGUMENT, /32 bytes/);
    // An account id the ledger and risk could not take (spaces, braces, colons) would make every payment of the band fail later.
    for (const accountId of ['acct with space', '{acct}', 'acct:1', ' acct']) {
      await expectStatus(registry.client.registerDevice({ ...base, accountId, idempotencyKey: randomUUID() }), status.INVALID_ARGUMENT, /account_id/);
    }
    await registry.client.registerDevice({ ...base, idempotencyKey: randomUUID() });
    await expectStatus(registry.client.registerDevice({ ...base, idempotencyKey: randomUUID() }), status.ALREADY_EXISTS, /serial/);
    await registry.client.registerDevice({ ...base, serial: `${band.serial}-2`, idempotencyKey: randomUUID() });
    await expectStatus(registry.client.registerDevice({ ...base, serial: `${band.serial}-3`, idempotencyKey: randomUUID() }), status.FAILED_PRECONDITION, /limit is 2/);
  });

  it('answers a retried RegisterDevice with the first answer and refuses the key for another request', async () => {
    const band = Band.create();
    const req = { idempotencyKey: randomUUID(), accountId: uniqueName('acct'), model: 'M', serial: band.serial, ed25519PublicKey: band.ed25519PublicKey, x25519PublicKey: band.x25519PublicKey };
    const [a, b] = await Promise.all([registry.client.registerDevice(req), registry.client.registerDevice(req)]);
    expect(a.device!.deviceId).toBe(b.device!.deviceId);
    await expectStatus(registry.client.registerDevice({ ...req, model: 'other' }), status.ALREADY_EXISTS, /idempotency key/);
  });

  it('reporting a band lost ends its session at once and forbids it from coming back', async () => {
    const { band, deviceId } = await paired();
    await registry.client.startSession({ idempotencyKey: randomUUID(), deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_PHONE_PIN, ...(await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION)) });
    await registry.client.reportLost({ idempotencyKey: randomUUID(), deviceId });
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(false);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_LOST);
    await expectStatus(registry.client.resumeDevice({ idempotencyKey: randomUUID(), deviceId }), status.FAILED_PRECONDITION, /LOST/);
    await expectStatus(registry.client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_SESSION }), status.FAILED_PRECONDITION);
  });

  it('pages through an account’s devices', async () => {
    const accountId = uniqueName('acct');
    await registered(accountId);
    await registered(accountId);
    const first = await registry.client.listDevices({ accountId, pageSize: 1, pageToken: '' });
    expect(first.devices).toHaveLength(1);
    const second = await registry.client.listDevices({ accountId, pageSize: 1, pageToken: first.nextPageToken });
    expect(second.devices).toHaveLength(1);
    expect(second.devices[0]!.deviceId).not.toBe(first.devices[0]!.deviceId);
    expect(second.nextPageToken).toBe('');
    await expectStatus(registry.client.listDevices({ accountId, pageSize: 1, pageToken: 'garbage' }), status.INVALID_ARGUMENT);
  });

  // ---- live sessions ----

  const startSession = async (band: Band, deviceId: string, challenge?: { challengeId: string; signature: Buffer }, idempotencyKey = randomUUID()) =>
    registry.client.startSession({ idempotencyKey, deviceId, unlockMethod: UnlockMethod.UNLOCK_METHOD_PHONE_PIN, ...(challenge ?? (await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION))) });

  /** This device's events of one type, as JetStream delivered them. */
  const eventsOf = (deviceId: string, type: string) => registry.events.ofType(type).filter((e) => (e.event.payload?.value as { deviceId?: string } | undefined)?.deviceId === deviceId);

  /** Waits until `expected` counts are reached, then a little longer to catch a duplicate arriving late. */
  async function expectEventCounts(deviceId: string, expected: Record<string, number>): Promise<void> {
    const counts = () => Object.fromEntries(Object.keys(expected).map((t) => [t, eventsOf(deviceId, t).length]));
    await registry.events.waitFor(() => Object.entries(expected).every(([t, n]) => eventsOf(deviceId, t).length >= n), 5_000, `events of ${deviceId}: ${JSON.stringify(expected)}`);
    await new Promise((r) => setTimeout(r, 400));
    expect(counts()).toEqual(expected);
    const ids = registry.events.seen.filter((e) => (e.event.payload?.value as { deviceId?: string } | undefined)?.deviceId === deviceId).map((e) => e.event.eventId);
    expect(new Set(ids).size).toBe(ids.length);
  }

  it('two StartSession calls racing with two fresh challenges both succeed and leave exactly one live session', async () => {
    const { band, deviceId } = await paired();
    const [c1, c2] = [await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION), await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION)];
    const [a, b] = await Promise.all([startSession(band, deviceId, c1), startSession(band, deviceId, c2)]);
    const ids = [a.session!.sessionId, b.session!.sessionId];
    expect(ids[0]).not.toBe(ids[1]);
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(true);
    expect(ids).toContain(got.session!.sessionId);
    // The replaced session is gone: a heartbeat with its id is refused.
    const replaced = ids.find((id) => id !== got.session!.sessionId)!;
    await expectStatus(registry.client.heartbeat({ deviceId, sessionId: replaced }), status.FAILED_PRECONDITION, /no live session/);
    expect((await registry.client.heartbeat({ deviceId, sessionId: got.session!.sessionId })).session!.live).toBe(true);
    // The replaced one is announced as ended, once, with reason REPLACED.
    await expectEventCounts(deviceId, { 'device.session.started': 2, 'device.session.ended': 1 });
    const ended = eventsOf(deviceId, 'device.session.ended')[0]!.event.payload!.value as { sessionId: string; reason: string };
    expect(ended).toMatchObject({ sessionId: replaced, reason: 'REPLACED' });
  });

  it('two StartSession calls racing with the SAME challenge: exactly one succeeds, and its session is the live one', async () => {
    const { band, deviceId } = await paired();
    const challenge = await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION);
    const results = await Promise.allSettled([startSession(band, deviceId, challenge), startSession(band, deviceId, challenge), startSession(band, deviceId, challenge)]);
    const won = results.filter((r): r is PromiseFulfilledResult<Awaited<ReturnType<typeof startSession>>> => r.status === 'fulfilled');
    const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(won).toHaveLength(1);
    for (const r of lost) expect({ code: r.reason.code, details: r.reason.details }).toEqual({ code: status.FAILED_PRECONDITION, details: expect.stringMatching(/challenge/) });
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(true);
    expect(got.session!.sessionId).toBe(won[0]!.value.session!.sessionId);
    await expectEventCounts(deviceId, { 'device.session.started': 1 });
  });

  it('a StartSession retried with the same idempotency key answers the first session and publishes it once', async () => {
    const { band, deviceId } = await paired();
    const challenge = await signed(band, Purpose.CHALLENGE_PURPOSE_SESSION);
    const key = randomUUID();
    const [a, b] = await Promise.all([startSession(band, deviceId, challenge, key), startSession(band, deviceId, challenge, key)]);
    expect(a.session!.sessionId).toBe(b.session!.sessionId);
    expect((await registry.client.getSession({ deviceId })).session!.sessionId).toBe(a.session!.sessionId);
    await expectEventCounts(deviceId, { 'device.session.started': 1 });
  });

  it('refuses a session challenge presented for pairing, and a pairing challenge presented for a session', async () => {
    const { band, deviceId } = await paired();
    const c = await registry.client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_SESSION });
    // The signed message names its purpose, so a pairing signature over a session nonce does not verify.
    const asPairing = band.signChallenge({ purpose: 'PAIRING', challengeId: c.challengeId, nonce: Buffer.from(c.nonce) });
    await expectStatus(startSession(band, deviceId, { challengeId: c.challengeId, signature: asPairing }), status.PERMISSION_DENIED, /signature/);
    await expectStatus(registry.client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_PAIRING }), status.FAILED_PRECONDITION, /ACTIVE band cannot be paired/);
    await expectStatus(startSession(band, deviceId, { challengeId: randomUUID(), signature: Buffer.alloc(64) }), status.FAILED_PRECONDITION, /challenge/);
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);
  });

  it('wrist-off (EndSession) ends the session at once, exactly one session.ended, and the old id cannot heartbeat', async () => {
    const { band, deviceId } = await paired();
    const { session } = await startSession(band, deviceId);
    const [first, second] = await Promise.all([
      registry.client.endSession({ idempotencyKey: randomUUID(), deviceId, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF }),
      registry.client.endSession({ idempotencyKey: randomUUID(), deviceId, reason: SessionEndReason.SESSION_END_REASON_WRIST_OFF }),
    ]);
    expect([first.ended, second.ended].sort()).toEqual([false, true]);
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(false);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    await expectStatus(registry.client.heartbeat({ deviceId, sessionId: session!.sessionId }), status.FAILED_PRECONDITION, /no live session/);
    await expectEventCounts(deviceId, { 'device.session.started': 1, 'device.session.ended': 1 });
    const ended = eventsOf(deviceId, 'device.session.ended')[0]!.event.payload!.value as { sessionId: string; reason: string };
    expect(ended).toMatchObject({ sessionId: session!.sessionId, reason: 'WRIST_OFF' });
  });

  it('Redis losing the session (this test’s keys deleted) means not live: the registry fails closed', async () => {
    const { band, deviceId } = await paired();
    const { session } = await startSession(band, deviceId);
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(true);
    // Never FLUSHALL: other tests share this Redis. Deleting every key under this test's prefix is the flush.
    const redis = new Redis(TEST_REDIS_URL);
    try {
      let cursor = '0';
      let deleted = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length) deleted += await redis.del(...keys);
      } while (cursor !== '0');
      expect(deleted).toBeGreaterThan(0);
    } finally {
      redis.disconnect();
    }
    const got = await registry.client.getSession({ deviceId });
    expect(got.session!.live).toBe(false);
    expect(got.deviceStatus).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    await expectStatus(registry.client.heartbeat({ deviceId, sessionId: session!.sessionId }), status.FAILED_PRECONDITION, /no live session/);
    // The band recovers the ordinary way: a new signed challenge starts a new session.
    expect((await startSession(band, deviceId)).session!.live).toBe(true);
  });

  // ---- lifecycle through the gRPC API ----

  const act = {
    suspend: (deviceId: string, idempotencyKey = randomUUID()) => registry.client.suspendDevice({ idempotencyKey, deviceId, reason: 'support ticket 42' }),
    resume: (deviceId: string, idempotencyKey = randomUUID()) => registry.client.resumeDevice({ idempotencyKey, deviceId }),
    lost: (deviceId: string, idempotencyKey = randomUUID()) => registry.client.reportLost({ idempotencyKey, deviceId }),
    deregister: (deviceId: string, idempotencyKey = randomUUID()) => registry.client.deregister({ idempotencyKey, deviceId }),
  };
  const statusOf = async (deviceId: string) => (await registry.client.getDevice({ deviceId })).device!.status;

  it('walks PENDING_PAIRING → ACTIVE ⇄ SUSPENDED → LOST, ending the session on suspend, one event per transition', async () => {
    const { band, deviceId } = await registered();
    expect(await statusOf(deviceId)).toBe(DeviceStatus.DEVICE_STATUS_PENDING_PAIRING);
    await registry.client.pairDevice({ idempotencyKey: randomUUID(), deviceId, accountId: (await registry.client.getDevice({ deviceId })).device!.accountId, ...(await signed(band, Purpose.CHALLENGE_PURPOSE_PAIRING)) });
    expect(await statusOf(deviceId)).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    await startSession(band, deviceId);

    const suspended = await act.suspend(deviceId);
    expect(suspended.device!.status).toBe(DeviceStatus.DEVICE_STATUS_SUSPENDED);
    const got = await registry.client.getSession({ deviceId });
    expect({ live: got.session!.live, status: got.deviceStatus }).toEqual({ live: false, status: DeviceStatus.DEVICE_STATUS_SUSPENDED });
    await expectStatus(registry.client.createChallenge({ deviceId, purpose: Purpose.CHALLENGE_PURPOSE_SESSION }), status.FAILED_PRECONDITION, /SUSPENDED band cannot start a session/);

    expect((await act.resume(deviceId)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_ACTIVE);
    // Resuming does not bring the old session back: the wearer unlocks again.
    expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);
    await startSession(band, deviceId);
    await act.suspend(deviceId);
    const lostKey = randomUUID();
    expect((await act.lost(deviceId, lostKey)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_LOST);
    // A retried ReportLost answers the first result (not "a LOST device cannot be reported lost") and publishes nothing more.
    expect((await act.lost(deviceId, lostKey)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_LOST);

    await expectEventCounts(deviceId, {
      'device.registered': 1,
      'device.paired': 1,
      'device.suspended': 2,
      'device.resumed': 1,
      'device.lost': 1,
      'device.deregistered': 0,
      'device.session.started': 2,
      'device.session.ended': 2,
    });
    const transitions = registry.events.seen
      .filter((e) => e.event.payload?.$case === 'device' && e.event.payload.value.deviceId === deviceId)
      .map((e) => {
        const v = e.event.payload!.value as { previousStatus: string; status: string };
        return `${v.previousStatus || '-'}→${v.status}`;
      });
    expect(transitions).toEqual(['-→PENDING_PAIRING', 'PENDING_PAIRING→ACTIVE', 'ACTIVE→SUSPENDED', 'SUSPENDED→ACTIVE', 'ACTIVE→SUSPENDED', 'SUSPENDED→LOST']);
    expect(eventsOf(deviceId, 'device.suspended')[0]!.event.payload!.value).toMatchObject({ reason: 'support ticket 42' });
    expect(eventsOf(deviceId, 'device.session.ended').map((e) => (e.event.payload!.value as { reason: string }).reason)).toEqual(['DEVICE_SUSPENDED', 'DEVICE_SUSPENDED']);
  });

  it('ACTIVE → LOST, ACTIVE → DEREGISTERED and SUSPENDED → DEREGISTERED, each killing the live session with its reason', async () => {
    const lostBand = await paired();
    await startSession(lostBand.band, lostBand.deviceId);
    await act.lost(lostBand.deviceId);
    const activeGone = await paired();
    await startSession(activeGone.band, activeGone.deviceId);
    expect((await act.deregister(activeGone.deviceId)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_DEREGISTERED);
    const suspendedGone = await paired();
    await act.suspend(suspendedGone.deviceId);
    expect((await act.deregister(suspendedGone.deviceId)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_DEREGISTERED);
    for (const { deviceId } of [lostBand, activeGone, suspendedGone]) expect((await registry.client.getSession({ deviceId })).session!.live).toBe(false);

    await expectEventCounts(lostBand.deviceId, { 'device.lost': 1, 'device.session.ended': 1 });
    expect(eventsOf(lostBand.deviceId, 'device.session.ended')[0]!.event.payload!.value).toMatchObject({ reason: 'DEVICE_LOST' });
    await expectEventCounts(activeGone.deviceId, { 'device.deregistered': 1, 'device.session.ended': 1 });
    expect(eventsOf(activeGone.deviceId, 'device.session.ended')[0]!.event.payload!.value).toMatchObject({ reason: 'DEVICE_DEREGISTERED' });
    await expectEventCounts(suspendedGone.deviceId, { 'device.suspended': 1, 'device.deregistered': 1, 'device.session.ended': 0 });
  });

  it('an abandoned registration (PENDING_PAIRING) can be deregistered, which frees its slot under the account limit', async () => {
    const accountId = uniqueName('acct');
    const abandoned = await registered(accountId);
    await registered(accountId);
    const third = Band.create();
    const registerThird = () =>
      registry.client.registerDevice({ idempotencyKey: randomUUID(), accountId, model: 'M', serial: third.serial, ed25519PublicKey: third.ed25519PublicKey, x25519PublicKey: third.x25519PublicKey });
    await expectStatus(registerThird(), status.FAILED_PRECONDITION, /limit is 2/);

    const key = randomUUID();
    const gone = await act.deregister(abandoned.deviceId, key);
    expect(gone.device).toMatchObject({ deviceId: abandoned.deviceId, status: DeviceStatus.DEVICE_STATUS_DEREGISTERED, pairedAt: undefined });
    // A retry answers the first result; another Deregister is refused; the band can no longer be paired.
    expect((await act.deregister(abandoned.deviceId, key)).device!.status).toBe(DeviceStatus.DEVICE_STATUS_DEREGISTERED);
    await expectStatus(act.deregister(abandoned.deviceId), status.FAILED_PRECONDITION, /DEREGISTERED device cannot be deregistered/);
    await expectStatus(registry.client.createChallenge({ deviceId: abandoned.deviceId, purpose: Purpose.CHALLENGE_PURPOSE_PAIRING }), status.FAILED_PRECONDITION, /DEREGISTERED band cannot be paired/);

    const { device } = await registerThird();
    expect(device!.status).toBe(DeviceStatus.DEVICE_STATUS_PENDING_PAIRING);
    await expectStatus(registry.client.registerDevice({ idempotencyKey: randomUUID(), accountId, model: 'M', serial: `${third.serial}-4`, ed25519PublicKey: third.ed25519PublicKey, x25519PublicKey: third.x25519PublicKey }), status.FAILED_PRECONDITION, /limit is 2/);

    await expectEventCounts(abandoned.deviceId, { 'device.registered': 1, 'device.paired': 0, 'device.deregistered': 1, 'device.session.ended': 0 });
    expect(eventsOf(abandoned.deviceId, 'device.deregistered')[0]!.event.payload!.value).toMatchObject({ status: 'DEREGISTERED', previousStatus: 'PENDING_PAIRING', accountId });
  });

  it('refuses every forbidden transition with FAILED_PRECONDITION, changing nothing and publishing nothing', async () => {
    const pending = await registered();
    const active = await paired();
    const suspended = await paired();
    await act.suspend(suspended.deviceId);
    const lost = await paired();
    await startSession(lost.band, lost.deviceId);
    await act.lost(lost.deviceId);
    const gone = await paired();
    await act.deregister(gone.deviceId);
    const before = new Map<string, { status: DeviceStatus; updatedAt: Date | undefined }>();
    for (const { deviceId } of [pending, active, suspended, lost, gone]) {
      const { device } = await registry.client.getDevice({ deviceId });
      before.set(deviceId, { status: device!.status, updatedAt: device!.updatedAt });
    }
    await expectEventCounts(gone.deviceId, { 'device.registered': 1, 'device.paired': 1, 'device.deregistered': 1 });
    const eventsBefore = registry.events.seen.length;

    const forbidden: Array<[typeof pending, keyof typeof act, RegExp]> = [
      [pending, 'suspend', /PENDING_PAIRING device cannot be suspended/],
      [pending, 'resume', /PENDING_PAIRING device cannot be resumed/],
      [pending, 'lost', /PENDING_PAIRING device cannot be reported lost/],
      [active, 'resume', /ACTIVE device cannot be resumed/],
      [suspended, 'suspend', /SUSPENDED device cannot be suspended/],
      [lost, 'resume', /LOST device cannot be resumed/],
      [lost, 'suspend', /LOST device cannot be suspended/],
      [lost, 'lost', /LOST device cannot be reported lost/],
      [lost, 'deregister', /LOST device cannot be deregistered/],
      [gone, 'resume', /DEREGISTERED device cannot be resumed/],
      [gone, 'suspend', /DEREGISTERED device cannot be suspended/],
      [gone, 'lost', /DEREGISTERED device cannot be reported lost/],
      [gone, 'deregister', /DEREGISTERED device cannot be deregistered/],
    ];
    for (const [device, action, message] of forbidden) await expectStatus(act[action](device.deviceId), status.FAILED_PRECONDITION, message);
    // Nor can a LOST or DEREGISTERED band be paired again or unlock a session.
    for (const { deviceId } of [lost, gone]) {
      for (const purpose of [Purpose.CHALLENGE_PURPOSE_PAIRING, Purpose.CHALLENGE_PURPOSE_SESSION]) {
        await expectStatus(registry.client.createChallenge({ deviceId, purpose }), status.FAILED_PRECONDITION, /cannot be paired|cannot start a session/);
      }
    }
    await expectStatus(act.lost(randomUUID()), status.NOT_FOUND, /no device/);
    await expectStatus(act.suspend('not-a-uuid'), status.INVALID_ARGUMENT, /device_id/);

    for (const { deviceId } of [pending, active, suspended, lost, gone]) {
      const { device } = await registry.client.getDevice({ deviceId });
      expect({ status: device!.status, updatedAt: device!.updatedAt }).toEqual(before.get(deviceId));
    }
    await new Promise((r) => setTimeout(r, 500));
    expect(registry.events.seen.slice(eventsBefore).filter((e) => [pending, active, suspended, lost, gone].some((d) => JSON.stringify(e.event.payload?.value ?? {}).includes(d.deviceId)))).toEqual([]);
  });

  // ---- payment step-up: VerifyDeviceSignature ----

  /** A step-up challenge as the gateway issues one (its id and nonce, not the registry's). */
  const paymentChallenge = (nonceBytes = 32) => ({ challengeId: randomUUID(), nonce: randomBytes(nonceBytes) });
  const verify = (deviceId: string, challenge: { challengeId: string; nonce: Buffer }, signature: Buffer, purpose = Purpose.CHALLENGE_PURPOSE_PAYMENT) =>
    registry.client.verifyDeviceSignature({ deviceId, purpose, ...challenge, signature });
  const signedForPayment = (band: Band, challenge: { challengeId: string; nonce: Buffer }) => band.signChallenge({ purpose: 'PAYMENT', ...challenge });

  it('verifies the band’s signature over a PAYMENT challenge (ACTIVE, with its account); another band’s, or the band’s over the same challenge as SESSION, is not valid', async () => {
    const { band, deviceId, accountId } = await paired();
    const challenge = paymentChallenge();
    expect(await verify(deviceId, challenge, signedForPayment(band, challenge))).toEqual({ valid: true, deviceStatus: DeviceStatus.DEVICE_STATUS_ACTIVE, accountId });
    // The nonce may be 16 to 64 bytes.
    for (const n of [16, 64]) {
      const c = paymentChallenge(n);
      expect((await verify(deviceId, c, signedForPayment(band, c))).valid).toBe(true);
    }

    const other = Band.create();
    other.deviceId = deviceId;
    const notValid = { valid: false, deviceStatus: DeviceStatus.DEVICE_STATUS_ACTIVE, accountId };
    expect(await verify(deviceId, challenge, signedForPayment(other, challenge))).toEqual(notValid);
    // The purpose is in what is signed: a session signature over the same id and nonce does not confirm a payment.
    expect(await verify(deviceId, challenge, band.signChallenge({ purpose: 'SESSION', ...challenge }))).toEqual(notValid);
    // Nor does the signature of another challenge, or of this one for another band.
    expect(await verify(deviceId, paymentChallenge(), signedForPayment(band, challenge))).toEqual(notValid);
    const { deviceId: otherDevice } = await paired();
    expect((await verify(otherDevice, challenge, signedForPayment(band, challenge))).valid).toBe(false);
  });

  it('a band reported lost still signs validly, but the answer says LOST (so it cannot confirm a payment)', async () => {
    const { band, deviceId, accountId } = await paired();
    await act.lost(deviceId);
    const challenge = paymentChallenge();
    expect(await verify(deviceId, challenge, signedForPayment(band, challenge))).toEqual({ valid: true, deviceStatus: DeviceStatus.DEVICE_STATUS_LOST, accountId });
  });

  it('refuses another purpose and malformed ids, nonces and signatures with INVALID_ARGUMENT, an unknown band with NOT_FOUND', async () => {
    const { band, deviceId } = await paired();
    const challenge = paymentChallenge();
    const signature = signedForPayment(band, challenge);
    for (const purpose of [Purpose.CHALLENGE_PURPOSE_SESSION, Purpose.CHALLENGE_PURPOSE_PAIRING, Purpose.CHALLENGE_PURPOSE_UNSPECIFIED]) {
      await expectStatus(verify(deviceId, challenge, signature, purpose), status.INVALID_ARGUMENT, /^purpose must be PAYMENT/);
    }
    const bad: Array<[string, Parameters<typeof verify>, RegExp]> = [
      ['15-byte nonce', [deviceId, { ...challenge, nonce: randomBytes(15) }, signature], /^nonce must be 16-64 bytes/],
      ['65-byte nonce', [deviceId, { ...challenge, nonce: randomBytes(65) }, signature], /^nonce must be 16-64 bytes/],
      ['no nonce', [deviceId, { ...challenge, nonce: Buffer.alloc(0) }, signature], /^nonce must be 16-64 bytes/],
      ['63-byte signature', [deviceId, challenge, signature.subarray(0, 63)], /^signature must be 64 bytes/],
      ['65-byte signature', [deviceId, challenge, Buffer.concat([signature, Buffer.alloc(1)])], /^signature must be 64 bytes/],
      ['no signature', [deviceId, challenge, Buffer.alloc(0)], /^signature must be 64 bytes/],
      ['device id not a UUID', ['not-a-uuid', challenge, signature], /^device_id must be a UUID/],
      ['no device id', ['', challenge, signature], /^device_id must be a UUID/],
      ['challenge id not a UUID', [deviceId, { ...challenge, challengeId: 'ch_1' }, signature], /^challenge_id must be a UUID/],
      ['no challenge id', [deviceId, { ...challenge, challengeId: '' }, signature], /^challenge_id must be a UUID/],
    ];
    for (const [what, args, message] of bad) {
      await expectStatus(verify(...args), status.INVALID_ARGUMENT, message).catch((err) => {
        throw new Error(`${what}: ${(err as Error).message}`);
      });
    }
    await expectStatus(verify(randomUUID(), challenge, signature), status.NOT_FOUND, /^no device /);
  });
});
