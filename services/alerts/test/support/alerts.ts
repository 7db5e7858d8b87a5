import { status } from '@grpc/grpc-js';
import { AlertsServiceClient, type Alert } from '../../../../gen/wristpay/alerts/v1/alerts';
import type { PromiseClient } from '../../../../platform/grpc/client';
import type { Logger } from '../../../../platform/log';
import type { testPki } from '../../../../test/support/pki';
import { testClient, testEnv, testLogger } from '../../../../test/support/services';
import { startAlerts, type RunningAlerts } from '../../src/app';
import { readConfig } from '../../src/config';

export type Pki = ReturnType<typeof testPki>;
export type AlertsClient = PromiseClient<AlertsServiceClient>;

/** One alerts replica over mTLS (certificate `alerts`), and a client calling it as `wallet`. */
export interface TestReplica {
  app: RunningAlerts;
  /** Calls as `wallet`, the identity ALERT_CALLERS allows by default. */
  wallet: AlertsClient;
  stop(): Promise<void>;
}

/** Starts a replica under `prefix` on `databaseUrl`, port 0, with `env` added (and `log`, to read what it logs). */
export async function startReplica(prefix: string, databaseUrl: string, pki: Pki, env: Record<string, string> = {}, log: Logger = testLogger('alerts')): Promise<TestReplica> {
  const app = await startAlerts(readConfig(testEnv(prefix, { DATABASE_URL: databaseUrl, ALERTS_PORT: '0', DATABASE_POOL_SIZE: '4', ...pki.env('alerts'), ...env })), log);
  const wallet = testClient(AlertsServiceClient, app.port, pki.client('wallet'));
  return {
    app,
    wallet,
    async stop() {
      wallet.close();
      await app.stop();
    },
  };
}

// Unref'd: a read that won its race leaves its timeout behind, which must not hold the test run open.
const sleep = (ms: number) => new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref());

/**
 * An open StreamAlerts call read one alert at a time with a timeout. The call starts at once
 * (not at the first read), so alerts stored after `open` returns are the stream's "new" ones.
 */
export function openStream(client: AlertsClient, accountId: string, afterSequence = 0n) {
  const abort = new AbortController();
  const it = client.streamAlerts({ accountId, afterSequence }, { signal: abort.signal });
  let pending: Promise<IteratorResult<{ alert: Alert | undefined }>> | undefined = it.next();
  pending.catch(() => undefined);
  const read = async (ms: number) => {
    pending ??= it.next();
    const r = await Promise.race([pending, sleep(ms)]);
    if (r === 'timeout') return 'timeout' as const;
    pending = undefined;
    if (r.done) throw new Error('the stream ended');
    return r.value.alert!;
  };
  return {
    /** The next alert; fails after `ms`. */
    async next(ms = 5_000): Promise<Alert> {
      const r = await read(ms);
      if (r === 'timeout') throw new Error(`no alert for ${accountId} within ${ms} ms`);
      return r;
    },
    async take(n: number, ms = 5_000): Promise<Alert[]> {
      const out: Alert[] = [];
      while (out.length < n) out.push(await this.next(ms));
      return out;
    },
    /** Fails if an alert comes within `ms`. */
    async nothingWithin(ms: number): Promise<void> {
      const r = await read(ms);
      if (r !== 'timeout') throw new Error(`unexpected alert ${r.sequence} (${r.eventId})`);
    },
    /** The status the stream ended with (it must end within `ms`). */
    async ended(ms = 5_000): Promise<{ code: number; details: string }> {
      pending ??= it.next();
      const r = await Promise.race([pending.then(() => ({ code: status.OK, details: 'ended without an error' }), (e: { code: number; details: string }) => e), sleep(ms)]);
      if (r === 'timeout') throw new Error(`the stream did not end within ${ms} ms`);
      return { code: r.code, details: r.details };
    },
    /** Cancels the call (a phone going away). */
    close(): void {
      abort.abort();
      pending?.catch(() => undefined);
    },
  };
}

/** Polls ListAlerts until the account has at least `n` alerts; returns all of them. */
export async function eventuallyListed(client: AlertsClient, accountId: string, n: number, timeoutMs = 10_000): Promise<Alert[]> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const all: Alert[] = [];
    let after = 0n;
    for (;;) {
      const page = await client.listAlerts({ accountId, afterSequence: after, limit: 500 });
      all.push(...page.alerts);
      if (page.alerts.length < 500) break;
      after = page.lastSequence;
    }
    if (all.length >= n) return all;
    if (Date.now() > until) throw new Error(`${accountId} has ${all.length} alerts, expected ${n}`);
    await sleep(50);
  }
}
