import { spawnSync } from 'node:child_process';
import { serviceCommand, SERVICES } from '../../scripts/mesh';

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

  it('a service whose Redis is unreachable stops with one line naming REDIS_URL', () => {
    const { code, stderr } = start('device-registry', { REDIS_URL: 'redis://127.0.0.1:1' });
    expect(code).toBe(1);
    expect(stderr).toMatch(/^device-registry: cannot reach Redis at REDIS_URL: /);
    expect(stderr.split('\n')).toHaveLength(1);
  });
});
