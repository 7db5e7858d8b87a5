import { join } from 'node:path';
import { GatewayServiceClient } from '../../gen/wristpay/gateway/v1/gateway';
import { createClient, type PromiseClient } from '../../platform/grpc/client';
import { spawnService, waitServing, type ServiceProcess } from '../../scripts/mesh';
import { eventually } from './eventually';
import type { GatewayMesh } from './gateway-mesh';

const START_TIMEOUT_MS = 20_000;

export interface GatewayProcess {
  port: number;
  /**
   * Starts the process (compiled dist/, telemetry preload); resolves with the time it first
   * answered grpc.health.v1 SERVING (polled every 50 ms on a new channel each time, so no
   * reconnect backoff delays seeing it).
   */
  start(): Promise<number>;
  /** kill -9: no drain, no goodbye to the database or NATS; resolves once it is gone. */
  kill(): Promise<void>;
  /** SIGTERM (it drains); resolves once it has exited. */
  stop(): Promise<void>;
  /** A gateway client on this process presenting `identity`'s certificate (a new channel each call). */
  client(identity: string): PromiseClient<GatewayServiceClient>;
  /** The last lines it printed, for a failing test's message. */
  tail(): string;
}

/**
 * The gateway as its own process on `port`, sharing `mesh`'s payments database, downstream
 * services, Redis and NATS (mesh.gatewayEnv), as a replica in production would: a test can
 * SIGKILL it and start it again on the same port. Needs `npm run build` (dist/).
 */
export function gatewayProcess(mesh: GatewayMesh, port: number, workDir: string): GatewayProcess {
  let proc: ServiceProcess | undefined;
  const lines: string[] = [];
  const env = { ...mesh.gatewayEnv({ GATEWAY_PORT: String(port) }), WRISTPAY_TRACE_FILE: join(workDir, 'gateway-traces.jsonl') };
  return {
    port,
    async start() {
      const started = spawnService('gateway', port, env, { onLine: (line) => lines.push(line) > 200 && lines.shift() });
      proc = started;
      const died = () => (started.exitCode !== undefined ? `gateway exited (${started.exitCode}): ${started.lastError ?? 'no output'}` : undefined);
      const creds = mesh.pki.client('backoffice');
      try {
        await eventually(() => waitServing(port, creds, 0, died).then(() => true, (err: Error) => (died() ? Promise.reject(err) : false)), START_TIMEOUT_MS, `the gateway process on port ${port} to serve`);
      } catch (err) {
        await started.stop(2_000);
        proc = undefined;
        throw err;
      }
      return Date.now();
    },
    async kill() {
      const running = proc;
      if (!running) return;
      process.kill(running.pid, 'SIGKILL');
      await eventually(() => running.exitCode !== undefined, 5_000, `gateway process ${running.pid} to die`);
      proc = undefined;
    },
    async stop() {
      await proc?.stop(5_000);
      proc = undefined;
    },
    client(identity) {
      mesh.pki.issue(identity);
      return createClient(GatewayServiceClient, `localhost:${port}`, { credentials: mesh.pki.client(identity), deadlineMs: 10_000, retryable: [] });
    },
    tail: () => lines.slice(-20).join('\n'),
  };
}
