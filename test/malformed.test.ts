import { randomUUID } from 'node:crypto';
import { status } from '@grpc/grpc-js';
import fc from 'fast-check';
import { meshDescriptor, type MethodShape } from '../platform/grpc/descriptor';
import { callerAllowed } from '../platform/grpc/server';
import { merchantIdentity } from '../services/gateway/src/merchants';
import { Channel } from '../gen/wristpay/common/v1/common';
import type { Band } from '../sim/band';
import { terminalNonce } from '../sim/terminal';
import { onboardBand, pay, qrCode } from '../sim/wallet';
import { watchEvents } from './support/events';
import { eventually } from './support/eventually';
import { startFullMesh, type FullMesh, type ServiceName } from './support/full-mesh';
import type { MerchantTerminal } from './support/gateway-mesh';
import { MESH_IDENTITIES } from './support/mesh-pki';
import { meshWrites, type WriteSnapshot } from './support/mesh-writes';
import { MESH_POLICIES, serviceNameOf } from './support/policies';
import { rawCaller, type Outcome, type RawCaller } from './support/raw-client';
import { describeRequest, encodeRequest, malformedRequest, plausibleRequest, type RequestContext, type WireField, type WireRequest } from './support/request-arbitraries';
import { requireServers, uniqueName } from './support/servers';

/**
 * "Deny by default, and a precise answer to every malformed request": every rpc of every
 * service in gen/descriptor.binpb gets generated requests as raw protobuf bytes over mTLS,
 * with all six services running in this process on real PostgreSQL, Redis and NATS.
 *
 * 1. Malformed requests from a caller the method admits: INVALID_ARGUMENT, nothing written.
 * 2. Any request from a caller the method does not admit: PERMISSION_DENIED, nothing written.
 * 3. Requests with per-field oddities only: never INTERNAL or UNKNOWN (they may succeed).
 * After each property, every service still answers SERVING.
 *
 * FC_SEED replays a failure (the seed is in every failure message); FC_RUNS scales the runs.
 */
const SEED = Number(process.env.FC_SEED ?? Math.floor(Math.random() * 2 ** 31));
const SCALE = Number(process.env.FC_RUNS ?? 1);
const RUNS = { malformed: Math.ceil(8 * SCALE), refused: Math.ceil(3 * SCALE), plausible: Math.ceil(10 * SCALE) };

const METHODS = meshDescriptor().methods('wristpay.');
const SERVICE_OF: Record<string, ServiceName> = {
  'wristpay.device_registry.v1': 'device-registry',
  'wristpay.tokenization.v1': 'tokenization',
  'wristpay.risk.v1': 'risk',
  'wristpay.settlement.v1': 'settlement',
  'wristpay.gateway.v1': 'gateway',
  'wristpay.alerts.v1': 'alerts',
};
const serviceOf = (m: MethodShape): ServiceName => SERVICE_OF[m.service.slice(0, m.service.lastIndexOf('.'))]!;
const name = (m: MethodShape) => `${m.service.split('.').pop()}/${m.method}`;

/** The identities the method's policy (test/support/policies.ts) lists, `merchant.*` as the onboarded merchant. */
function policyOf(m: MethodShape): readonly string[] {
  const entry = MESH_POLICIES.find((p) => serviceNameOf(p.definition) === m.service);
  const allowed = entry?.policy[m.method[0]!.toLowerCase() + m.method.slice(1)];
  if (!allowed) throw new Error(`no caller policy for ${m.path}`);
  return allowed;
}

// Every failure names the seed that replays it (fast-check also prints its own seed and path).
const seedFor = (m: MethodShape): number => {
  let h = SEED;
  for (const c of m.path) h = (Math.imul(h, 31) + c.charCodeAt(0)) | 0;
  return h;
};

