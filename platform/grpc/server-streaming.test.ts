import {
  credentials,
  makeGenericClientConstructor,
  status,
  ServerCredentials,
  type CallOptions,
  type ChannelCredentials,
  type Client,
  type ClientOptions,
  type ClientReadableStream,
  type Metadata,
  type ServiceDefinition,
} from '@grpc/grpc-js';
import { InvalidArgument } from '../errors';
import { createLogger } from '../log';
import { createClient } from './client';
import { testPki } from '../../test/support/pki';
import { serverCredentials, type TlsConfig } from './credentials';
import { callerAllowed, GrpcServer, register, type CallContext, type Send } from './server';

// A one-method server-streaming service with raw bytes on the wire, so the test needs no generated stubs.
const countService = {
  count: {
    path: '/wristpay.test.v1.Count/Count',
    requestStream: false,
    responseStream: true,
    requestSerialize: (b: Buffer) => b,
    requestDeserialize: (b: Buffer) => b,
    responseSerialize: (b: Buffer) => b,
    responseDeserialize: (b: Buffer) => b,
  },
} satisfies ServiceDefinition;

interface CountClient extends Client {
  count(request: Buffer, metadata?: Metadata, options?: Partial<CallOptions>): ClientReadableStream<Buffer>;
}
const CountClient = makeGenericClientConstructor(countService, 'Count') as unknown as {
  new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): CountClient;
  service: ServiceDefinition;
};

type CountServer = { count: (request: Buffer, ctx: CallContext, send: Send<Buffer>) => Promise<void> };

/** What the handler saw: how many sends resolved, whether its signal aborted and why. */
interface Seen {
  sent: number;
  aborted?: unknown;
  sendRejected?: unknown;
}

// Every call here is over mTLS as `tester` (a plaintext call has no identity, and every method
// refuses a caller it does not list).
const pki = testPki(['server', 'tester']);
afterAll(() => pki.remove());

async function start(handler: CountServer['count'], allowedCallers: readonly string[] = ['tester'], streamMaxMs?: number, plaintext = false) {
  const server = new GrpcServer({
    service: 'test',
    log: createLogger('test', 'silent'),
    credentials: plaintext ? ServerCredentials.createInsecure() : serverCredentials(pki.env('server') as TlsConfig),
    maxCallMs: 200,
    ...(streamMaxMs ? { streamMaxMs } : {}),
    services: [
      register<{ count: unknown }>({
        definition: countService as never,
        handlers: { count: handler } as never,
        allowedCallers: { count: allowedCallers },
      }),
    ],
  });
  const port = await server.listen(0, '127.0.0.1');
  const client = createClient(CountClient, `127.0.0.1:${port}`, { credentials: plaintext ? credentials.createInsecure() : pki.client('tester'), deadlineMs: 5_000, retryable: [], serverName: 'localhost' });
  return { server, client };
}

const number = (b: Buffer) => Number(b.toString());
const until = async (predicate: () => boolean, ms = 5_000) => {
  const end = Date.now() + ms;
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await new Promise((r) => setTimeout(r, 10));
  }
};

