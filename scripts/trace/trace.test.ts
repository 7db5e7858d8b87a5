import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SpanRecord } from '../../platform/telemetry/file-exporter';
import { FileSpanSource } from './file-source';
import type { JaegerTrace } from './jaeger-source';
import { run } from './main';
import { AUTHORIZE_OPERATION, challengesByReason, declinesByReason, slowestPayments, tracesOfPayment } from './payments';

/**
 * The trace tool on spans of a real run: fixtures/demo-run holds every span of 15 traces that
 * `npm start -- --once` wrote to .data/traces on 2026-12-03 (ten payments: approved and retried,
 * stepped up then confirmed and voided, stepped up and left to expire, declines, a voucher, a
 * refused voucher), with attributes cut to wristpay.*, rpc.*, messaging.* and db.system*: ids and
 * codes, no secret. The end-to-end test (test/e2e/payment.test.ts) also runs it on a fresh mesh.
 */
const FIXTURE = join(__dirname, 'fixtures', 'demo-run');
const APPROVED = 'dc2b24ce-2434-4522-82f1-b8e4bd41b51a'; // tapped, then retried with the same key
const CONFIRMED = '0ef7b0bc-bbb6-4edf-95c2-0b357a3aa5a0'; // wrist off: stepped up, confirmed on the band, then voided
const EXPIRED = 'fa803122-268f-48c7-a63c-3b642b08dc92'; // wrist off, the phone never answered

const records: SpanRecord[] = readdirSync(FIXTURE).flatMap((f) =>
  readFileSync(join(FIXTURE, f), 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SpanRecord),
);
const latestUs = Math.max(...records.map((r) => r.startUs + r.durationUs));
/** "Now" for the tool: ten minutes after the run, so `--since 1h` covers it all. */
const now = () => Math.ceil(latestUs / 1000) + 10 * 60_000;
const files = new FileSpanSource(FIXTURE);

