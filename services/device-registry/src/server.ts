import { trace } from '@opentelemetry/api';
import {
  ChallengePurpose,
  CreateChallengeResponse,
  DeregisterRequest,
  DeregisterResponse,
  DeviceRegistryServiceService,
  DeviceStatus,
  EndSessionResponse,
  PairDeviceRequest,
  PairDeviceResponse,
  RegisterDeviceRequest,
  RegisterDeviceResponse,
  ReportLostRequest,
  ReportLostResponse,
  ResumeDeviceRequest,
  ResumeDeviceResponse,
  StartSessionRequest,
  StartSessionResponse,
  SuspendDeviceRequest,
  SuspendDeviceResponse,
  sessionEndReasonToJSON,
  type Device,
  type DeviceRegistryServiceServer,
  type Session,
} from '../../../gen/wristpay/device_registry/v1/device_registry';
import { UnlockMethod } from '../../../gen/wristpay/common/v1/common';
import type { Db } from '../../../platform/db';
import { FailedPrecondition, InvalidArgument, PermissionDenied, Unavailable } from '../../../platform/errors';
import type { BackgroundPublisher } from '../../../platform/background-publisher';
import { newEvent } from '../../../platform/events';
import { once } from '../../../platform/idempotency';
import type { Logger } from '../../../platform/log';
import type { OutboxRelay } from '../../../platform/outbox';
import { register, type Handlers } from '../../../platform/grpc/server';
import { ATTR } from '../../../platform/telemetry/attributes';
import { challengeMessage, ed25519PublicKeyFromRaw, MalformedKey, verifyChallengeSignature, x25519PublicKeyFromRaw } from '../../../platform/payment-crypto';
import type { Config } from './config';
import { canPay, type DeviceState } from './domain/lifecycle';
import type { LifecycleAction } from './domain/lifecycle';
import { SessionStore, type ChallengePurpose as Purpose, type LiveSession } from './sessions';
import { DeviceStore, type DeviceRow } from './store';
import { isUuid, requireId, requireText, requireUuid } from '../../../platform/validate';
import { deviceRegistryPolicy } from './policy';

export interface RegistryDeps {
  config: Config;
  db: Db;
  devices: DeviceStore;
  sessions: SessionStore;
  /**
   * Where session events go: off the answer's path (with NATS down a publish waits out its
   * timeout, and wrist on/off must not), kept in memory until NATS acknowledges them. They are
   * hints for risk, so not in the outbox: one lost in a crash costs a feature, not money.
   */
  sessionEvents: BackgroundPublisher;
  relay: OutboxRelay;
  log: Logger;
}

const SOURCE = 'device-registry';

/** Why a lifecycle change ended the band's live session, as device.session.ended says it. */
const END_REASON: Record<LifecycleAction, string> = {
  pair: '',
  resume: '',
  suspend: 'DEVICE_SUSPENDED',
  report_lost: 'DEVICE_LOST',
  deregister: 'DEVICE_DEREGISTERED',
};

const statusOf = (state: DeviceState): DeviceStatus => DeviceStatus[`DEVICE_STATUS_${state}`];

export function toDevice(row: DeviceRow): Device {
  return {
    deviceId: row.device_id,
    accountId: row.account_id,
    model: row.model,
    serial: row.serial,
    status: statusOf(row.status),
    ed25519PublicKey: Buffer.from(row.ed25519_public_key),
    x25519PublicKey: Buffer.from(row.x25519_public_key),
    createdAt: row.created_at,
    pairedAt: row.paired_at ?? undefined,
    updatedAt: row.updated_at,
    tokensProvisioned: row.tokens_provisioned,
    lastTokenProvisionedAt: row.last_token_provisioned_at ?? undefined,
  };
}

function toSession(deviceId: string, live: LiveSession | undefined): Session {
  if (!live) return { deviceId, live: false, sessionId: '', unlockMethod: UnlockMethod.UNLOCK_METHOD_UNSPECIFIED, startedAt: undefined, lastHeartbeatAt: undefined, expiresAt: undefined };
  return { deviceId, live: true, ...live };
}

const purposeOf = (p: ChallengePurpose): Purpose => {
  if (p === ChallengePurpose.CHALLENGE_PURPOSE_PAIRING) return 'PAIRING';
  if (p === ChallengePurpose.CHALLENGE_PURPOSE_SESSION) return 'SESSION';
  throw new InvalidArgument('purpose must be PAIRING or SESSION');
};

export class BadSignature extends PermissionDenied {
  constructor() {
    super('challenge signature does not verify with the band key');
  }
}

