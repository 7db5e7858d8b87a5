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
