import { z } from 'zod';
import { loadConfig, natsEnv, redisEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'risk';
export const PORT_ENV = 'RISK_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50053),
  ...redisEnv,
  ...natsEnv,
  /** Score at or above which a payment needs step-up on the phone. */
  RISK_CHALLENGE_THRESHOLD: z.coerce.number().int().min(0).max(1000).default(400),
  /** Score at or above which a payment is declined. */
  RISK_DECLINE_THRESHOLD: z.coerce.number().int().min(0).max(1000).default(800),
  /** Largest amount (minor units) the degraded mode may approve without features. */
  RISK_FALLBACK_MAX_APPROVE_MINOR: z.coerce.number().int().nonnegative().default(5_000),
});

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
