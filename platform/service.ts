import { setTimeout as sleep } from 'node:timers/promises';
import { ConfigError } from './config';
import type { GrpcServer, ServiceRegistration } from './grpc/server';
import { createLogger, type Logger } from './log';
import { shutdownTelemetry } from './telemetry/shutdown';

/** A local resource (an embedded database's directory) could not be opened: no retry helps. */
export class StartupError extends Error {
  override readonly name: string = 'StartupError';
}

/** Backoff between attempts to reach a dependency at start (exported for tests). */
export const DEPENDENCY_RETRY = { firstMs: 200, maxMs: 5_000 };

/**
 * Runs `connect` until it succeeds. A dependency that is not up yet (PostgreSQL still starting,
 * Redis or NATS restarting, a Service whose DNS name does not resolve yet) is waited for with
 * jittered exponential backoff rather than ending the process: the service's gRPC server already
 * listens NOT_SERVING (listenEarly), so the kubelet's readiness probe keeps traffic away while
 * liveness leaves it running, and it turns SERVING as soon as everything answers. Each failed
 * attempt is logged with the variable to check (never its value, which may hold a password).
 * A StartupError or ConfigError ends the wait at once: no retry fixes those.
 */
export async function dependency<T>(log: Logger, what: string, variable: string, connect: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      const connected = await connect();
      if (attempt > 1) log.info({ dependency: what, attempts: attempt }, `${what} answered; going on with the start`);
      return connected;
    } catch (err) {
      // Nothing to wait for: a refused migration, an embedded database that cannot be opened, bad configuration.
      if (err instanceof StartupError || err instanceof ConfigError) throw err;
      const delayMs = Math.round(Math.min(DEPENDENCY_RETRY.maxMs, DEPENDENCY_RETRY.firstMs * 2 ** (attempt - 1)) * (0.8 + Math.random() * 0.4));
      log.warn({ dependency: what, variable, attempt, retryInMs: delayMs, err: (err as Error).message.split('\n')[0] }, `waiting for ${what} at ${variable}`);
      await sleep(delayMs);
    }
  }
}

/**
 * Binds a service's gRPC server before its dependencies are opened: it answers health checks
 * (NOT_SERVING) and refuses calls with UNAVAILABLE while the start waits for them. `serve`
 * gives the handlers once they are up, turning it SERVING. The drain is registered with `own`
 * twice: now, so a start that fails half way still closes the listener, and again in `serve`,
 * so that a stop drains the server before closing what its handlers use (closers run in reverse
 * order; the server's shutdown runs once).
 */
export async function listenEarly(own: Own, server: GrpcServer, port: number, graceMs: number): Promise<{ port: number; serve: (registrations: ServiceRegistration<unknown>[]) => void }> {
  const drain = (s: GrpcServer) => s.shutdown(graceMs);
  own(server, drain);
  const bound = await server.listen(port);
  return {
    port: bound,
    serve: (registrations) => {
      own(server, drain);
      server.install(registrations);
    },
  };
}

export interface RunningService {
  /** Stops taking work, drains in-flight calls and closes connections. */
  stop(): Promise<void>;
}

/** Registers how to close a resource just opened, and returns the resource. */
export type Own = <R>(resource: R, close: (resource: R) => Promise<unknown> | unknown) => R;

/**
 * Composes a service from resources opened one after another. Each is registered with `own`
 * as it opens; `stop()` closes them in reverse order (the gRPC server, registered last, drains
 * first; the connections it used close last), and a start that fails half way closes what it
 * had opened before rethrowing, so a failed start holds neither the process nor a test run open.
 * A close that fails is logged and the rest still close; a second `stop()` does nothing.
 */
export async function composeService<T extends object>(log: Logger, build: (own: Own) => Promise<T>): Promise<T & RunningService> {
  const closers: Array<() => Promise<unknown> | unknown> = [];
  const own: Own = (resource, close) => {
    closers.push(() => close(resource));
    return resource;
  };
  const stop = async () => {
    for (let close = closers.pop(); close; close = closers.pop()) {
      await Promise.resolve()
        .then(close)
        .catch((err: unknown) => log.warn({ err }, 'error while closing'));
    }
  };
  try {
    return { ...(await build(own)), stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

/**
 * The process shell shared by every service's main.ts: starts it, prints a configuration or
 * start-up failure as one line on stderr and exits non-zero, and drains on SIGTERM/SIGINT.
 */
export function runService(service: string, start: (log: Logger) => Promise<RunningService>): void {
  const log = createLogger(service);
  let running: RunningService | undefined;
  let stopping = false;

  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'draining');
    try {
      await running?.stop();
      log.info('stopped');
    } finally {
      await shutdownTelemetry();
      process.exit(0);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));

  // Through a promise, so a synchronous throw (readConfig) takes the same one-line path.
  Promise.resolve()
    .then(() => start(log))
    .then(
      (svc) => {
        running = svc;
      },
      async (err: unknown) => {
        const expected = err instanceof ConfigError || err instanceof StartupError;
        process.stderr.write(`${service}: ${expected ? (err as Error).message : `failed to start: ${(err as Error).message}`}\n`);
        if (!expected) log.error({ err }, 'failed to start');
        await shutdownTelemetry();
        process.exit(err instanceof ConfigError ? 78 : 1);
      },
    );
}
