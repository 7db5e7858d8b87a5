import { z } from 'zod';
import { checkRedisEnv, databaseEnv, loadConfig, natsEnv, redisEnv, retentionEnv, serverEnv } from '../../../platform/config';

export const SERVICE = 'device-registry';
export const PORT_ENV = 'DEVICE_REGISTRY_PORT';

export const configSchema = z.object({
  ...serverEnv(PORT_ENV, 50051),
  ...redisEnv,
  ...natsEnv,
  ...databaseEnv,
  ...retentionEnv,
  CHALLENGE_TTL_SECONDS: z.coerce.number().int().positive().default(60),
  SESSION_TTL_SECONDS: z.coerce.number().int().positive().default(300),
  SESSION_MAX_AGE_SECONDS: z.coerce.number().int().positive().default(12 * 3600),
  MAX_DEVICES_PER_ACCOUNT: z.coerce.number().int().positive().default(5),
}).superRefine(checkRedisEnv);

export type Config = z.infer<typeof configSchema>;
export const readConfig = (env: NodeJS.ProcessEnv = process.env): Config => loadConfig(configSchema, env);