describe('npm run trace on the trace files of a real run', () => {
  it('finds every trace of a stepped-up payment, in time order, each as a waterfall with why it went so', async () => {
    const traces = await tracesOfPayment(files, CONFIRMED);
    // A root here is the span whose parent is not in the trace (the terminal's client span is not recorded).
    const roots = traces.map((t) => t.spans.find((s) => !t.spans.some((p) => p.spanId === s.parentSpanId))!);
    expect(roots.map((r) => r.name)).toEqual([AUTHORIZE_OPERATION, 'grpc.wristpay.gateway.v1.GatewayService/ConfirmPayment', 'grpc.wristpay.gateway.v1.GatewayService/Void']);
    expect(traces.map((t) => t.startUs)).toEqual([...traces.map((t) => t.startUs)].sort((a, b) => a - b));
    expect(roots.map((r) => [r.attributes['wristpay.challenge.outcome'], r.attributes['wristpay.hold.outcome']])).toEqual([
      ['challenged', undefined],
      ['confirmed', 'placed'],
      [undefined, 'voided'],
    ]);

    const out = await run([CONFIRMED, '--dir', FIXTURE], now);
    expect(out.split('\n')[0]).toBe(`payment ${CONFIRMED}: 3 traces`);
    for (const t of traces) expect(out).toContain(`trace ${t.traceId}`);
    // Every service the payment crossed, consumers included, has a line; child spans are indented under their parent.
    for (const service of ['gateway', 'tokenization', 'device-registry', 'risk', 'settlement', 'alerts']) expect(out).toMatch(new RegExp(`│ ${service} +│`));
    expect(out).toMatch(/│ GatewayService\/Authorize +│ gateway +│ ok/);
    expect(out).toMatch(/│ {5}RiskService\/Score +│ risk +│ ok/);
    expect(out).toMatch(/│ {5}payment\.challenged process +│ alerts +│/);
    for (const why of ['decision=CHALLENGED', 'challenge.outcome=challenged', 'risk.reasons=SESSION_NOT_LIVE,MODEL_SCORE,NEW_DEVICE', 'risk.ruleset_version=default-6+dfdaae7c', 'risk.model_version=logit-2+e643bcaf', 'payment.channel=CHANNEL_BAND_TAP', 'challenge.outcome=confirmed', 'hold.outcome=placed', 'hold.outcome=voided']) expect(out).toContain(why);
    // The database spans are counted, not shown, unless asked for.
    expect(out).toMatch(/database spans hidden/);
    const withDb = await run([CONFIRMED, '--dir', FIXTURE, '--db'], now);
    expect(withDb).not.toMatch(/database spans hidden/);
    expect(withDb.split('\n').length).toBeGreaterThan(out.split('\n').length);
  });

  it('shows an expired step-up with its expiry sweep, and says so for a payment no trace carries', async () => {
    const out = await run([EXPIRED, '--dir', FIXTURE], now);
    expect(out.split('\n')[0]).toBe(`payment ${EXPIRED}: 2 traces`);
    expect(out).toMatch(/│ gateway\.ExpireChallenge +│ gateway +│ ok/);
    expect(out).toContain('challenge.outcome=expired');
    expect(out).toContain('payment.decline_reason=CHALLENGE_EXPIRED');
    expect(await run(['00000000-0000-4000-8000-000000000000', '--dir', FIXTURE], now)).toBe('no trace carries payment 00000000-0000-4000-8000-000000000000');
    // A trace id, as the demo's table prints it, stands for its payment: the expiry's trace shows the whole payment.
    const expiry = (await tracesOfPayment(files, EXPIRED))[1]!.traceId;
    expect(await run([expiry, '--dir', FIXTURE], now)).toBe(out);
    expect(await run(['0123456789abcdef0123456789abcdef', '--dir', FIXTURE], now)).toBe('no payment in trace 0123456789abcdef0123456789abcdef');
  });

  it('groups declines by reason, with shares and sample ids', async () => {
    const groups = await declinesByReason(files, 0);
    expect(groups.map((g) => [g.key, g.count])).toEqual([
      ['RISK', 2],
      ['CHALLENGE_EXPIRED', 1],
      ['INSUFFICIENT_FUNDS', 1],
      ['REPLAY', 1],
    ]);
    expect(groups[0]!.share).toBeCloseTo(0.4);
    expect(groups.find((g) => g.key === 'CHALLENGE_EXPIRED')!.samples).toEqual([EXPIRED]);
    const out = await run(['--declined', '--since', '1h', '--dir', FIXTURE], now);
    expect(out.split('\n')[0]).toMatch(/^declined in the last 1h \(trace files in .*\): 5 payments$/);
    expect(out).toMatch(/│ RISK +│ 2 +│ 40\.0% +│ declined by risk \(/);
    // A hold settlement refused is the decline's why: on the Authorize span with the reason.
    const funds = await run([groups.find((g) => g.key === 'INSUFFICIENT_FUNDS')!.samples[0]!, '--dir', FIXTURE], now);
    for (const why of ['hold.outcome=refused', 'payment.decline_reason=INSUFFICIENT_FUNDS', 'decision=DECLINED']) expect(funds).toContain(why);
    // Nothing declined in the minute before "now".
    expect(await run(['--declined', '--since', '1m', '--dir', FIXTURE], now)).toMatch(/: none$/);
  });

  it('groups step-ups by the risk reasons, with how each ended', async () => {
    const groups = await challengesByReason(files, 0);
    expect(groups.map((g) => [g.key, g.count, g.outcomes])).toEqual([
      ['MODEL_SCORE,NEW_DEVICE,SESSION_NOT_LIVE', 2, { confirmed: 1, expired: 1 }],
      ['MODEL_SCORE,NEW_DEVICE,VELOCITY_1M', 1, { pending: 1 }],
    ]);
    expect(await run(['--challenged', '--since', '1h', '--dir', FIXTURE], now)).toMatch(/│ MODEL_SCORE,NEW_DEVICE,SESSION_NOT_LIVE +│ 2 +│ 66\.7% +│ 1 \/ 0 \/ 1 \/ 0 +│/);
  });

  it('lists the slowest Authorize calls with their slowest direct child', async () => {
    const authorizes = records.filter((r) => r.service === 'gateway' && r.name === AUTHORIZE_OPERATION);
    const expected = [...authorizes].sort((a, b) => b.durationUs - a.durationUs).slice(0, 3);
    const slow = await slowestPayments(files, 3);
    expect(slow.map((s) => [s.traceId, s.durationUs])).toEqual(expected.map((r) => [r.traceId, r.durationUs]));
    for (const [i, s] of slow.entries()) {
      const children = records.filter((r) => r.traceId === s.traceId && r.parentSpanId === expected[i]!.spanId);
      expect(s.slowestChild!.durationUs).toBe(Math.max(...children.map((c) => c.durationUs)));
    }
    // The refused voucher: its Authorize failed before any decision, and is shown as such.
    expect((await slowestPayments(files, 100)).length).toBe(authorizes.length);
    const out = await run(['--slowest', '3', '--dir', FIXTURE], now);
    expect(out.split('\n')[0]).toMatch(/^slowest 3 Authorize calls \(trace files in /);
    expect(out).toContain(`│ 1 │ ${slow[0]!.paymentId} │`);
  });

  it('refuses bad arguments with a usage line', async () => {
    await expect(run([], now)).rejects.toThrow(/usage: npm run trace/);
    await expect(run(['--declined', '--slowest', '3', '--dir', FIXTURE], now)).rejects.toThrow(/usage/);
    await expect(run(['--slowest', 'many', '--dir', FIXTURE], now)).rejects.toThrow(/--slowest takes a count/);
    await expect(run(['--declined', '--since', 'yesterday', '--dir', FIXTURE], now)).rejects.toThrow(/--since must be a duration/);
    await expect(run(['--declined', '--dir', join(FIXTURE, 'missing')], now)).rejects.toThrow(/no trace files/);
  });
});

/**
 * The same spans as Jaeger's query API serves them (jaeger-query's /api/services, /api/traces
 * search and /api/traces/{id} JSON). No Jaeger binary can run here, so this is a small fake of
 * that API in the test, answering searches the way Jaeger does: traces having a span of the
 * service (and operation) with every tag, started in [start, end], newest first, at most limit.
 */
function toJaeger(spans: SpanRecord[]): JaegerTrace {
  const services = [...new Set(spans.map((s) => s.service))];
  const kinds = ['internal', 'server', 'client', 'producer', 'consumer'];
  return {
    traceID: spans[0]!.traceId,
    processes: Object.fromEntries(services.map((s, i) => [`p${i + 1}`, { serviceName: s, tags: [] }])),
    spans: spans.map((s) => ({
      traceID: s.traceId,
      spanID: s.spanId,
      operationName: s.name,
      references: s.parentSpanId ? [{ refType: 'CHILD_OF', traceID: s.traceId, spanID: s.parentSpanId }] : [],
      startTime: s.startUs,
      duration: s.durationUs,
      // Jaeger keeps an array attribute as its JSON text, and the kind and status as tags.
      tags: [
        ...Object.entries(s.attributes).map(([key, value]) => ({ key, type: typeof value === 'number' ? 'int64' : typeof value === 'boolean' ? 'bool' : 'string', value: Array.isArray(value) ? JSON.stringify(value) : value })),
        { key: 'span.kind', type: 'string', value: kinds[s.kind] },
        ...(s.status === 2 ? [{ key: 'otel.status_code', type: 'string', value: 'ERROR' }, { key: 'error', type: 'bool', value: true }] : []),
      ],
      processID: `p${services.indexOf(s.service) + 1}`,
    })),
  };
}

function fakeJaeger(all: SpanRecord[]): { server: Server; requests: string[] } {
  const traces = new Map<string, SpanRecord[]>();
  for (const r of all) traces.set(r.traceId, [...(traces.get(r.traceId) ?? []), r]);
  const requests: string[] = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url!, 'http://jaeger');
    requests.push(url.pathname + url.search);
    const send = (data: unknown, code = 200) => {
      res.writeHead(code, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ data, total: Array.isArray(data) ? data.length : 0, limit: 0, offset: 0, errors: null }));
    };
    if (url.pathname === '/api/services') return send([...new Set(all.map((r) => r.service))]);
    const byId = /^\/api\/traces\/([0-9a-f]+)$/.exec(url.pathname);
    if (byId) return traces.has(byId[1]!) ? send([toJaeger(traces.get(byId[1]!)!)]) : send(null, 404);
    if (url.pathname !== '/api/traces') return send(null, 404);
    const q = url.searchParams;
    const service = q.get('service');
    if (!service) return send(null, 400);
    const tags = JSON.parse(q.get('tags') ?? '{}') as Record<string, string>;
    const start = Number(q.get('start'));
    const end = Number(q.get('end'));
    const text = (v: unknown) => (Array.isArray(v) ? JSON.stringify(v) : String(v));
    const found = [...traces.values()]
      .filter((spans) =>
        spans.some((s) => s.service === service && (!q.get('operation') || s.name === q.get('operation')) && s.startUs >= start && s.startUs <= end && Object.entries(tags).every(([k, v]) => k in s.attributes && text(s.attributes[k]) === v)),
      )
      .sort((a, b) => Math.min(...b.map((s) => s.startUs)) - Math.min(...a.map((s) => s.startUs)))
      .slice(0, Number(q.get('limit') ?? 20));
    return send(found.map(toJaeger));
  });
  return { server, requests };
}

