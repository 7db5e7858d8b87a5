import { credentials, type Client, type ChannelCredentials, type ClientOptions, type ServiceDefinition } from '@grpc/grpc-js';
import { createClient, type PromiseClient } from '../../platform/grpc/client';
import { createLogger, type Logger } from '../../platform/log';
import { TEST_NATS_URL, TEST_REDIS_URL, uniqueName } from './servers';

/** A logger for tests: silent unless TEST_LOG=1, so a failing test's output stays readable. */
export function testLogger(service: string): Logger {
  return createLogger(service, process.env.TEST_LOG === '1' ? 'debug' : 'silent');
}

/**
 * Environment for one service under test: port 0, real Redis and NATS, and a prefix that keeps
 * this test's keys, subjects and streams apart from every other test's.
 */
export function testEnv(prefix: string, extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  return {
    REDIS_URL: TEST_REDIS_URL,
    REDIS_KEY_PREFIX: prefix,
    NATS_URL: TEST_NATS_URL,
    NATS_SUBJECT_PREFIX: prefix,
    GRPC_TLS: 'off',
    SHUTDOWN_GRACE_MS: '2000',
    ...extra,
  };
}

export { uniqueName };

type Ctor<C> = { new (address: string, credentials: ChannelCredentials, options?: Partial<ClientOptions>): C; service: ServiceDefinition };

/**
 * A promise client on 127.0.0.1:port, over plaintext unless `creds` say otherwise. Over TLS the
 * server is named `localhost` (test certificates carry it): Node refuses an IP address as the
 * TLS server name (DEP0123).
 */
export function testClient<C extends Client>(Ctor: Ctor<C>, port: number, creds = credentials.createInsecure()): PromiseClient<C> {
  return createClient(Ctor, `127.0.0.1:${port}`, { credentials: creds, deadlineMs: 5_000, retryable: [], serverName: 'localhost' });
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