describe('every rpc, every malformed request, every caller', () => {
  let mesh: FullMesh;
  let events: Awaited<ReturnType<typeof watchEvents>>;
  let writes: Awaited<ReturnType<typeof meshWrites>>;
  let callers: Record<ServiceName, RawCaller>;
  let ctx: RequestContext;
  let shop: MerchantTerminal;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    mesh = await startFullMesh();
    events = await watchEvents(mesh.prefix);
    // A merchant the gateway knows (onboarded by the back office), so merchant.* methods are called as a real merchant.
    shop = await mesh.gatewayMesh.merchant();
    ctx = { merchantId: shop.merchantId, known: {} };
    for (const identity of [...MESH_IDENTITIES, merchantIdentity(ctx.merchantId), 'merchant.x', 'intruder']) mesh.pki.issue(identity);
    callers = Object.fromEntries(Object.entries(mesh.ports).map(([service, port]) => [service, rawCaller(port, (identity) => mesh.pki.client(identity))])) as Record<ServiceName, RawCaller>;
    writes = await meshWrites(mesh.databaseUrls, mesh.prefix, () => events.seen.length);
    // The onboarding's events are published and consumed before anything is compared: two
    // snapshots a moment apart agree.
    let last: WriteSnapshot = {};
    await eventually(
      async () => {
        const now = await writes.snapshot();
        const settled = writes.changes(last, now).length === 0;
        last = now;
        return settled;
      },
      20_000,
      'the onboarding to settle',
      300,
    );
  }, 90_000);

  afterAll(async () => {
    for (const c of Object.values(callers ?? {})) c.close();
    await writes?.close();
    await events?.close();
    await mesh?.stop();
  });

  /** Sends `request` as `identity` and describes the exchange for a failure message. */
  async function send(m: MethodShape, identity: string, request: WireRequest, deadlineMs: number): Promise<{ outcome: Outcome; report: (why: string) => Error }> {
    const outcome = await callers[serviceOf(m)].call(m.path, identity, encodeRequest(request), { stream: m.responseStream, deadlineMs });
    const report = (why: string) =>
      new Error(`${why}\n  method: ${m.path}\n  caller: ${identity}\n  status: ${status[outcome.code]} (${outcome.code}): ${outcome.details}\n  request: ${describeRequest(request)}\n  replay: FC_SEED=${SEED}`);
    return { outcome, report };
  }

  /** Every service answers grpc.health.v1 SERVING after a property ran. */
  async function expectAllServing(): Promise<void> {
    const health = Object.fromEntries(await Promise.all(Object.entries(callers).map(async ([service, c]) => [service, await c.health('backoffice')] as const)));
    expect(health).toEqual(Object.fromEntries(Object.keys(callers).map((s) => [s, 'SERVING'])));
  }

  /** Runs `property` and then checks that the mesh is healthy and, with `noWrites`, that nothing was written or published. */
  async function check(m: MethodShape, property: fc.IAsyncProperty<[WireRequest, string]>, numRuns: number, noWrites: boolean): Promise<void> {
    const before = noWrites ? await writes.snapshot() : undefined;
    await fc.assert(property, { numRuns, seed: seedFor(m) });
    await expectAllServing();
    if (before) expect({ method: m.path, written: writes.changes(before, await writes.snapshot()) }).toEqual({ method: m.path, written: [] });
  }

  /**
   * No event reaches the mesh's streams while the enclosing describe runs. Checked again at its
   * end: an event published late (after its method's own check) still counts against it.
   */
  function expectNoEventsPublished(): void {
    let published = 0;
    beforeAll(() => {
      published = events.seen.length;
    });
    afterAll(async () => {
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(events.seen.slice(published).map((e) => e.subject)).toEqual([]);
    });
  }

  const allowedIdentities = (m: MethodShape) => policyOf(m).map((id) => (id === 'merchant.*' ? merchantIdentity(ctx.merchantId) : id));
  /** Identities the method refuses: every mesh identity not on its list, a merchant where merchants are not admitted, and an intruder with a certificate from the mesh's CA. */
  const refusedIdentities = (m: MethodShape) => [...MESH_IDENTITIES, merchantIdentity(ctx.merchantId), 'merchant.x', 'intruder'].filter((id) => !callerAllowed(id, policyOf(m)));

  describe('a malformed request from a caller the method admits is INVALID_ARGUMENT and writes nothing', () => {
    expectNoEventsPublished();

    it.each(METHODS.map((m) => [name(m), m] as const))('%s', async (_name, m) => {
      const property = fc.asyncProperty(malformedRequest(m.request, ctx), fc.constantFrom(...allowedIdentities(m)), async (request, identity) => {
        const { outcome, report } = await send(m, identity, request, 5_000);
        if (outcome.code === status.INTERNAL || outcome.code === status.UNKNOWN) throw report('a malformed request got INTERNAL/UNKNOWN');
        // The platform refuses these before any handler (request-guard.ts, wire-format.ts): no
        // other status is a precise answer to them.
        if (outcome.code !== status.INVALID_ARGUMENT) throw report(`a malformed request (${request.defect}) was not refused as INVALID_ARGUMENT`);
      });
      await check(m, property, RUNS.malformed, true);
    });
  });

  describe('a caller the method does not admit is PERMISSION_DENIED, whatever it sends, and writes nothing', () => {
    expectNoEventsPublished();

    it.each(METHODS.map((m) => [name(m), m] as const))('%s', async (_name, m) => {
      const requests = fc.oneof(plausibleRequest(m.request, ctx), malformedRequest(m.request, ctx));
      const property = fc.asyncProperty(requests, fc.constantFrom(...refusedIdentities(m)), async (request, identity) => {
        const { outcome, report } = await send(m, identity, request, 5_000);
        // The caller check comes before the request is looked at: a malformed request is refused for who sent it.
        if (outcome.code !== status.PERMISSION_DENIED) throw report('a caller not on the policy was not refused as PERMISSION_DENIED');
      });
      await check(m, property, RUNS.refused, true);
    });
  });

  // Last: these may write rows and publish events, which the properties above must not see.
  describe('a request with per-field oddities is never INTERNAL or UNKNOWN', () => {
    let band: Band;

    /**
     * An Authorize carrying the real band's credential for whatever amount the request names
     * (a tap with a valid cryptogram, or the current offline code), so it gets past
     * tokenization to the session, risk and settlement with the request's other oddities.
     */
    function withCredential(request: WireRequest, kind: 'tap' | 'qr'): WireRequest {
      const amount = request.fields.find((f) => f.field === 'amount');
      const inner = amount && 'message' in amount.value ? amount.value.message : [];
      const minor = inner.find((f) => f.field === 'amount_minor');
      const amountMinor = minor && 'varint' in minor.value ? BigInt.asIntN(64, minor.value.varint) : 0n;
      const currency = inner.find((f) => f.field === 'currency');
      const currencyCode = currency && 'text' in currency.value ? currency.value.text : '';
      // The band signs only what a terminal could present: a positive amount in a currency code.
      if (amountMinor <= 0n || !/^[A-Z]{3}$/.test(currencyCode)) return request;
      const text = (field: string, number: number, t: string): WireField => ({ field, number, value: { text: t } });
      const hex = (field: string, number: number, b: Buffer): WireField => ({ field, number, value: { hex: b.toString('hex') } });
      let payload: WireField;
      if (kind === 'tap') {
        const tap = band.tap({ amountMinor, currency: currencyCode, merchantId: ctx.merchantId, terminalNonce: terminalNonce() });
        payload = { field: 'tap', number: 4, value: { message: [text('token_number', 1, tap.tokenNumber), { field: 'atc', number: 2, value: { varint: tap.atc } }, hex('terminal_nonce', 3, tap.terminalNonce), hex('cryptogram', 4, tap.cryptogram)] } };
      } else {
        const qr = qrCode(band);
        payload = { field: 'qr', number: 5, value: { message: [text('token_number', 1, qr.tokenNumber), text('offline_code', 2, qr.offlineCode)] } };
      }
      // Last, so it is the payload the oneof ends up with.
      return { ...request, fields: [...request.fields, payload] };
    }

    beforeAll(async () => {
      // A band with a live session, a token, money, a payment holding some of it and a voucher,
      // so requests can name what exists and reach further into the handlers. Made only now:
      // its holds and sessions expire on their own, which the no-write checks above would see.
      // '+' is in the ids every service admits (platform/validate.ts ID).
      const accountId = `acct+${uniqueName('')}`;
      band = await onboardBand(shop.clients, accountId, 100_000n);
      const token = await shop.clients.tokenization.provisionToken({
        idempotencyKey: randomUUID(),
        deviceId: band.deviceId!,
        accountId,
        fundingSource: { source: { $case: 'walletAccountId', value: accountId } },
        channels: [Channel.CHANNEL_BAND_TAP],
      });
      const { response } = await pay(shop.clients, band, { merchantId: shop.merchantId, amountMinor: 1_000n });
      const code = `FUZZ-${randomUUID().slice(0, 6).toUpperCase()}`;
      await shop.clients.gateway.issueVoucher({ idempotencyKey: randomUUID(), merchantId: shop.merchantId, code, discount: { $case: 'percentOff', value: 10 }, expiresAt: new Date(Date.now() + 3_600_000), maxUses: 5 });
      Object.assign(ctx.known, {
        account_id: [accountId],
        device_id: [band.deviceId!],
        token_id: [token.token!.tokenId],
        token_number: [token.tokenNumber, qrCode(band).tokenNumber],
        payment_id: [response.paymentId],
        hold_id: [response.holdId],
        code: [code],
        voucher_code: [code],
      });
    }, 30_000);

    it.each(METHODS.map((m) => [name(m), m] as const))('%s', async (_name, m) => {
      // Authorize orchestrates four services: it gets more runs, most with a valid tap (an offline
      // code pays once per 30 s step, so most QR payments stop at tokenization as reused).
      const authorize = m.path === '/wristpay.gateway.v1.GatewayService/Authorize';
      const credential = authorize
        ? fc.oneof({ weight: 6, arbitrary: fc.constant('tap' as const) }, { weight: 1, arbitrary: fc.constant('qr' as const) }, { weight: 2, arbitrary: fc.constant('as generated' as const) })
        : fc.constant('as generated' as const);
      const requests = fc.tuple(plausibleRequest(m.request, ctx), credential).map(([request, kind]) => (kind === 'as generated' ? request : withCredential(request, kind)));
      const property = fc.asyncProperty(requests, fc.constantFrom(...allowedIdentities(m)), async (request, identity) => {
        // A stream that opens (a valid account's alert feed) stays open: 300 ms is enough to see how it starts.
        const { outcome, report } = await send(m, identity, request, m.responseStream ? 300 : 5_000);
        if (outcome.code === status.INTERNAL || outcome.code === status.UNKNOWN) throw report('a request got INTERNAL/UNKNOWN');
      });
      await check(m, property, authorize ? RUNS.plausible * 8 : RUNS.plausible, false);
    });
  });

  it('covers every rpc of the six services', () => {
    expect(METHODS.length).toBeGreaterThan(50);
    expect(new Set(METHODS.map(serviceOf))).toEqual(new Set(['device-registry', 'tokenization', 'risk', 'settlement', 'gateway', 'alerts']));
  });
});
