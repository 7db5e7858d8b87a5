import { z } from 'zod';
import { callerList, databaseEnv, loadConfig, natsEnv, retentionEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'alerts';
export const PORT_ENV = 'ALERTS_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50055),
  ...natsEnv,
  ...databaseEnv,
  ...retentionEnv,
  /**
   * Caller identities (mTLS certificate CNs, comma-separated) allowed to call StreamAlerts and
   * ListAlerts. Alerts say where an account paid and how much, so only the phone-facing wallet
   * backend reads them. On a plaintext listener (GRPC_TLS=off) no caller has an identity, so
   * both methods answer PERMISSION_DENIED: run with mTLS.
   */
  ALERT_CALLERS: callerList.default(['wallet']),
  /** Days an alert is kept; older ones are pruned (the account's sequence carries on). */
  ALERTS_RETENTION_DAYS: z.coerce.number().int().min(1, 'must be at least 1 (days)').default(90),
  /**
   * How often an open StreamAlerts looks for new alerts when no wake-up came: a lost wake-up
   * (a NATS notification dropped between replicas) only delays an alert by this much. Each idle
   * stream reads the database once per interval, so this is also the idle load: 10,000 open
   * streams on a replica cost 2,000 empty reads a second at the default.
   */
  ALERTS_POLL_MS: z.coerce.number().int().min(50).max(60_000).default(5_000),
  /** PostgreSQL connections per replica (each open stream borrows one per read). */
  DATABASE_POOL_SIZE: z.coerce.number().int().positive().max(200).default(10),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
