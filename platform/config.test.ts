import { z } from 'zod';
import { readConfig as readRegistryConfig } from '../services/device-registry/src/config';
import { readConfig as readRiskConfig } from '../services/risk/src/config';
import { readConfig as readGatewayConfig } from '../services/gateway/src/config';
import { checkRedisEnv, ConfigError, grpcAddress, loadConfig, natsEnv, redisEnv, retentionEnv } from './config';
import { natsServers } from './nats';
import { redisTarget, redisVariable } from './redis';

describe('retentionEnv', () => {
  const schema = z.object({ ...retentionEnv });

  it('defaults: idempotency keys 30 days, published outbox rows 7, processed events 30, a run every hour', () => {
    expect(loadConfig(schema, {})).toEqual({
      RETENTION_IDEMPOTENCY_DAYS: 30,
      RETENTION_OUTBOX_DAYS: 7,
      RETENTION_PROCESSED_EVENTS_DAYS: 30,
      RETENTION_INTERVAL_SECONDS: 3600,
    });
    expect(loadConfig(schema, { RETENTION_IDEMPOTENCY_DAYS: '90', RETENTION_INTERVAL_SECONDS: '5' })).toMatchObject({ RETENTION_IDEMPOTENCY_DAYS: 90, RETENTION_INTERVAL_SECONDS: 5 });
  });

  it.each([
    ['RETENTION_IDEMPOTENCY_DAYS', '0', /^invalid configuration: RETENTION_IDEMPOTENCY_DAYS: must be at least 1 \(days\): idempotency keys must outlive every client retry$/],
    ['RETENTION_IDEMPOTENCY_DAYS', '0.5', /^invalid configuration: RETENTION_IDEMPOTENCY_DAYS: /],
    ['RETENTION_IDEMPOTENCY_DAYS', '-3', /^invalid configuration: RETENTION_IDEMPOTENCY_DAYS: /],
    ['RETENTION_OUTBOX_DAYS', '0', /^invalid configuration: RETENTION_OUTBOX_DAYS: /],
    ['RETENTION_PROCESSED_EVENTS_DAYS', 'forever', /^invalid configuration: RETENTION_PROCESSED_EVENTS_DAYS: /],
    ['RETENTION_INTERVAL_SECONDS', '0', /^invalid configuration: RETENTION_INTERVAL_SECONDS: /],
  ])('refuses %s=%s, naming the variable', (variable, value, message) => {
    expect(() => loadConfig(schema, { [variable]: value })).toThrow(ConfigError);
    expect(() => loadConfig(schema, { [variable]: value })).toThrow(message);
  });
});

describe('redisEnv: one node (REDIS_URL) or Sentinel (REDIS_SENTINELS + REDIS_MASTER_NAME)', () => {
  const schema = z.object({ ...redisEnv }).superRefine(checkRedisEnv);
  const SECRET = 's3cr3t-Pa55';

  it('defaults to the local single node; REDIS_URL names another', () => {
    expect(redisTarget(loadConfig(schema, {}))).toEqual({ kind: 'url', url: 'redis://127.0.0.1:6379' });
    expect(redisTarget(loadConfig(schema, { REDIS_URL: 'rediss://:pw@redis.internal:6380/0' }))).toEqual({ kind: 'url', url: 'rediss://:pw@redis.internal:6380/0' });
    expect(redisVariable(loadConfig(schema, {}))).toBe('REDIS_URL');
  });

  it('parses Sentinel addresses (names, IPv4, bracketed IPv6, spaces after commas) with the master name and passwords', () => {
    const config = loadConfig(schema, {
      REDIS_SENTINELS: 'redis-sentinel-0.redis-sentinel:26379, 10.0.0.7:26380,[fd00::1]:26381',
      REDIS_MASTER_NAME: 'wristpay',
      REDIS_PASSWORD: SECRET,
      REDIS_SENTINEL_PASSWORD: 'other',
    });
    expect(redisTarget(config)).toEqual({
      kind: 'sentinel',
      sentinels: [
        { host: 'redis-sentinel-0.redis-sentinel', port: 26379 },
        { host: '10.0.0.7', port: 26380 },
        { host: 'fd00::1', port: 26381 },
      ],
      name: 'wristpay',
      password: SECRET,
      sentinelPassword: 'other',
    });
    expect(redisVariable(config)).toBe('REDIS_SENTINELS/REDIS_MASTER_NAME');
    expect(redisTarget(loadConfig(schema, { REDIS_SENTINELS: '127.0.0.1:26379', REDIS_MASTER_NAME: 'm' }))).toEqual({
      kind: 'sentinel',
      sentinels: [{ host: '127.0.0.1', port: 26379 }],
      name: 'm',
      password: undefined,
      sentinelPassword: undefined,
    });
  });

  const refused: Array<[Record<string, string>, RegExp]> = [
    [{ REDIS_URL: 'http://127.0.0.1:6379' }, /^invalid configuration: REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL$/],
    [{ REDIS_SENTINELS: '127.0.0.1' }, /^invalid configuration: REDIS_SENTINELS: must be one or more Sentinel addresses, host:port, comma-separated$/],
    [{ REDIS_SENTINELS: 'a:26379,,b:26379' }, /^invalid configuration: REDIS_SENTINELS: /],
    [{ REDIS_SENTINELS: 'a:99999' }, /^invalid configuration: REDIS_SENTINELS: /],
    [{ REDIS_SENTINELS: 'redis://a:26379' }, /^invalid configuration: REDIS_SENTINELS: /],
    [{ REDIS_SENTINELS: 'a:26379' }, /^invalid configuration: REDIS_MASTER_NAME: is required with REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'a:26379', REDIS_MASTER_NAME: 'm', REDIS_URL: 'redis://a:6379' }, /^invalid configuration: REDIS_URL: must not be set together with REDIS_SENTINELS/],
    [{ REDIS_MASTER_NAME: 'm' }, /^invalid configuration: REDIS_MASTER_NAME: is only used with REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'a:26379', REDIS_MASTER_NAME: 'my master' }, /^invalid configuration: REDIS_MASTER_NAME: must be the name/],
    [{ REDIS_PASSWORD: SECRET }, /^invalid configuration: REDIS_PASSWORD: is only used with REDIS_SENTINELS; with REDIS_URL put the password in the URL$/],
    [{ REDIS_SENTINEL_PASSWORD: SECRET }, /^invalid configuration: REDIS_SENTINEL_PASSWORD: is only used with REDIS_SENTINELS/],
    [{ REDIS_SENTINELS: 'a:26379', REDIS_MASTER_NAME: 'm', REDIS_PASSWORD: '' }, /^invalid configuration: REDIS_PASSWORD: must not be empty/],
  ];
  // Titled by the variables set, not their values: a test's output shows no password either.
  it.each(refused.map(([env, message], i) => [`#${i + 1} (${Object.keys(env).join(' + ')})`, env, message] as const))('refuses %s with one line naming the variable, never a value', (_title, env, message) => {
    let err: unknown;
    try {
      loadConfig(schema, env as NodeJS.ProcessEnv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const text = (err as Error).message;
    expect(text).toMatch(message);
    expect(text).not.toContain('\n');
    expect(text).not.toContain(SECRET);
    for (const value of Object.values(env)) if (value.length > 1) expect(text).not.toContain(value);
  });

  it('the services take it: device-registry and risk refuse a half Sentinel setting', () => {
    expect(() => readRegistryConfig({ REDIS_SENTINELS: '127.0.0.1:26379' })).toThrow(/^invalid configuration: REDIS_MASTER_NAME: /);
    expect(() => readRiskConfig({ REDIS_SENTINELS: '127.0.0.1:26379', REDIS_MASTER_NAME: 'm', REDIS_URL: 'redis://x:1' })).toThrow(/^invalid configuration: REDIS_URL: /);
    expect(readRiskConfig({ REDIS_SENTINELS: '127.0.0.1:26379', REDIS_MASTER_NAME: 'm' }).REDIS_SENTINELS).toEqual([{ host: '127.0.0.1', port: 26379 }]);
  });
});

