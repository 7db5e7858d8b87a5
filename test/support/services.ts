import type { Client, ChannelCredentials, ClientOptions, ServiceDefinition } from '@grpc/grpc-js';
import { createClient, type PromiseClient } from '../../platform/grpc/client';
import { createLogger, type Logger } from '../../platform/log';
import { PORT_ENV } from '../../scripts/mesh';
import { meshPki } from './mesh-pki';
import { policyOf } from './policies';
import { TEST_NATS_URL, TEST_REDIS_URL, TEST_STREAM_MAX_BYTES, uniqueName } from './servers';

/** A logger for tests: silent unless TEST_LOG=1, so a failing test's output stays readable. */
export function testLogger(service: string): Logger {
  return createLogger(service, process.env.TEST_LOG === '1' ? 'debug' : 'silent');
}

/** The service a test environment is for, from the port variable it sets (`RISK_PORT` → risk). */
function serviceOf(extra: Record<string, string | undefined>): string | undefined {
  return Object.entries(PORT_ENV).find(([, variable]) => variable in extra)?.[0];
}

/**
 * Environment for one service under test: port 0, real Redis and NATS, a prefix that keeps this
 * test's keys, subjects and streams apart from every other test's, and mutual TLS with the
 * test file's mesh PKI, presenting the certificate of the service whose `<NAME>_PORT` is in
 * `extra` (its identity when it calls others). `extra` may override any of it.
 */
export function testEnv(prefix: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const service = serviceOf(extra);
  return {
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: prefix,
    NATS_STREAM_MAX_BYTES: String(TEST_STREAM_MAX_BYTES),
    ...(service ? meshPki().env(service) : { GRPC_TLS: 'off' }),
    SHUTDOWN_GRACE_MS: '2000',
    ...extra,
  };
}

export { uniqueName };

type Ctor<C> = { new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): C; service: ServiceDefinition };

/**
 * A promise client on 127.0.0.1:port. With `creds`, every call presents them. Without, each
 * method is called as an identity its service's policy admits (test/support/policies.ts: the
 * first listed; `merchant.*` as `merchant.test`), over mTLS with the test file's mesh PKI — so a
 * test exercises what it is about, and tests of refusals pass the wrong identity explicitly.
 * Over TLS the server is named `localhost` (test certificates carry it): Node refuses an IP
 * address as the TLS server name (DEP0123).
 */
export function testClient<C extends Client>(Ctor: Ctor<C>, port: number, creds?: ChannelCredentials): PromiseClient<C> {
  const open = (credentials: ChannelCredentials) => createClient(Ctor, `127.0.0.1:${port}`, { credentials, deadlineMs: 5_000, retryable: [], serverName: 'localhost' });
  if (creds) return open(creds);
  const policy = policyOf(Ctor.service);
  const byIdentity = new Map<string, PromiseClient<C>>();
  const as = (identity: string) => {
    let client = byIdentity.get(identity);
    if (!client) {
      meshPki().issue(identity);
      byIdentity.set(identity, (client = open(meshPki().client(identity))));
    }
    return client;
  };
  return new Proxy({} as PromiseClient<C>, {
    get(_target, property) {
      if (property === 'close') return () => byIdentity.forEach((c) => c.close());
      if (typeof property !== 'string' || !(property in policy)) return undefined;
      const allowed = policy[property]!;
      if (!allowed.length) throw new Error(`${property} may be called by no one: there is no identity to call it as`);
      const identity = allowed[0]!.endsWith('*') ? `${allowed[0]!.slice(0, -1)}test` : allowed[0]!;
      const client = as(identity) as unknown as Record<string, unknown>;
      return client[property];
    },
  });
}

/** A promise client on 127.0.0.1:port presenting `identity`'s certificate from the test file's mesh PKI. */
export function testClientAs<C extends Client>(Ctor: Ctor<C>, port: number, identity: string): PromiseClient<C> {
  meshPki().issue(identity);
  return testClient(Ctor, port, meshPki().client(identity));
}

/** Expects `promise` to reject with gRPC status `code`; returns the error for more checks. */
export async function expectStatus(promise: Promise<unknown>, code: number, message?: RegExp): Promise<{ code: number; details: string }> {
  const err = (await promise.then(
    () => {
      throw new Error(`expected gRPC status ${code}, but the call succeeded`);
    },
    (e: { code: number; details: string }) => e,
  )) as { code: number; details: string };
  expect({ code: err.code, details: err.details }).toEqual({ code, details: message ? expect.stringMatching(message) : expect.any(String) });
  return err;
}