describe('npm run trace against Jaeger’s query API', () => {
  let jaeger: ReturnType<typeof fakeJaeger>;
  let address: string;

  beforeAll(async () => {
    jaeger = fakeJaeger(records);
    await new Promise<void>((resolve) => jaeger.server.listen(0, '127.0.0.1', resolve));
    address = `http://127.0.0.1:${(jaeger.server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => jaeger.server.close(() => resolve())));

  const same = (text: string) => text.replace(/\((trace files in [^)]*|Jaeger at [^)]*)\)/g, '(source)');

  it.each([
    ['a payment', [CONFIRMED]],
    ['an expired step-up', [EXPIRED]],
    ['an approved payment and its retry', [APPROVED]],
    ['a trace id', ['9528c983683a781ca5dfc55573e86fc1']],
    ['declines', ['--declined', '--since', '1h']],
    ['step-ups', ['--challenged', '--since', '1h']],
    ['the slowest', ['--slowest', '5', '--since', '1h']],
  ])('prints the same for %s as from the files', async (_what, args) => {
    const fromFiles = await run([...args, '--dir', FIXTURE], now);
    const fromJaeger = await run([...args, '--jaeger', address], now);
    expect(same(fromJaeger)).toBe(same(fromFiles));
    expect(fromJaeger.length).toBeGreaterThan(200);
  });

  it('asks Jaeger with service, tags and the time window', async () => {
    jaeger.requests.length = 0;
    await run(['--declined', '--since', '1h', '--jaeger', address], now);
    const search = new URL(jaeger.requests.find((r) => r.startsWith('/api/traces?'))!, 'http://jaeger').searchParams;
    expect({ service: search.get('service'), tags: JSON.parse(search.get('tags')!), span: Number(search.get('end')) - Number(search.get('start')) }).toEqual({ service: 'gateway', tags: { 'wristpay.decision': 'DECLINED' }, span: 3600 * 1e6 });
  });

  it('reads one trace by id, and reports an unreachable Jaeger clearly', async () => {
    const { JaegerSpanSource } = await import('./jaeger-source');
    const traceId = (await tracesOfPayment(files, APPROVED))[0]!.traceId;
    const spans = await new JaegerSpanSource(address, now).trace(traceId);
    expect(spans.map((s) => s.spanId).sort()).toEqual(records.filter((r) => r.traceId === traceId).map((r) => r.spanId).sort());
    expect(await run(['0123456789abcdef0123456789abcdef', '--jaeger', address], now)).toBe('no payment in trace 0123456789abcdef0123456789abcdef');
    await expect(run(['--declined', '--jaeger', 'http://127.0.0.1:9'], now)).rejects.toThrow(/^Jaeger at http:\/\/127\.0\.0\.1:9 cannot be reached/);
  });
});
