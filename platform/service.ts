import { ConfigError } from './config';
import { createLogger, type Logger } from './log';
import { shutdownTelemetry } from './telemetry/shutdown';

/** A dependency could not be reached at start; the message names the variable to fix. */
export class StartupError extends Error {
  override readonly name = 'StartupError';
}

/** Runs `connect`, turning a failure into a StartupError that names `variable` (never its value). */
export async function dependency<T>(what: string, variable: string, connect: () => Promise<T>): Promise<T> {
  try {
    return await connect();
  } catch (err) {
    throw new StartupError(`cannot reach ${what} at ${variable}: ${(err as Error).message.split('\n')[0]}`);
  }
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
