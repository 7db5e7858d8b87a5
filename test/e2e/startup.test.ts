import { spawnSync } from 'node:child_process';
import { credentials } from '@grpc/grpc-js';
import { DEPENDENCY_RETRY } from '../../platform/service';
import { freePort, healthStatus, serviceCommand, SERVICES, spawnService, waitServing } from '../../scripts/mesh';
import { eventually } from '../support/eventually';
import { meshPki } from '../support/mesh-pki';
import { freshDatabase, requireServers, TEST_NATS_URL, TEST_REDIS_URL, TEST_STREAM_MAX_BYTES } from '../support/servers';
import { uniqueName } from '../support/services';
import { tcpProxy } from '../support/tcp-proxy';

// Each service, started as the image starts it, must refuse a bad environment with one line that
// names the variable — and never echo the value, which may be a secret.
function start(service: (typeof SERVICES)[number], env: Record<string, string>) {
  const result = spawnSync(process.execPath, serviceCommand(service), {
    env: { PATH: process.env.PATH, OTEL_SERVICE_NAME: service, WRISTPAY_TRACE_FILE: '/dev/null', ...env },
    encoding: 'utf8',
    // Refusing a bad environment takes a second or two, but jest runs this file next to the
    // end-to-end mesh (six services starting at once): on a busy two-core machine a 20 s limit
    // killed the process before it could answer (status null).
    timeout: 60_000,
  });
  return { code: result.status, stderr: result.stderr.trim() };
}

describe('start-up configuration errors', () => {
  it.each(['device-registry', 'risk'] as const)('%s stops on REDIS_URL=nonsense with one line naming it', (service) => {
    const { code, stderr } = start(service, { REDIS_URL: 'nonsense' });
    expect(code).toBe(78);
    expect(stderr.split('\n')).toHaveLength(1);
    expect(stderr).toBe(`${service}: invalid configuration: REDIS_URL: must be a redis:// or rediss:// URL`);
  });

  it('tokenization names a missing secret without printing any secret', () => {
    const { code, stderr } = start('tokenization', { VAULT_KEKS: '1:c2VjcmV0LXNob3VsZC1ub3QtbGVhaw==' });
    expect(code).toBe(78);
    expect(stderr).toMatch(/^tokenization: invalid configuration: TOKEN_MASTER_KEY: /);
    expect(stderr).not.toContain('c2VjcmV0');
  });

  it.each(['settlement', 'gateway'] as const)('%s names a malformed DATABASE_URL', (service) => {
    const { code, stderr } = start(service, { DATABASE_URL: 'mysql://nope' });
    expect(code).toBe(78);
    expect(stderr).toBe(`${service}: invalid configuration: DATABASE_URL: must be a postgres:// or postgresql:// URL`);
  });

  it('alerts names a malformed ALERT_CALLERS', () => {
    const { code, stderr } = start('alerts', { ALERT_CALLERS: 'wallet gateway' });
    expect(code).toBe(78);
    expect(stderr).toBe('alerts: invalid configuration: ALERT_CALLERS: must be one or more caller identities (certificate CNs), comma-separated');
  });

});

describe('a service process whose Redis is down at start', () => {
  it('keeps running NOT_SERVING on its health port, logs what it waits for, and serves within seconds of Redis answering', async () => {
    await requireServers('PostgreSQL', 'Redis', 'NATS');
    const db = await freshDatabase();
    const proxy = await tcpProxy(TEST_REDIS_URL);
    await proxy.cut();
    const [port, healthPort] = [await freePort(), await freePort()];
    const lines: string[] = [];
    const proc = spawnService(
      'device-registry',
      port,
      {
        ...meshPki().env('device-registry'),
        DATABASE_URL: db.url,
        NATS_URL: TEST_NATS_URL,
        NATS_STREAM_MAX_BYTES: String(TEST_STREAM_MAX_BYTES),
        NATS_SUBJECT_PREFIX: uniqueName(),
        REDIS_URL: `redis://127.0.0.1:${proxy.port}`,
        HEALTH_PORT: String(healthPort),
        WRISTPAY_TRACE_FILE: '/dev/null',
      },
      { onLine: (line) => lines.push(line) },
    );
    const plaintext = credentials.createInsecure();
    try {
      // The kubelet's probe port: NOT_SERVING (ready: no; alive: yes) while Redis is away.
      await eventually(async () => (await healthStatus(healthPort, plaintext)) === 'NOT_SERVING', 30_000, 'NOT_SERVING on the health port');
      await eventually(() => lines.filter((l) => l.includes('waiting for Redis at REDIS_URL')).length >= 3, 20_000, 'three logged attempts');
      expect(proc.exitCode).toBeUndefined();
      const waiting = JSON.parse(lines.find((l) => l.includes('waiting for Redis'))!) as Record<string, unknown>;
      expect(waiting).toMatchObject({ level: 'warn', dependency: 'Redis', variable: 'REDIS_URL' });

      await proxy.restore();
      const back = Date.now();
      await waitServing(healthPort, plaintext, 10_000);
      // Backoff caps at 5 s between attempts: the next one after Redis is back finds it.
      expect(Date.now() - back).toBeLessThan(DEPENDENCY_RETRY.maxMs * 1.2 + 3_000);
      expect(proc.exitCode).toBeUndefined();
    } finally {
      await proc.stop(5_000);
      await proxy.close();
      await db.drop();
    }
  }, 90_000);
});
