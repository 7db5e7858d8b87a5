import { z } from 'zod';
import { callerList, databaseEnv, loadConfig, natsEnv, retentionEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'settlement';
export const PORT_ENV = 'SETTLEMENT_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50054),
  ...natsEnv,
  ...databaseEnv,
  ...retentionEnv,
  /** How long an authorization hold lives before the sweeper expires it. */
  HOLD_TTL_SECONDS: z.coerce.number().int().positive().default(7 * 24 * 3600),
  /** The longest ttl_seconds a PlaceHold may ask for. */
  HOLD_MAX_TTL_SECONDS: z.coerce.number().int().positive().default(31 * 24 * 3600),
  /** Buyer-protection window after capture before escrow releases to the merchant. */
  PROTECTION_WINDOW_SECONDS: z.coerce.number().int().positive().default(10 * 24 * 3600),
  /** How often the sweeper expires lapsed holds and releases escrow past its window. */
  SWEEP_INTERVAL_MS: z.coerce.number().int().positive().default(5_000),
  SWEEP_BATCH: z.coerce.number().int().positive().max(10_000).default(100),
  /**
   * Seconds between in-service ledger checks (ledger-monitor.ts; the result is the metric
   * wristpay.ledger.checks behind the LedgerCheckFailed alert); 0 = never.
   */
  LEDGER_CHECK_INTERVAL_SECONDS: z.coerce.number().int().min(0).default(3600),
  /** PostgreSQL connections per replica (PlaceHold holds one for the length of its transaction). */
  DATABASE_POOL_SIZE: z.coerce.number().int().positive().max(200).default(10),
  /**
   * Caller identities (mTLS certificate CNs, comma-separated) allowed to SetBandLimits. Limits
   * are the band owner's, set from the phone, so only the phone-facing wallet backend; never the
   * gateway or a terminal. Over plaintext (GRPC_TLS=off) there is no identity and the call is
   * refused.
   */
  LIMIT_CALLERS: callerList.default(['wallet']),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