export function deviceRegistryService(deps: RegistryDeps) {
  const { db, devices, sessions, config, relay, sessionEvents, log } = deps;

  /** Checks the band signed this registry's nonce; the nonce is spent either way. */
  async function proveBand(device: DeviceRow, challengeId: string, signature: Uint8Array, purpose: Purpose): Promise<void> {
    const nonce = await sessions.consumeChallenge(device.device_id, requireUuid(challengeId, 'challenge_id'), purpose);
    const message = challengeMessage({ purpose, deviceId: device.device_id, challengeId: challengeId.toLowerCase(), nonce });
    if (!verifyChallengeSignature(Buffer.from(device.ed25519_public_key), message, Buffer.from(signature))) throw new BadSignature();
  }

  async function lifecycle<Req extends { idempotencyKey: string; deviceId: string }, Res>(
    scope: string,
    request: Req,
    codecs: { req: { encode(v: Req): { finish(): Uint8Array }; decode(b: Uint8Array): Req }; res: { encode(v: Res): { finish(): Uint8Array }; decode(b: Uint8Array): Res } },
    action: LifecycleAction,
    wrap: (device: Device) => Res,
    reason = '',
  ): Promise<Res> {
    const deviceId = requireUuid(request.deviceId, 'device_id');
    const result = await once(db, scope, request.idempotencyKey, { codec: codecs.req, value: request }, codecs.res, async (q) =>
      wrap(toDevice(await devices.apply(q, deviceId, action, reason))),
    );
    relay.kick();
    if (action !== 'resume') {
      // A band that may no longer pay must not keep a live session: cut it right after commit.
      // (GetSession also answers not live for a non-ACTIVE band, so a failure here still fails closed.)
      const ended = await sessions.end(deviceId).catch((err) => {
        log.warn({ err: err.message, deviceId }, 'could not end session after lifecycle change');
        return undefined;
      });
      if (ended) sessionEnded(deviceId, ended, END_REASON[action]);
    }
    return result;
  }

  function sessionEnded(deviceId: string, live: LiveSession, reason: string): void {
    sessionEvents.publish(newEvent('device.session.ended', SOURCE, { $case: 'session', value: { deviceId, sessionId: live.sessionId, unlockMethod: live.unlockMethod, reason } }, `${live.sessionId}.ended`));
  }


  const handlers: Handlers<DeviceRegistryServiceServer> = {
    async registerDevice(req) {
      const accountId = requireId(req.accountId, 'account_id');
      const model = requireText(req.model, 'model', 64);
      const serial = requireText(req.serial, 'serial', 64);
      try {
        ed25519PublicKeyFromRaw(Buffer.from(req.ed25519PublicKey));
        x25519PublicKeyFromRaw(Buffer.from(req.x25519PublicKey));
      } catch (err) {
        if (err instanceof MalformedKey) throw new InvalidArgument(err.message);
        throw err;
      }
      const res = await once(db, 'RegisterDevice', req.idempotencyKey, { codec: RegisterDeviceRequest, value: req }, RegisterDeviceResponse, async (q) => ({
        device: toDevice(
          await devices.register(q, { accountId, model, serial, ed25519: Buffer.from(req.ed25519PublicKey), x25519: Buffer.from(req.x25519PublicKey) }, config.MAX_DEVICES_PER_ACCOUNT),
        ),
      }));
      relay.kick();
      return res;
    },

    async createChallenge(req) {
      const purpose = purposeOf(req.purpose);
      const device = await devices.get(db, requireUuid(req.deviceId, 'device_id'));
      if (purpose === 'PAIRING' && device.status !== 'PENDING_PAIRING') throw new FailedPrecondition(`a ${device.status} band cannot be paired`);
      if (purpose === 'SESSION' && !canPay(device.status)) throw new FailedPrecondition(`a ${device.status} band cannot start a session`);
      const c = await sessions.createChallenge(device.device_id, purpose);
      return CreateChallengeResponse.fromPartial(c);
    },

    async pairDevice(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      const accountId = requireId(req.accountId, 'account_id');
      const res = await once(db, 'PairDevice', req.idempotencyKey, { codec: PairDeviceRequest, value: req }, PairDeviceResponse, async (q) => {
        const device = await devices.get(q, deviceId, true);
        if (device.account_id !== accountId) throw new PermissionDenied('this band belongs to another account');
        await proveBand(device, req.challengeId, req.signature, 'PAIRING');
        return { device: toDevice(await devices.apply(q, deviceId, 'pair')) };
      });
      relay.kick();
      return res;
    },

    async startSession(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      if (req.unlockMethod !== UnlockMethod.UNLOCK_METHOD_PHONE_PIN && req.unlockMethod !== UnlockMethod.UNLOCK_METHOD_BIOMETRIC) {
        throw new InvalidArgument('unlock_method must be PHONE_PIN or BIOMETRIC');
      }
      // Set only when this call (not an idempotent replay) replaced a live session.
      let replaced: LiveSession | undefined;
      const res = await once(db, 'StartSession', req.idempotencyKey, { codec: StartSessionRequest, value: req }, StartSessionResponse, async (q) => {
        // The row lock orders this against ReportLost: a band being reported lost cannot slip a session in.
        const device = await devices.get(q, deviceId, true);
        if (!canPay(device.status)) throw new FailedPrecondition(`a ${device.status} band cannot start a session`);
        await proveBand(device, req.challengeId, req.signature, 'SESSION');
        const started = await sessions.start(deviceId, req.unlockMethod);
        replaced = started.replaced;
        return { session: toSession(deviceId, started.session) };
      });
      if (replaced) sessionEnded(deviceId, replaced, 'REPLACED');
      sessionEvents.publish(newEvent('device.session.started', SOURCE, { $case: 'session', value: { deviceId, sessionId: res.session!.sessionId, unlockMethod: req.unlockMethod, reason: '' } }, res.session!.sessionId));
      return res;
    },

    async heartbeat(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      return { session: toSession(deviceId, await sessions.heartbeat(deviceId, requireUuid(req.sessionId, 'session_id'))) };
    },

    async endSession(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      const ended = await sessions.end(deviceId);
      if (ended) sessionEnded(deviceId, ended, sessionEndReasonToJSON(req.reason).replace('SESSION_END_REASON_', ''));
      return EndSessionResponse.fromPartial({ ended: Boolean(ended) });
    },

    async getSession(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      const device = await devices.get(db, deviceId);
      let live: LiveSession | undefined;
      try {
        live = canPay(device.status) ? await sessions.get(deviceId) : undefined;
      } catch (err) {
        if (!(err instanceof Unavailable)) throw err;
        log.warn({ deviceId }, 'session store down: answering not live');
      }
      trace.getActiveSpan()?.setAttributes({ [ATTR.deviceId]: deviceId, [ATTR.sessionLive]: Boolean(live) });
      return { session: toSession(deviceId, live), deviceStatus: statusOf(device.status), deviceCreatedAt: device.created_at, accountId: device.account_id };
    },

    async getDevice(req) {
      return { device: toDevice(await devices.get(db, requireUuid(req.deviceId, 'device_id'))) };
    },

    async listDevices(req) {
      const accountId = requireId(req.accountId, 'account_id');
      const pageSize = req.pageSize === 0 ? 50 : req.pageSize;
      if (pageSize < 1 || pageSize > 200) throw new InvalidArgument('page_size must be between 1 and 200');
      let after: string | undefined;
      if (req.pageToken) {
        after = Buffer.from(req.pageToken, 'base64url').toString();
        if (!isUuid(after)) throw new InvalidArgument('page_token is not one this service issued');
      }
      const rows = await devices.list(accountId, pageSize + 1, after);
      const page = rows.slice(0, pageSize);
      const last = page[page.length - 1];
      const nextPageToken = rows.length > pageSize && last ? Buffer.from(last.device_id).toString('base64url') : '';
      return { devices: page.map(toDevice), nextPageToken };
    },

    /**
     * The band's signature over another service's challenge (the gateway's payment step-up).
     * The issuer keeps the challenge single-use; this only says whether the registered device
     * key signed it, and what state the band is in now, so a band reported lost cannot confirm.
     */
    async verifyDeviceSignature(req) {
      const deviceId = requireUuid(req.deviceId, 'device_id');
      if (req.purpose !== ChallengePurpose.CHALLENGE_PURPOSE_PAYMENT) throw new InvalidArgument('purpose must be PAYMENT (pairing and session challenges are answered through PairDevice and StartSession)');
      const challengeId = requireUuid(req.challengeId, 'challenge_id');
      if (req.nonce.length < 16 || req.nonce.length > 64) throw new InvalidArgument('nonce must be 16-64 bytes');
      if (req.signature.length !== 64) throw new InvalidArgument('signature must be 64 bytes (Ed25519)');
      const device = await devices.get(db, deviceId);
      const message = challengeMessage({ purpose: 'PAYMENT', deviceId, challengeId, nonce: Buffer.from(req.nonce) });
      const valid = verifyChallengeSignature(Buffer.from(device.ed25519_public_key), message, Buffer.from(req.signature));
      trace.getActiveSpan()?.setAttributes({ [ATTR.deviceId]: deviceId });
      return { valid, deviceStatus: statusOf(device.status), accountId: device.account_id };
    },

    suspendDevice: (req) =>
      lifecycle('SuspendDevice', req, { req: SuspendDeviceRequest, res: SuspendDeviceResponse }, 'suspend', (device) => ({ device }), req.reason),
    resumeDevice: (req) => lifecycle('ResumeDevice', req, { req: ResumeDeviceRequest, res: ResumeDeviceResponse }, 'resume', (device) => ({ device })),
    reportLost: (req) => lifecycle('ReportLost', req, { req: ReportLostRequest, res: ReportLostResponse }, 'report_lost', (device) => ({ device })),
    deregister: (req) => lifecycle('Deregister', req, { req: DeregisterRequest, res: DeregisterResponse }, 'deregister', (device) => ({ device })),
  };

  return register<DeviceRegistryServiceServer>({ definition: DeviceRegistryServiceService, handlers, allowedCallers: deviceRegistryPolicy });
}

