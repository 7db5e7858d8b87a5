import { z } from 'zod';
import { ConfigError, loadConfig, retentionEnv } from './config';

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
