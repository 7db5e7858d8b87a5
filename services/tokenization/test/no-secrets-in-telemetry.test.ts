import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes, randomUUID } from 'node:crypto';
import { Server, status, type Metadata, type ServiceError, type UntypedServiceImplementation } from '@grpc/grpc-js';
import {
  context,
  propagation,
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  trace,
  type Context,
  type ContextManager,
  type TextMapGetter,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { Channel } from '../../../gen/wristpay/common/v1/common';
import { TokenizationServiceClient, VerifyResult, type VerifyPaymentRequest } from '../../../gen/wristpay/tokenization/v1/tokenization';
import { encodeEvent } from '../../../platform/events';
import { createLogger } from '../../../platform/log';
import { deriveTokenKey } from '../../../platform/payment-crypto';
import { ATTR } from '../../../platform/telemetry/attributes';
import type { Band } from '../../../sim/band';
import { requireServers } from '../../../test/support/servers';
import { expectStatus, testClient, testEnv, uniqueName } from '../../../test/support/services';
import { startTokenization } from '../src/app';
import { readConfig } from '../src/config';
import { bandWithToken } from './support/bands';
import { mtlsReplica, type MtlsReplica } from './support/tls';
import { startVaultDeps, stopVaultDeps, type VaultDeps } from './support/vault-deps';

/*
 * Issue 4: a payment flow with known card numbers, capturing every log line, every exported span
 * and every published event (and the error messages callers get), finds none of those numbers, nor
 * a KEK, the master key, a token key or a cryptogram.
 *
 * Spans: the services run with the real OpenTelemetry SDK in production (platform/telemetry/
 * register.ts, loaded with --require). Here a BasicTracerProvider with an InMemorySpanExporter is
 * the global tracer provider for this file, so every span the service code makes through
 * @opentelemetry/api (NATS publish/consume spans in the outbox relay and the device-event
 * consumer, attributes the handlers set on the active span) is captured.
 *
 * The gRPC, pg and ioredis auto-instrumentations do NOT run inside jest: they patch modules
 * through require hooks (require-in-the-middle), which jest's own module loader bypasses. So the
 * SERVER span the gRPC instrumentation would open around each call is emulated below by wrapping
 * grpc-js Server#addService (span name, kind, rpc.* attributes and, on error, the status message
 * carrying the error details, as @opentelemetry/instrumentation-grpc records them); without it the
 * handlers' attributes would land on no span at all. pg spans (db.statement is the SQL text with
 * $n placeholders, never the values) and gRPC client spans are not covered by this test.
 */

/**
 * Context manager on AsyncLocalStorage, so the active span follows the handlers' awaits.
 * (@opentelemetry/context-async-hooks has the same thing but is only a transitive dependency.)
 */
class AsyncLocalContextManager implements ContextManager {
  private readonly storage = new AsyncLocalStorage<Context>();
  active(): Context {
    return this.storage.getStore() ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: Context, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    return this.storage.run(ctx, () => fn.call(thisArg, ...args));
  }
  bind<T>(ctx: Context, target: T): T {
    if (typeof target !== 'function') return target;
    const run = (thisArg: unknown, args: unknown[]) => this.with(ctx, () => (target as (...a: unknown[]) => unknown).apply(thisArg, args));
    return function (this: unknown, ...args: unknown[]) {
      return run(this, args);
    } as T;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.storage.disable();
    return this;
  }
}

const metadataGetter: TextMapGetter<Metadata> = {
  keys: (md) => Object.keys(md.getMap()),
  get: (md, key) => {
    const values = md.get(key).map(String);
    return values.length ? values : undefined;
  },
};

/** Opens a SERVER span around every unary handler of every service registered after this call. */
function emulateGrpcServerSpans(): () => void {
  const tracer = trace.getTracer('test-grpc-server-emulation');
  const original = Server.prototype.addService;
  Server.prototype.addService = function (this: Server, definition, implementation) {
    const wrapped: UntypedServiceImplementation = {};
    for (const [name, handler] of Object.entries(implementation)) {
      const path = definition[name]?.path ?? name;
      if (definition[name]?.requestStream || definition[name]?.responseStream || typeof handler !== 'function') {
        wrapped[name] = handler;
        continue;
      }
      const unary = handler as (call: { metadata: Metadata }, callback: (err: ServiceError | null, value?: unknown) => void) => void;
      wrapped[name] = ((call: { metadata: Metadata }, callback: (err: ServiceError | null, value?: unknown) => void) => {
        const parent = propagation.extract(ROOT_CONTEXT, call.metadata, metadataGetter);
        const [service, method] = path.slice(1).split('/');
        const span = tracer.startSpan(`grpc.${path.slice(1)}`, { kind: SpanKind.SERVER, attributes: { 'rpc.system': 'grpc', 'rpc.service': service!, 'rpc.method': method! } }, parent);
        context.with(trace.setSpan(parent, span), () =>
          unary(call, (err, value) => {
            span.setAttribute('rpc.grpc.status_code', err ? (err.code ?? status.UNKNOWN) : status.OK);
            if (err) span.setStatus({ code: SpanStatusCode.ERROR, message: err.details ?? err.message });
            span.end();
            callback(err, value);
          }),
        );
      }) as UntypedServiceImplementation[string];
    }
    return original.call(this, definition, wrapped);
  };
  return () => {
    Server.prototype.addService = original;
  };
}

const PANS = ['4111111111111111', '5555555555554444'];
const BAD_PAN = '4111111111111112';
const b64 = (bytes = 32) => randomBytes(bytes).toString('base64');

describe('no secret reaches a log line, a span, an event or an error (issue 4)', () => {
  const prefix = uniqueName();
  const masterKey = b64();
  const kek = b64();
  const logLines: string[] = [];
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  let restoreAddService: () => void;

  let deps: VaultDeps;
  let service: Awaited<ReturnType<typeof startTokenization>>;
  let client: ReturnType<typeof testClient<TokenizationServiceClient>>;
  let secure: MtlsReplica<'wallet' | 'gateway'>;

  beforeAll(async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    context.setGlobalContextManager(new AsyncLocalContextManager());
    propagation.setGlobalPropagator(new W3CTraceContextPropagator());
    trace.setGlobalTracerProvider(provider);
    restoreAddService = emulateGrpcServerSpans();
    // Both services log at debug into the captured lines: the registry sees the band, the vault the card.
    const logger = (svc: string) => createLogger(svc, 'debug', { write: (line: string) => void logLines.push(line) });
    deps = await startVaultDeps(prefix, logger('device-registry'));
    const start = (extra: Record<string, string> = {}) =>
      startTokenization(
        readConfig(
          testEnv(prefix, {
            DATABASE_URL: deps.vaultDb.url,
            TOKENIZATION_PORT: '0',
            DEVICE_REGISTRY_ADDR: `127.0.0.1:${deps.registry.port}`,
            TOKEN_MASTER_KEY: masterKey,
            VAULT_KEKS: `1:${kek}`,
            VAULT_ACTIVE_KEY_VERSION: '1',
            ...extra,
          }),
        ),
        logger('tokenization'),
      );
    service = await start();
    client = testClient(TokenizationServiceClient, service.port);
    // A second replica with mTLS, for the one method only the wallet backend may call (IssueOfflineCode).
    secure = await mtlsReplica(start, ['wallet', 'gateway']);
  });

  afterAll(async () => {
    client?.close();
    await secure?.stop();
    await service?.stop();
    await stopVaultDeps(deps);
    restoreAddService?.();
    await provider.shutdown();
    trace.disable();
    propagation.disable();
    context.disable();
  });

  async function bandWithCard(pan: string) {
    const accountId = uniqueName('acct');
    const { band, tokenId, tokenNumber } = await bandWithToken(deps.registryClient, client, accountId, { source: { $case: 'cardNumber', value: pan } }, [Channel.CHANNEL_BAND_TAP, Channel.CHANNEL_BAND_QR]);
    return { band, accountId, deviceId: band.deviceId!, tokenId, tokenNumber };
  }

  const sent: VerifyPaymentRequest[] = [];
  function tap(band: Band, amountMinor = 1250n, merchantId = 'merchant-1'): VerifyPaymentRequest {
    const p = band.tap({ amountMinor, currency: 'EUR', merchantId, terminalNonce: randomBytes(4) });
    const req = { tokenNumber: p.tokenNumber, atc: p.atc, amount: { amountMinor, currency: 'EUR' }, merchantId, terminalNonce: p.terminalNonce, cryptogram: p.cryptogram, channel: Channel.CHANNEL_BAND_TAP, paymentId: randomUUID() };
    sent.push(req);
    return req;
  }
  const verify = async (req: VerifyPaymentRequest) => (await client.verifyPayment(req)).verification!.result;

  it('a payment flow with known card numbers leaves none of them in logs, spans, events or errors', async () => {
    const [alice, bob] = [await bandWithCard(PANS[0]!), await bandWithCard(PANS[1]!)];

    // Taps that pay, a tampered amount, a replay, a QR code used twice.
    expect(await verify(tap(alice.band))).toBe(VerifyResult.VERIFY_RESULT_OK);
    expect(await verify(tap(bob.band, 990n, 'merchant-2'))).toBe(VerifyResult.VERIFY_RESULT_OK);
    const genuine = tap(alice.band, 5000n);
    expect(await verify({ ...genuine, amount: { amountMinor: 50n, currency: 'EUR' }, paymentId: randomUUID() })).toBe(VerifyResult.VERIFY_RESULT_CRYPTOGRAM_MISMATCH);
    expect(await verify(genuine)).toBe(VerifyResult.VERIFY_RESULT_OK);
    // A retry of the same payment is answered from its idempotency row (and logged as such).
    expect(await verify(genuine)).toBe(VerifyResult.VERIFY_RESULT_OK);
    const last = alice.band.replayLastTap();
    expect(await verify({ ...genuine, atc: last.atc, terminalNonce: last.terminalNonce, cryptogram: last.cryptogram, paymentId: randomUUID() })).toBe(VerifyResult.VERIFY_RESULT_REPLAY);
    const { code } = await secure.as.wallet.issueOfflineCode({ tokenId: bob.tokenId, accountId: bob.accountId });
    const offline = (paymentId = randomUUID()) => client.verifyOfflineCode({ tokenNumber: bob.tokenNumber, code, amount: { amountMinor: 700n, currency: 'EUR' }, merchantId: 'cafe-7', paymentId });
    const qrPayment = randomUUID();
    expect((await offline(qrPayment)).verification!.result).toBe(VerifyResult.VERIFY_RESULT_OK);
    expect((await offline(qrPayment)).verification!.result).toBe(VerifyResult.VERIFY_RESULT_OK);
    expect((await offline()).verification!.result).toBe(VerifyResult.VERIFY_RESULT_CODE_REUSED);

    // Refusals whose messages a caller (and the emulated server span) sees.
    const errors = [
      await expectStatus(
        client.provisionToken({ idempotencyKey: randomUUID(), deviceId: alice.deviceId, accountId: alice.accountId, fundingSource: { source: { $case: 'cardNumber', value: BAD_PAN } }, channels: [Channel.CHANNEL_BAND_TAP] }),
        status.INVALID_ARGUMENT,
      ),
      await expectStatus(secure.as.gateway.detokenize({ tokenId: alice.tokenId }), status.PERMISSION_DENIED),
      await expectStatus(secure.as.gateway.issueOfflineCode({ tokenId: bob.tokenId, accountId: bob.accountId }), status.PERMISSION_DENIED),
      await expectStatus(secure.as.wallet.issueOfflineCode({ tokenId: bob.tokenId, accountId: alice.accountId }), status.NOT_FOUND),
    ];

    // The band is reported lost: the device-event consumer suspends its token (a CONSUMER span).
    await deps.registryClient.reportLost({ idempotencyKey: randomUUID(), deviceId: alice.deviceId });
    const until = Date.now() + 5_000;
    while ((await verify(tap(alice.band))) !== VerifyResult.VERIFY_RESULT_TOKEN_SUSPENDED) {
      if (Date.now() > until) throw new Error('the lost band’s token was not suspended within 5 s');
      await new Promise((r) => setTimeout(r, 20));
    }

    const about = (type: string, tokenId: string) => deps.events.ofType(type).filter((e) => (e.event.payload?.value as { tokenId?: string } | undefined)?.tokenId === tokenId);
    await deps.events.waitFor(
      () => about('token.provisioned', bob.tokenId).length === 1 && about('token.suspended', alice.tokenId).length === 1 && about('token.payment.refused', alice.tokenId).length >= 3,
      5_000,
      'provision, refusal and suspension events',
    );
    const published = (type: string) => exporter.getFinishedSpans().some((s) => s.kind === SpanKind.PRODUCER && s.name === `${type} publish`);
    const deadline = Date.now() + 5_000;
    while (!['token.provisioned', 'token.payment.verified', 'token.payment.refused', 'token.suspended'].every(published) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await provider.forceFlush();

    // What a secret looks like wherever it might leak: text (digits, base64, hex) and raw bytes.
    const secrets = new Map<string, string>();
    PANS.forEach((pan, i) => secrets.set(pan, `card number ${i + 1}`));
    secrets.set(BAD_PAN, 'refused card number');
    secrets.set(masterKey, 'master key (base64)');
    secrets.set(Buffer.from(masterKey, 'base64').toString('hex'), 'master key (hex)');
    secrets.set(kek, 'KEK (base64)');
    secrets.set(Buffer.from(kek, 'base64').toString('hex'), 'KEK (hex)');
    for (const t of [alice, bob]) {
      const key = deriveTokenKey(Buffer.from(masterKey, 'base64'), t.tokenId);
      secrets.set(key.toString('hex'), `token key of ${t.tokenId} (hex)`);
      secrets.set(key.toString('base64'), `token key of ${t.tokenId} (base64)`);
      secrets.set(t.tokenNumber, `device token number ${t.tokenNumber.slice(-4)}`);
    }
    for (const req of sent) {
      secrets.set(Buffer.from(req.cryptogram).toString('hex'), `cryptogram of ATC ${req.atc} (hex)`);
      secrets.set(Buffer.from(req.cryptogram).toString('base64'), `cryptogram of ATC ${req.atc} (base64)`);
    }
    const rawSecrets: Array<[Buffer, string]> = [...PANS, BAD_PAN].map((pan) => [Buffer.from(pan), `card number ${pan.slice(-4)} (bytes)`]);
    for (const t of [alice, bob]) rawSecrets.push([deriveTokenKey(Buffer.from(masterKey, 'base64'), t.tokenId), `token key of ${t.tokenId} (bytes)`]);
    for (const req of sent) rawSecrets.push([Buffer.from(req.cryptogram), `cryptogram of ATC ${req.atc} (bytes)`]);
    const leaks = (where: string, text: string) => [...secrets].filter(([s]) => text.includes(s)).map(([, what]) => `${what} in ${where}`);
    const bigintSafe = (value: unknown) => JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v).toString('base64') : v));

    // Spans: name, attributes, events (exception messages and stacks), status message, links.
    const spans = exporter.getFinishedSpans();
    const spanText = (s: ReadableSpan) =>
      bigintSafe({ name: s.name, attributes: s.attributes, events: s.events.map((e) => ({ name: e.name, attributes: e.attributes })), status: s.status, links: s.links.map((l) => l.attributes) });
    const found: string[] = [];
    for (const s of spans) found.push(...leaks(`span "${s.name}"`, spanText(s)));
    // Logs, as written (JSON lines).
    logLines.forEach((line, i) => found.push(...leaks(`log line ${i}`, line)));
    // Events, decoded (as a consumer reads them) and as the bytes on the wire.
    for (const e of deps.events.seen) {
      found.push(...leaks(`event ${e.subject} (decoded)`, bigintSafe(e.event) + bigintSafe(e.headers)));
      const bytes = Buffer.from(encodeEvent(e.event));
      for (const [raw, what] of rawSecrets) if (bytes.includes(raw)) found.push(`${what} in event ${e.subject} (bytes)`);
    }
    // Error messages callers saw.
    errors.forEach((err) => found.push(...leaks(`error "${err.details}"`, err.details)));
    expect(found).toEqual([]);

    // The capture itself worked: a test that captured nothing would prove nothing.
    expect(logLines.length).toBeGreaterThan(10);
    expect(deps.events.seen.length).toBeGreaterThanOrEqual(8);
    const server = (method: string) => spans.filter((s) => s.kind === SpanKind.SERVER && s.name.endsWith(`/${method}`));
    expect(server('VerifyPayment').length).toBeGreaterThanOrEqual(sent.length + 2);
    expect(server('VerifyPayment').filter((s) => s.attributes[ATTR.tokenId] === alice.tokenId).map((s) => s.attributes[ATTR.verifyResult])).toEqual(
      expect.arrayContaining(['OK', 'CRYPTOGRAM_MISMATCH', 'REPLAY', 'TOKEN_SUSPENDED']),
    );
    expect(server('ProvisionToken').map((s) => s.status.code)).toEqual([SpanStatusCode.UNSET, SpanStatusCode.UNSET, SpanStatusCode.ERROR]);
    expect(server('ReportLost')).toHaveLength(1);
    expect(['token.provisioned', 'token.payment.verified', 'token.payment.refused', 'token.suspended'].filter((t) => !published(t))).toEqual([]);
    expect(spans.some((s) => s.kind === SpanKind.CONSUMER && s.attributes[ATTR.eventType] === 'device.lost')).toBe(true);
    // The outbox carried the request's trace: the token.suspended publish continues the device.lost consumer's trace.
    const consumed = spans.find((s) => s.kind === SpanKind.CONSUMER && s.attributes[ATTR.eventType] === 'device.lost')!;
    expect(spans.some((s) => s.name === 'token.suspended publish' && s.spanContext().traceId === consumed.spanContext().traceId)).toBe(true);
  });
});