describe('grpcAddress: one target, resolved by name, or a fixed list spread round robin', () => {
  it.each(['127.0.0.1:50053', 'risk:50053', 'risk.wristpay.svc.cluster.local:50053', 'dns:risk:50053', 'dns:///risk:50053', '[::1]:50053', 'ipv4:127.0.0.1:5001,127.0.0.1:5002'])('accepts %s', (target) => {
    expect(grpcAddress.safeParse(target).success).toBe(true);
  });

  it.each(['risk', 'risk:', 'http://risk:50053', 'ipv4:risk:5001', 'ipv4:127.0.0.1:5001,', 'ipv4:127.0.0.1:5001,,127.0.0.1:5002', 'a:1,b:2', 'risk:50053 '])('refuses %j', (target) => {
    expect(grpcAddress.safeParse(target).success).toBe(false);
  });

  it('the gateway takes a replica list for RISK_ADDR and refuses a bad one naming the variable', () => {
    expect(readGatewayConfig({ RISK_ADDR: 'ipv4:127.0.0.1:5001,127.0.0.1:5002', GRPC_TLS: 'off' } as NodeJS.ProcessEnv).RISK_ADDR).toBe('ipv4:127.0.0.1:5001,127.0.0.1:5002');
    expect(() => readGatewayConfig({ RISK_ADDR: 'risk:5001,risk2:5002', GRPC_TLS: 'off' } as NodeJS.ProcessEnv)).toThrow(/^invalid configuration: RISK_ADDR: must be host:port/);
  });
});

describe('natsEnv: one server or a cluster’s list', () => {
  const schema = z.object({ ...natsEnv });

  it('accepts one URL or several comma-separated, and connects to each', () => {
    expect(loadConfig(schema, {}).NATS_URL).toBe('nats://127.0.0.1:4222');
    const list = 'nats://nats-0.nats-headless:4222, nats://nats-1.nats-headless:4222,tls://nats-2.nats-headless:4222';
    expect(natsServers(loadConfig(schema, { NATS_URL: list }).NATS_URL)).toEqual(['nats://nats-0.nats-headless:4222', 'nats://nats-1.nats-headless:4222', 'tls://nats-2.nats-headless:4222']);
    expect(loadConfig(schema, { NATS_STREAM_REPLICAS: '3' }).NATS_STREAM_REPLICAS).toBe(3);
  });

  it.each([['http://nats:4222'], ['nats://a:4222,http://b:4222'], ['nats://a:4222,,nats://b:4222'], ['nats-0:4222']])('refuses NATS_URL=%s', (url) => {
    expect(() => loadConfig(schema, { NATS_URL: url })).toThrow(/^invalid configuration: NATS_URL: must be a nats:\/\/ or tls:\/\/ URL, or several comma-separated$/);
  });

  it('refuses NATS_STREAM_REPLICAS outside 1-5', () => {
    expect(() => loadConfig(schema, { NATS_STREAM_REPLICAS: '0' })).toThrow(/^invalid configuration: NATS_STREAM_REPLICAS: /);
    expect(() => loadConfig(schema, { NATS_STREAM_REPLICAS: '6' })).toThrow(/^invalid configuration: NATS_STREAM_REPLICAS: /);
  });
});