describe('GrpcServer server streaming (real server on port 0)', () => {
  const running: Array<{ server: GrpcServer; client: { close(): void } }> = [];
  afterEach(async () => {
    for (const r of running.splice(0)) {
      r.client.close();
      await r.server.shutdown(1_000);
    }
  });

  it('sends every message in order and ends OK when the handler returns; streams outlive the unary call cap', async () => {
    const s = await start(async (req, _ctx, send) => {
      for (let i = 1; i <= number(req); i++) {
        await send(Buffer.from(String(i)));
        // Longer, in all, than maxCallMs (200 ms): a stream is not cut by the unary cap.
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 30));
      }
    });
    running.push(s);
    const got: number[] = [];
    for await (const m of s.client.count(Buffer.from('100'))) got.push(number(m));
    expect(got).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
  });

  it('ends a stream that reaches its lifetime with UNAVAILABLE (resume), before the connection it rides on is cut', async () => {
    const seen: Seen = { sent: 0 };
    const s = await start(
      async (_req, ctx, send) => {
        await send(Buffer.from('1'));
        seen.sent++;
        await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
        seen.aborted = ctx.signal.reason;
      },
      undefined,
      300,
    );
    running.push(s);
    const started = Date.now();
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of s.client.count(Buffer.from('0'))) got.push(number(m));
    })().catch((e: { code: number; details: string }) => e);
    const ms = Date.now() - started;
    expect(got).toEqual([1]);
    expect(err).toMatchObject({ code: status.UNAVAILABLE, details: expect.stringContaining('resume the stream') });
    // 300 ms plus at most 10% jitter; well under the test's 5 s client deadline.
    expect(ms).toBeGreaterThanOrEqual(290);
    expect(ms).toBeLessThan(2_000);
    await until(() => seen.aborted !== undefined);
  });

  it('maps a domain error to its status, after the messages already sent', async () => {
    const s = await start(async (_req, _ctx, send) => {
      await send(Buffer.from('1'));
      throw new InvalidArgument('account_id is required');
    });
    running.push(s);
    const got: number[] = [];
    const err = await (async () => {
      for await (const m of s.client.count(Buffer.from('0'))) got.push(number(m));
    })().catch((e: { code: number; details: string }) => e);
    expect(got).toEqual([1]);
    expect(err).toMatchObject({ code: status.INVALID_ARGUMENT, details: 'account_id is required' });
  });

  it('hides an unexpected error behind INTERNAL', async () => {
    const s = await start(async () => {
      throw new Error('relation "alerts" does not exist');
    });
    running.push(s);
    const err = await (async () => {
      for await (const _ of s.client.count(Buffer.from('0'))) void _;
    })().catch((e: { code: number; details: string }) => e);
    expect(err).toMatchObject({ code: status.INTERNAL, details: 'internal error' });
  });

  it('refuses a caller not on the list, any caller of a method with an empty list, and every call without an identity, before the handler runs', async () => {
    let ran = false;
    const handler = async () => {
      ran = true;
    };
    const refusal = async (s: Awaited<ReturnType<typeof start>>) => {
      running.push(s);
      return (async () => {
        for await (const _ of s.client.count(Buffer.from('0'))) void _;
      })().catch((e: { code: number; details: string }) => e);
    };
    expect(await refusal(await start(handler, ['wallet']))).toMatchObject({ code: status.PERMISSION_DENIED, details: 'Count may only be called by wallet (caller: tester)' });
    expect(await refusal(await start(handler, []))).toMatchObject({ code: status.PERMISSION_DENIED, details: 'Count may be called by no one (caller: tester)' });
    expect(await refusal(await start(handler, ['tester'], undefined, true))).toMatchObject({ code: status.PERMISSION_DENIED, details: 'Count may only be called by tester over mTLS' });
    expect(ran).toBe(false);
  });

  it('admits every identity with the prefix of an entry ending in *, and only those', () => {
    expect(callerAllowed('merchant.m-1', ['merchant.*'])).toBe(true);
    expect(callerAllowed('merchant.', ['merchant.*'])).toBe(false);
    expect(callerAllowed('merchants', ['merchant.*'])).toBe(false);
    expect(callerAllowed('wallet', ['merchant.*', 'wallet'])).toBe(true);
    expect(callerAllowed('walletx', ['wallet'])).toBe(false);
  });

  it('a client that leaves the loop cancels the call: the handler’s signal aborts and its next send rejects', async () => {
    const seen: Seen = { sent: 0 };
    const s = await start(async (_req, ctx, send) => {
      ctx.signal.addEventListener('abort', () => (seen.aborted = ctx.signal.reason));
      try {
        for (let i = 1; ; i++) {
          await send(Buffer.from(String(i)));
          seen.sent++;
          await new Promise((r) => setTimeout(r, 5));
        }
      } catch (err) {
        seen.sendRejected = err;
      }
    });
    running.push(s);
    for await (const m of s.client.count(Buffer.alloc(0))) if (number(m) === 3) break;
    await until(() => seen.sendRejected !== undefined);
    expect(seen.aborted).toBeInstanceOf(Error);
    expect(seen.sendRejected).toBe(seen.aborted);
  });

  it('send waits for the client to read (backpressure) instead of buffering without bound', async () => {
    const total = 2_000;
    const seen: Seen = { sent: 0 };
    const big = Buffer.alloc(64 * 1024, 1);
    const s = await start(async (_req, _ctx, send) => {
      for (let i = 0; i < total; i++) {
        await send(Buffer.concat([Buffer.from(`${String(i).padStart(6, '0')}:`), big]));
        seen.sent++;
      }
    });
    running.push(s);
    const iterator = s.client.count(Buffer.alloc(0));
    // Read one message, then stop reading for a while: 2000 × 64 KiB = 128 MiB cannot all be in flight.
    const first = await iterator.next();
    expect(first.value!.subarray(0, 6).toString()).toBe('000000');
    await new Promise((r) => setTimeout(r, 500));
    const stalledAt = seen.sent;
    expect(stalledAt).toBeLessThan(total / 2);
    await new Promise((r) => setTimeout(r, 200));
    expect(seen.sent).toBe(stalledAt);
    let n = 1;
    for await (const m of iterator) {
      expect(Number(m.subarray(0, 6).toString())).toBe(n);
      n++;
    }
    expect(n).toBe(total);
    expect(seen.sent).toBe(total);
  });

  it('a caller deadline ends the stream with DEADLINE_EXCEEDED and aborts the handler', async () => {
    const seen: Seen = { sent: 0 };
    const s = await start(
      (_req, ctx) =>
        new Promise<void>((resolve) =>
          ctx.signal.addEventListener('abort', () => {
            seen.aborted = ctx.signal.reason;
            resolve();
          }),
        ),
    );
    running.push(s);
    const err = await (async () => {
      // 3 s: on a loaded machine (load 11 seen) a 1 s deadline passed before the call reached the
      // server, which then answers DEADLINE_EXCEEDED without ever calling the handler.
      for await (const _ of s.client.count(Buffer.alloc(0), { deadlineMs: 3_000 })) void _;
    })().catch((e: { code: number }) => e);
    expect(err).toMatchObject({ code: status.DEADLINE_EXCEEDED });
    await until(() => seen.aborted !== undefined);
  });

  it('shutdown ends open streams with UNAVAILABLE at once instead of waiting out the grace period', async () => {
    const seen: Seen = { sent: 0 };
    const s = await start(async (_req, ctx, send) => {
      await send(Buffer.from('1'));
      seen.sent++;
      // An endless stream that ignores nothing: it waits for new alerts until the call ends.
      await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
      seen.aborted = ctx.signal.reason;
      await send(Buffer.from('2')).catch((err) => (seen.sendRejected = err));
    });
    const streams = [0, 1, 2].map(() => s.client.count(Buffer.alloc(0)));
    const firsts = await Promise.all(streams.map((it) => it.next()));
    expect(firsts.map((f) => number(f.value!))).toEqual([1, 1, 1]);
    const started = Date.now();
    await s.server.shutdown(10_000);
    expect(Date.now() - started).toBeLessThan(2_000);
    for (const it of streams) await expect(it.next()).rejects.toMatchObject({ code: status.UNAVAILABLE, details: 'the server is shutting down; resume the stream' });
    await until(() => seen.sendRejected !== undefined);
    expect(seen.aborted).toMatchObject({ message: 'the server is shutting down; resume the stream' });
    s.client.close();
  });
});
